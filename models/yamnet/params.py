"""Every YAMNet constant in one frozen dataclass.

The values are those of Google's published YAMNet (tensorflow/models,
research/audioset/yamnet/params.py), which trained the released weights; the code and
the names (unit-suffixed, as in ``vggish.params``) are our own. Functions take a
``Params`` explicitly; nothing reads a module global.

Counting (our integer form of the reference's ``pad_waveform``): a waveform of ``n``
samples at 16 kHz is zero-padded at the end to ``15600 + 7680 * k`` samples with
``k = ceil(max(0, n - 15600) / 7680)``, so every waveform, even one under 0.975 s,
gives ``N = 1 + k`` patches. The reference computes ``k`` in float32 and gets it wrong
(a negative padding, then an error) for some lengths from ``n = 16_796_401`` (17.5 min);
``num_patches`` uses exact integers.
"""

from __future__ import annotations

import dataclasses

from audiobeam.patches import PatchGeometry

__all__ = ["Params", "DEFAULT_PARAMS"]


@dataclasses.dataclass(frozen=True)
class Params(PatchGeometry):
  """YAMNet front-end and network constants.

  Derived sizes (samples, frames, FFT length) are ``audiobeam.patches.PatchGeometry``'s
  properties, so they can never drift from the values they are derived from.
  """

  # Audio.
  sample_rate_hz: int = 16000
  # Log-mel front end (TensorFlow's tf.signal ops, in float32, as the reference).
  stft_window_seconds: float = 0.025
  stft_hop_seconds: float = 0.010
  num_mel_bins: int = 64
  mel_min_hz: float = 125.0
  mel_max_hz: float = 7500.0
  log_offset: float = 0.001
  # Patches: 96 STFT frames x 64 mel bands, every 48 frames (0.48 s).
  patch_window_seconds: float = 0.96
  patch_hop_seconds: float = 0.48
  # Network (MobileNet v1 body; see models.yamnet.network).
  num_classes: int = 521
  embedding_size: int = 1024
  conv_padding: str = "same"
  batchnorm_center: bool = True
  batchnorm_scale: bool = False
  batchnorm_epsilon: float = 1e-4
  classifier_activation: str = "sigmoid"

  def __post_init__(self):
    from audiobeam.errors import ConfigError  # local import: errors has no deps either

    if self.patch_hop_seconds <= 0:
      raise ConfigError(f"patch_hop_seconds must be > 0, got {self.patch_hop_seconds!r}; the "
                        "reference uses 0.48.")
    for name in ("patch_window_seconds", "patch_hop_seconds"):
      frames = getattr(self, name) / self.stft_hop_seconds
      if abs(frames - round(frames)) > 1e-6:
        raise ConfigError(
            f"{name} must be a multiple of the STFT hop ({self.stft_hop_seconds} s), got "
            f"{getattr(self, name)!r}; try {round(frames) * self.stft_hop_seconds:.2f}.")
    if not 0.0 <= self.mel_min_hz < self.mel_max_hz <= self.sample_rate_hz / 2:
      raise ConfigError(
          f"need 0 <= mel_min_hz < mel_max_hz <= {self.sample_rate_hz / 2} (Nyquist), got "
          f"mel_min_hz={self.mel_min_hz}, mel_max_hz={self.mel_max_hz}.")
    if self.conv_padding != "same" or self.classifier_activation != "sigmoid":
      raise ConfigError("only conv_padding='same' and classifier_activation='sigmoid' (the "
                        f"published network) are implemented, got {self.conv_padding!r} and "
                        f"{self.classifier_activation!r}.")
    if not self.batchnorm_center or self.batchnorm_scale:
      raise ConfigError("only batchnorm_center=True, batchnorm_scale=False (the published "
                        "network: beta, no gamma) are implemented.")

  # Derived sizes: audiobeam.patches.PatchGeometry.

  def num_patches(self, num_samples: int) -> int:
    """Patches the reference gives for ``num_samples`` samples at 16 kHz (exact integers).

    ``1 + ceil(max(0, n - 15600) / 7680)``: at least one, a trailing partial patch is
    padded, never dropped.
    """
    num_samples = int(num_samples)
    if num_samples < 0:
      raise ValueError(f"expected a sample count >= 0, got {num_samples}")
    beyond_first = max(0, num_samples - self.patch_span_samples)
    return 1 + -(-beyond_first // self.patch_hop_samples)

  def padded_num_samples(self, num_samples: int) -> int:
    """Length after the reference's end padding: 15600 + 7680 * (num_patches - 1)."""
    return self.patch_span_samples + (self.num_patches(num_samples) - 1) * self.patch_hop_samples

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


DEFAULT_PARAMS = Params()
