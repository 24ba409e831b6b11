"""VGGish audio embeddings, exact to Google's reference, without Beam.

Importing ``vggish`` is light: numpy only. TensorFlow is imported when a model is
built, Apache Beam only to read gs:// / s3:// weights.

    from vggish import VGGish
    out = VGGish.load(checkpoint="vggish_model.ckpt",
                      pca_params="vggish_pca_params.npz").embed(waveform, 16000)
"""

from __future__ import annotations

from vggish.api import VGGish, Embeddings
from vggish.assets import Assets, resolve_assets
from audiobeam.errors import (AssetError, AudiobeamError, CheckpointError, ConfigError,
                           InputError, TooShortError)
from vggish.params import DEFAULT_PARAMS, Params
from vggish.postprocess import PCAParams, pool, postprocess

__all__ = [
    "VGGish",
    "Embeddings",
    "Assets",
    "resolve_assets",
    "Params",
    "DEFAULT_PARAMS",
    "PCAParams",
    "postprocess",
    "pool",
    "AudiobeamError",
    "AssetError",
    "CheckpointError",
    "ConfigError",
    "InputError",
    "TooShortError",
]
