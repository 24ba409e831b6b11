"""Every VGGish constant in one frozen dataclass.

The values follow Google's published VGGish (tensorflow/models,
research/audioset/vggish/vggish_params.py); the code here is our own. Functions take a
``Params`` explicitly; nothing reads a module global.
"""

from __future__ import annotations

import dataclasses
import math

from audiobeam.patches import PatchGeometry

__all__ = ["Params", "DEFAULT_PARAMS"]

_MAX_HOP_SECONDS = 86400.0  # a day between frames: anything longer is a typo


@dataclasses.dataclass(frozen=True)
class Params(PatchGeometry):
  """VGGish front-end, model and postprocessing constants.

  Derived sizes (samples, frames, FFT length) are ``audiobeam.patches.PatchGeometry``'s
  properties, so they can never drift from the values they are derived from.
  """

  # Audio.
  sample_rate_hz: int = 16000
  # Log-mel front end.
  stft_window_seconds: float = 0.025
  stft_hop_seconds: float = 0.010
  num_mel_bins: int = 64
  mel_min_hz: float = 125.0
  mel_max_hz: float = 7500.0
  log_offset: float = 0.01
  # Patches ("examples" in the reference): 96 STFT frames x 64 mel bands.
  patch_window_seconds: float = 0.96
  patch_hop_seconds: float = 0.96
  # Network.
  embedding_size: int = 128
  # Postprocessing: PCA then uint8 quantisation of [-2, 2].
  quantize_min: float = -2.0
  quantize_max: float = 2.0
  pca_eigen_vectors_key: str = "pca_eigen_vectors"
  pca_means_key: str = "pca_means"

  def __post_init__(self):
    from audiobeam.errors import ConfigError  # local import: errors has no deps either

    if not (math.isfinite(self.patch_hop_seconds)
            and self.stft_hop_seconds <= self.patch_hop_seconds <= _MAX_HOP_SECONDS):
      raise ConfigError(
          f"patch_hop_seconds must be a number from {self.stft_hop_seconds} (one STFT hop) to "
          f"{_MAX_HOP_SECONDS:g} s, got {self.patch_hop_seconds!r}; the reference uses 0.96 "
          "(non-overlapping patches).")
    hop_frames = self.patch_hop_seconds / self.stft_hop_seconds
    if abs(hop_frames - round(hop_frames)) > 1e-6:
      raise ConfigError(
          f"patch_hop_seconds must be a multiple of the STFT hop ({self.stft_hop_seconds} s), "
          f"got {self.patch_hop_seconds!r}; try {round(hop_frames) * self.stft_hop_seconds:.2f}.")
    if not self.quantize_min < self.quantize_max:
      raise ConfigError(
          f"quantize_min ({self.quantize_min}) must be below quantize_max ({self.quantize_max}).")

  # Derived sizes: audiobeam.patches.PatchGeometry.

  def num_patches(self, num_samples: int) -> int:
    """Patches the reference front end yields for ``num_samples`` samples at 16 kHz.

    A trailing partial patch is dropped; under ``patch_span_samples`` yields 0.
    """
    if num_samples < self.patch_span_samples:
      return 0
    return 1 + (num_samples - self.patch_span_samples) // self.patch_hop_samples

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


DEFAULT_PARAMS = Params()
