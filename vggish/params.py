"""Every VGGish constant in one frozen dataclass.

The values follow Google's published VGGish (tensorflow/models,
research/audioset/vggish/vggish_params.py); the code here is our own. Functions take a
``Params`` explicitly; nothing reads a module global.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Params", "DEFAULT_PARAMS"]

_MAX_HOP_SECONDS = 86400.0  # a day between frames: anything longer is a typo


@dataclasses.dataclass(frozen=True)
class Params:
  """VGGish front-end, model and postprocessing constants.

  Derived sizes (samples, frames, FFT length) are properties so they can never drift
  from the values they are derived from.
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

  # --- derived values -------------------------------------------------------------
  @property
  def stft_window_samples(self) -> int:
    """400 at 16 kHz."""
    return int(round(self.sample_rate_hz * self.stft_window_seconds))

  @property
  def stft_hop_samples(self) -> int:
    """160 at 16 kHz."""
    return int(round(self.sample_rate_hz * self.stft_hop_seconds))

  @property
  def fft_length(self) -> int:
    """Smallest power of two >= the window: 512."""
    return 2 ** int(math.ceil(math.log2(self.stft_window_samples)))

  @property
  def num_spectrogram_bins(self) -> int:
    """fft_length // 2 + 1 = 257."""
    return self.fft_length // 2 + 1

  @property
  def stft_frame_rate_hz(self) -> float:
    return 1.0 / self.stft_hop_seconds

  @property
  def patch_frames(self) -> int:
    """STFT frames per patch: 96."""
    return int(round(self.patch_window_seconds * self.stft_frame_rate_hz))

  @property
  def patch_hop_frames(self) -> int:
    """STFT frames between patch starts: 96 by default."""
    return int(round(self.patch_hop_seconds * self.stft_frame_rate_hz))

  @property
  def patch_bands(self) -> int:
    return self.num_mel_bins

  @property
  def patch_hop_samples(self) -> int:
    """Samples (16 kHz) between patch starts: 15360 by default."""
    return self.patch_hop_frames * self.stft_hop_samples

  @property
  def patch_span_samples(self) -> int:
    """Samples one patch covers: (96 - 1) * 160 + 400 = 15600 (0.975 s)."""
    return (self.patch_frames - 1) * self.stft_hop_samples + self.stft_window_samples

  @property
  def patch_span_seconds(self) -> float:
    """0.975 s by default."""
    return self.patch_span_samples / self.sample_rate_hz

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
