"""CLAP's log-mel input features for whole 10 s windows, batched in torch.

``ClapFeatureExtractor`` computes, per clip, in numpy with a Python loop over 1,001
STFT frames (~0.2 s per window on one CPU core): this module evaluates the same
arithmetic for a batch of windows at once, on the model's device, so that the model
stage is not starved (on a GPU the reference extractor would be the bottleneck).

For a window of exactly ``max_length_s * sampling_rate`` samples (480,000; our front end
only ever makes such windows) the extractor neither crops nor pads, so the features are
``_np_extract_fbank_features(window, filters)``:

1. centre-pad by ``fft_window_size // 2`` samples on each side, mode "reflect";
2. frames of ``fft_window_size`` samples every ``hop_length`` samples (1,001 frames),
   times a periodic Hann window, in float64;
3. ``rfft`` per frame, stored as complex64 (the extractor's buffer dtype), then
   ``|X| ** 2`` in float64 (as ``re**2 + im**2``: the extractor squares ``hypot(re, im)``,
   which can differ in the last bit of a float64; the float32 features agree);
4. mel energies ``power @ filters`` floored at 1e-10, the filters being the
   extractor's own ``mel_filters`` (HTK, no norm) when ``truncation == "fusion"``,
   ``mel_filters_slaney`` otherwise;
5. ``10 * log10(mel)`` (``power_to_db`` with reference 1.0, no ``top_db``), cast to
   float32, shape ``[frames, feature_size]``;
6. unfused: one channel ``[1, 1001, 64]``; fusion: the same spectrogram four times
   ``[4, 1001, 64]`` (the extractor's stack for a clip that is not longer than 10 s).

``is_longer``: what the extractor returns for that window passed ALONE: False with
"rand_trunc" (a 10 s window is not longer than 10 s); with "fusion", the extractor
marks one random clip of a batch in which no clip is longer as longer, and in a batch
of one that is always the window itself: True. Computed per window, never from its
batch, so results do not depend on batch composition.

The maths is transformers' ``ClapFeatureExtractor`` (Apache-2.0, the Hugging Face
team); the code is written for this project and checked against the extractor in
``tests/test_clap_model.py``. Imports torch: only the model side imports this module.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

__all__ = ["MelSettings", "log_mel_features", "is_longer_flags"]

_MEL_FLOOR = 1e-10          # spectrogram()'s mel_floor and power_to_db's min_value
_WINDOWS_PER_STFT_CHUNK = 8  # bounds the float64 STFT temporaries (~35 MB per window)


@dataclasses.dataclass(frozen=True)
class MelSettings:
  """The extractor settings that the features depend on (from preprocessor_config.json).

  ``mel_filters``: float64 [fft_window_size // 2 + 1, feature_size], the extractor's own
  filter bank for its truncation mode; ``hann_window``: float64 [fft_window_size].
  """

  fft_window_size: int
  hop_length: int
  window_samples: int
  fusion: bool
  mel_filters: np.ndarray
  hann_window: np.ndarray

  @classmethod
  def from_extractor(cls, extractor) -> "MelSettings":
    """From a ``transformers.ClapFeatureExtractor`` built from the checkpoint's config."""
    from transformers.audio_utils import window_function

    fusion = extractor.truncation == "fusion"
    filters = extractor.mel_filters if fusion else extractor.mel_filters_slaney
    return cls(fft_window_size=int(extractor.fft_window_size),
               hop_length=int(extractor.hop_length),
               window_samples=int(extractor.nb_max_samples), fusion=fusion,
               mel_filters=np.asarray(filters, dtype=np.float64),
               hann_window=np.asarray(window_function(extractor.fft_window_size, "hann"),
                                      dtype=np.float64))

  @property
  def num_frames(self) -> int:
    """1001: STFT frames of one centre-padded window."""
    return 1 + self.window_samples // self.hop_length

  @property
  def channels(self) -> int:
    return 4 if self.fusion else 1


def _log_mel_chunk(windows: torch.Tensor, settings: MelSettings, filters: torch.Tensor,
                   hann: torch.Tensor) -> torch.Tensor:
  """float [k, samples] -> float32 [k, frames, mel] (steps 1-5 of the module docstring)."""
  half = settings.fft_window_size // 2
  x = windows.to(torch.float64)
  x = torch.nn.functional.pad(x[:, None, :], (half, half), mode="reflect")[:, 0, :]
  frames = x.unfold(-1, settings.fft_window_size, settings.hop_length)  # [k, T, fft]
  spectrum = torch.fft.rfft(frames * hann, dim=-1)                        # [k, T, bins]
  parts = torch.view_as_real(spectrum.to(torch.complex64)).to(torch.float64)
  power = parts[..., 0] ** 2 + parts[..., 1] ** 2                          # float64
  mel = torch.clamp(power @ filters, min=_MEL_FLOOR)                      # [k, T, mel]
  return (10.0 * torch.log10(mel)).to(torch.float32)


def log_mel_features(windows: torch.Tensor, settings: MelSettings) -> torch.Tensor:
  """Model input features for whole windows.

  windows: float32 or float64 ``[N, window_samples]`` on any device -> float32
  ``[N, channels, frames, feature_size]`` (``[N, 1, 1001, 64]`` unfused,
  ``[N, 4, 1001, 64]`` fused) on the same device.
  """
  if windows.ndim != 2 or windows.shape[1] != settings.window_samples:
    raise ValueError(f"expected windows [N, {settings.window_samples}], got "
                     f"{tuple(windows.shape)}")
  filters = torch.as_tensor(settings.mel_filters, dtype=torch.float64, device=windows.device)
  hann = torch.as_tensor(settings.hann_window, dtype=torch.float64, device=windows.device)
  chunks = [_log_mel_chunk(windows[i:i + _WINDOWS_PER_STFT_CHUNK], settings, filters, hann)
            for i in range(0, windows.shape[0], _WINDOWS_PER_STFT_CHUNK)]
  mel = torch.cat(chunks, dim=0) if chunks else windows.new_zeros(
      (0, settings.num_frames, filters.shape[1]), dtype=torch.float32)
  return mel[:, None].expand(-1, settings.channels, -1, -1).contiguous()


def is_longer_flags(num_windows: int, settings: MelSettings, device=None) -> torch.Tensor:
  """bool ``[N, 1]``: the extractor's ``is_longer`` for each window called alone."""
  return torch.full((num_windows, 1), settings.fusion, dtype=torch.bool, device=device)
