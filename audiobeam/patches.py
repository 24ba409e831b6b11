"""The log-mel patch geometry VGGish and YAMNet share (their ``Params`` mix it in).

Every size is derived from six fields of the dataclass that mixes ``PatchGeometry`` in:
``sample_rate_hz``, ``stft_window_seconds``, ``stft_hop_seconds``, ``num_mel_bins``,
``patch_window_seconds`` and ``patch_hop_seconds``; properties, so a size can never drift
from what it is derived from. The numbers in the docstrings are the published models'
(16 kHz, 25 ms windows every 10 ms, 96 x 64 patches).
"""

from __future__ import annotations

import math

__all__ = ["PatchGeometry"]


class PatchGeometry:
  """Derived sizes of a log-mel front end cut into patches (see the module)."""

  sample_rate_hz: int
  stft_window_seconds: float
  stft_hop_seconds: float
  num_mel_bins: int
  patch_window_seconds: float
  patch_hop_seconds: float

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
    """STFT frames between patch starts: 96 for VGGish, 48 for YAMNet."""
    return int(round(self.patch_hop_seconds * self.stft_frame_rate_hz))

  @property
  def patch_bands(self) -> int:
    """Mel bands per patch: 64."""
    return self.num_mel_bins

  @property
  def patch_hop_samples(self) -> int:
    """Samples between patch starts: 15360 for VGGish, 7680 for YAMNet."""
    return self.patch_hop_frames * self.stft_hop_samples

  @property
  def patch_span_samples(self) -> int:
    """Samples one patch covers: (96 - 1) * 160 + 400 = 15600 (0.975 s)."""
    return (self.patch_frames - 1) * self.stft_hop_samples + self.stft_window_samples

  @property
  def patch_span_seconds(self) -> float:
    """0.975 s."""
    return self.patch_span_samples / self.sample_rate_hz
