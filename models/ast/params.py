"""Every AST front-end constant in one frozen dataclass.

The Audio Spectrogram Transformer (Gong, Chung and Glass, "AST: Audio Spectrogram
Transformer", Interspeech 2021; MIT's checkpoints on the Hugging Face hub, e.g.
``MIT/ast-finetuned-audioset-10-10-0.4593``) reads 1024 frames x 128 Kaldi-style log
mel filterbank features of 16 kHz audio, normalised with the training set's mean and
standard deviation. The values below are those of transformers' ``ASTFeatureExtractor``
with the published ``preprocessor_config.json`` (128 bins, max_length 1024, mean
-4.2677393, std 4.5689974, 16000 Hz) and of the Kaldi ``fbank`` options it passes
(25 ms symmetric Hann window -- Kaldi's "hanning" --, 10 ms shift, DC removal,
pre-emphasis 0.97, 512-point FFT power spectrum, mel filters 20 Hz .. Nyquist, natural
log floored at float32 epsilon, no dither, frames kept inside the signal only).
The checkpoint's own values are read with ``from_preprocessor_config``; the code is ours.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from audiobeam.errors import ConfigError

__all__ = ["ASTParams", "DEFAULT_PARAMS", "DEFAULT_HOP_SECONDS", "from_preprocessor_config"]

DEFAULT_HOP_SECONDS = 10.24
"""Window hop: 1024 frames of 10 ms, i.e. consecutive non-overlapping model inputs."""

_FLOAT32_EPSILON = 1.1920928955078125e-07  # numpy.finfo(numpy.float32).eps, Kaldi's log floor


@dataclasses.dataclass(frozen=True)
class ASTParams:
  """AST front-end constants. Derived sizes are properties so they cannot drift."""

  # Audio.
  sample_rate_hz: int = 16000
  # Kaldi fbank.
  frame_length_seconds: float = 0.025
  frame_shift_seconds: float = 0.010
  num_mel_bins: int = 128
  mel_low_hz: float = 20.0
  mel_high_hz: float = 0.0          # <= 0: Nyquist + mel_high_hz (Kaldi's convention)
  preemphasis: float = 0.97
  remove_dc_offset: bool = True
  log_floor: float = _FLOAT32_EPSILON
  # Model input windows.
  max_length_frames: int = 1024
  hop_seconds: float = DEFAULT_HOP_SECONDS
  # Normalisation: (fbank - mean) / (2 * std), as ASTFeatureExtractor does.
  mean: float = -4.2677393
  std: float = 4.5689974
  do_normalize: bool = True

  def __post_init__(self):
    if self.sample_rate_hz <= 0 or self.num_mel_bins <= 0 or self.max_length_frames <= 0:
      raise ConfigError(f"AST front end: expected positive sample_rate_hz, num_mel_bins and "
                        f"max_length_frames, found {self.sample_rate_hz}, {self.num_mel_bins}, "
                        f"{self.max_length_frames}")
    if not (isinstance(self.hop_seconds, (int, float)) and self.hop_seconds > 0):
      raise ConfigError(f"expected --ast_hop_seconds > 0, found {self.hop_seconds!r}; the "
                        f"default {DEFAULT_HOP_SECONDS} gives non-overlapping 1024-frame windows.")
    hop_frames = self.hop_seconds / self.frame_shift_seconds
    if abs(hop_frames - round(hop_frames)) > 1e-6:
      raise ConfigError(
          f"expected --ast_hop_seconds to be a multiple of the {self.frame_shift_seconds} s "
          f"frame shift, found {self.hop_seconds!r}; try "
          f"{max(1, round(hop_frames)) * self.frame_shift_seconds:.2f}.")
    if self.do_normalize and not self.std > 0:
      raise ConfigError(f"AST front end: expected std > 0, found {self.std!r}")
    nyquist = self.sample_rate_hz / 2
    if not 0 <= self.mel_low_hz < self.mel_high_hz_resolved <= nyquist:
      raise ConfigError(f"AST front end: expected 0 <= mel_low_hz < mel_high_hz <= {nyquist}, "
                        f"found {self.mel_low_hz} and {self.mel_high_hz_resolved}")

  # --- derived values -------------------------------------------------------------
  @property
  def frame_length_samples(self) -> int:
    """400 at 16 kHz."""
    return int(round(self.sample_rate_hz * self.frame_length_seconds))

  @property
  def frame_shift_samples(self) -> int:
    """160 at 16 kHz."""
    return int(round(self.sample_rate_hz * self.frame_shift_seconds))

  @property
  def fft_length(self) -> int:
    """Smallest power of two >= the frame: 512."""
    return 2 ** int(math.ceil(math.log2(self.frame_length_samples)))

  @property
  def num_fft_bins(self) -> int:
    """fft_length // 2 + 1 = 257."""
    return self.fft_length // 2 + 1

  @property
  def mel_high_hz_resolved(self) -> float:
    """8000 Hz by default (Nyquist)."""
    return self.mel_high_hz if self.mel_high_hz > 0 else self.sample_rate_hz / 2 + self.mel_high_hz

  @property
  def hop_frames(self) -> int:
    """fbank frames between window starts: 1024 by default."""
    return int(round(self.hop_seconds / self.frame_shift_seconds))

  @property
  def hop_samples(self) -> int:
    """16 kHz samples between window starts: 163840 by default."""
    return self.hop_frames * self.frame_shift_samples

  @property
  def window_span_samples(self) -> int:
    """Samples one full window covers: (1024 - 1) * 160 + 400 = 164080 (10.255 s)."""
    return (self.max_length_frames - 1) * self.frame_shift_samples + self.frame_length_samples

  @property
  def window_span_seconds(self) -> float:
    return self.window_span_samples / self.sample_rate_hz

  def num_fbank_frames(self, num_samples: int) -> int:
    """Frames of ``num_samples`` samples (Kaldi ``snip_edges``): 0 under one frame."""
    if num_samples < self.frame_length_samples:
      return 0
    return 1 + (num_samples - self.frame_length_samples) // self.frame_shift_samples

  def num_windows(self, num_frames: int) -> int:
    """Model inputs for ``num_frames`` fbank frames.

    Window ``w`` covers frames ``[w * hop, w * hop + 1024)``; it exists when it starts
    inside the signal and the window before it does not already reach the last frame.
    Every frame is in some window when hop <= 1024; the last window is zero-padded (in
    the log-mel domain, as the extractor pads) when the frames run out.
    """
    if num_frames <= 0:
      return 0
    hop, span = self.hop_frames, self.max_length_frames
    if num_frames <= span:
      return 1
    covering = 1 + -(-(num_frames - span) // hop)       # windows until one reaches the end
    starting = -(-num_frames // hop)                      # windows that start inside
    return min(covering, starting)

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


DEFAULT_PARAMS = ASTParams()

_PREPROCESSOR_KEYS = {
    "sampling_rate": "sample_rate_hz",
    "num_mel_bins": "num_mel_bins",
    "max_length": "max_length_frames",
    "mean": "mean",
    "std": "std",
    "do_normalize": "do_normalize",
}


def from_preprocessor_config(config: Mapping[str, Any], hop_seconds: float = DEFAULT_HOP_SECONDS,
                             where: str = "preprocessor_config.json") -> ASTParams:
  """``ASTParams`` from a checkpoint's ``preprocessor_config.json`` (as a dict).

  Raises ``ConfigError`` naming every missing or mistyped key, or a feature extractor
  other than ``ASTFeatureExtractor``.
  """
  problems = []
  kind = config.get("feature_extractor_type")
  if kind != "ASTFeatureExtractor":
    problems.append(f"feature_extractor_type {kind!r} (expected 'ASTFeatureExtractor')")
  values: dict[str, Any] = {}
  for key, field in _PREPROCESSOR_KEYS.items():
    if key not in config:
      problems.append(f"missing {key!r}")
      continue
    value = config[key]
    if field == "do_normalize":
      if not isinstance(value, bool):
        problems.append(f"{key!r} = {value!r} (expected true or false)")
        continue
    elif field in ("mean", "std"):
      if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{key!r} = {value!r} (expected a number)")
        continue
      value = float(value)
    elif isinstance(value, bool) or not isinstance(value, int):
      problems.append(f"{key!r} = {value!r} (expected an integer)")
      continue
    values[field] = value
  if values.get("sample_rate_hz", 16000) != 16000:
    problems.append(f"'sampling_rate' = {values['sample_rate_hz']} (expected 16000: the Kaldi "
                    "fbank of AST checkpoints is defined at 16 kHz)")
  if config.get("feature_size", 1) != 1:
    problems.append(f"'feature_size' = {config.get('feature_size')!r} (expected 1, mono)")
  if problems:
    raise ConfigError(f"{where}: not an AST feature extractor configuration: "
                      f"{'; '.join(problems)}. Pass the checkpoint folder of an AST model "
                      "(e.g. MIT/ast-finetuned-audioset-10-10-0.4593).")
  return ASTParams(hop_seconds=hop_seconds, **values)
