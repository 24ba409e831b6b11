"""CLAP: audio and text in one 512-d space (LAION HTSAT checkpoints as Hugging Face
transformers ships them), as an audiobeam model.

Importing this package is light (numpy): torch and transformers are imported when a
model is loaded (``models.clap.loading.load_clap``).

    from models.clap import load_clap
    clap = load_clap("path/to/clap-htsat-unfused")        # a Hugging Face folder
    audio = clap.embed_windows(windows)                    # float32 [N, 480000] -> [N, 512]
    text = clap.embed_text(["a dog barking"])              # -> float32 [1, 512]

``models.clap.bundle.ClapBundle`` is the pipeline's bundle (``--model clap``);
``python -m models.clap.testing DIR`` writes TEST weights (random, meaningless).
"""

from __future__ import annotations

from models.clap.bundle import ClapBundle, ClapPostprocessor
from models.clap.frontend import ClapFrontEnd, cut_windows, num_windows, pad_window
from models.clap.labels import parse_labels, parse_labels_text, zero_shot
from models.clap.loading import load_clap, localize_checkpoint, validate_checkpoint_dir
from models.clap.params import DEFAULT_PARAMS, ClapParams

__all__ = [
    "ClapBundle",
    "ClapPostprocessor",
    "ClapFrontEnd",
    "cut_windows",
    "num_windows",
    "pad_window",
    "parse_labels",
    "parse_labels_text",
    "zero_shot",
    "load_clap",
    "localize_checkpoint",
    "validate_checkpoint_dir",
    "ClapParams",
    "DEFAULT_PARAMS",
]
