"""Every CLAP constant of audiobeam in one frozen dataclass.

The values follow the LAION CLAP checkpoints as Hugging Face transformers ships them
(``laion/clap-htsat-unfused``, ``laion/clap-htsat-fused``,
``laion/larger_clap_music_and_speech``: 48 kHz input, 10 s windows, 512-d projections).
The feature extractor's own settings (mel bands, FFT, hop, frequency range, padding,
truncation) are NOT constants here: they are read from the checkpoint's
``preprocessor_config.json``, because ``ClapFeatureExtractor()``'s class defaults differ
from the published files (``frequency_min`` 0 vs 50).
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "ClapParams",
    "DEFAULT_PARAMS",
    "CONFIG_FILENAME",
    "WEIGHTS_FILENAME",
    "PICKLE_WEIGHTS_FILENAME",
    "PREPROCESSOR_FILENAME",
    "TOKENIZER_FILENAMES",
    "OPTIONAL_FILENAMES",
    "REQUIRED_FILENAMES",
]

CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.safetensors"
PICKLE_WEIGHTS_FILENAME = "pytorch_model.bin"
PREPROCESSOR_FILENAME = "preprocessor_config.json"
TOKENIZER_FILENAMES = ("vocab.json", "merges.txt", "tokenizer_config.json",
                       "special_tokens_map.json")
OPTIONAL_FILENAMES = ("tokenizer.json",)
REQUIRED_FILENAMES = (CONFIG_FILENAME, WEIGHTS_FILENAME, PREPROCESSOR_FILENAME,
                      *TOKENIZER_FILENAMES)
"""The files of a checkpoint folder that we read (and hash), in the published layout."""


@dataclasses.dataclass(frozen=True)
class ClapParams:
  """CLAP input, windowing and output constants.

  Derived sizes are properties so they cannot drift from what they are derived from.
  """

  # Audio: CLAP's reference loading is ``librosa.load(path, sr=48000)``, which resamples
  # with librosa's default ``soxr_hq`` and librosa's output length.
  sample_rate_hz: int = 48000
  resampler: str = "soxr_hq"
  resample_length_rule: str = "librosa"
  # Windows: the model sees 10 s (the extractor's ``max_length_s``); a file is cut into
  # windows every ``hop_seconds``.
  window_seconds: float = 10.0
  default_hop_seconds: float = 10.0
  # Outputs.
  embedding_size: int = 512
  model_type: str = "clap"
  # Zero-shot labels: transformers' zero-shot-audio-classification default template.
  default_label_template: str = "This is a sound of {}."
  # Windows per InputBlock yielded by the front end (bounds its memory: 1.92 MB each).
  max_windows_per_block: int = 8

  @property
  def window_samples(self) -> int:
    """480000: samples per model input window."""
    return int(round(self.window_seconds * self.sample_rate_hz))


DEFAULT_PARAMS = ClapParams()
