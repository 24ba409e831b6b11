"""CLAP's deterministic 10 s windows, whole-signal and streamed.

A file, resampled to 48 kHz as CLAP's reference loading does (``librosa.load(path,
sr=48000)``: soxr HQ with librosa's output length; ``audiobeam.resample`` method
"soxr_hq" with ``length_rule="librosa"``), is cut into windows of 480,000 samples
(10 s) starting every ``hop_samples`` (``--clap_hop_seconds``, default 10 s: windows
side by side):

* window ``i`` covers samples ``[i * hop, i * hop + 480000)``;
* a signal of ``n <= 480000`` samples gives one window (``n == 0``: TooShortError);
* otherwise windows continue until one reaches the end of the signal: ``1 +
  ceil((n - 480000) / hop)`` windows; the last one may be partial;
* a partial window is padded exactly as ``ClapFeatureExtractor`` pads a clip shorter
  than ``max_length_s`` with ``padding="repeatpad"`` (the value of every published
  checkpoint; ``models.clap.loading`` refuses others): the segment tiled
  ``int(480000 / len)`` times, then zeros. The extractor then sees a full window and
  never crops at random.

Every window is thus exactly what the extractor gets for a clip of at most 10 s:
feeding the window, or the short clip itself, gives the same features.

``ClapFrontEnd`` does this on a stream of float64 blocks with bounded memory (the
samples from the next window's start onwards: at most one window plus one block) and
yields float32 ``[k, 480000]`` blocks; ``cut_windows`` does it on a whole signal
(tests compare the two).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterator

import numpy as np

from audiobeam.bundle import FrontEnd, InputBlock
from audiobeam.errors import ConfigError, TooShortError
from models.clap.params import DEFAULT_PARAMS, ClapParams

__all__ = [
    "hop_samples_for",
    "num_windows",
    "pad_window",
    "cut_windows",
    "ClapFrontEnd",
]


def hop_samples_for(hop_seconds: float, params: ClapParams = DEFAULT_PARAMS) -> int:
  """``--clap_hop_seconds`` -> samples at 48 kHz; ConfigError unless 0 < hop <= 10 s and
  a whole number of samples."""
  if isinstance(hop_seconds, (bool, np.bool_)) or not isinstance(hop_seconds, numbers.Real):
    raise ConfigError(f"expected --clap_hop_seconds to be a number of seconds, found {hop_seconds!r}")
  hop = float(hop_seconds)
  if not math.isfinite(hop) or hop <= 0 or hop > params.window_seconds:
    raise ConfigError(
        f"expected --clap_hop_seconds in (0, {params.window_seconds:g}] (a larger hop would "
        f"skip audio between windows), found {hop_seconds!r}")
  samples = hop * params.sample_rate_hz
  if abs(samples - round(samples)) > 1e-6:
    raise ConfigError(
        f"expected --clap_hop_seconds to be a whole number of samples at "
        f"{params.sample_rate_hz} Hz, found {hop_seconds!r} ({samples:.4f} samples); "
        f"try {round(samples) / params.sample_rate_hz!r}")
  return int(round(samples))


def num_windows(num_samples: int, hop_samples: int,
                window_samples: int = DEFAULT_PARAMS.window_samples) -> int:
  """Windows of a signal of ``num_samples`` (0 for an empty one)."""
  if num_samples <= 0:
    return 0
  if num_samples <= window_samples:
    return 1
  return 1 + -(-(num_samples - window_samples) // hop_samples)


def pad_window(segment: np.ndarray, window_samples: int = DEFAULT_PARAMS.window_samples
               ) -> np.ndarray:
  """[m] with 0 < m <= window_samples -> [window_samples]: "repeatpad" as the extractor
  does it (tiled ``int(window / m)`` times, then zeros)."""
  m = segment.shape[0]
  if m == window_samples:
    return segment
  if m == 0 or m > window_samples:
    raise ValueError(f"expected 0 < len <= {window_samples}, got {m}")
  tiled = np.tile(segment, int(window_samples / m))
  out = np.zeros(window_samples, dtype=segment.dtype)
  out[:tiled.shape[0]] = tiled
  return out


def cut_windows(signal: np.ndarray, hop_samples: int, params: ClapParams = DEFAULT_PARAMS
                ) -> np.ndarray:
  """Whole 48 kHz signal [n] -> float32 [num_windows, window_samples] (n > 0)."""
  signal = np.asarray(signal, dtype=np.float64)
  w = params.window_samples
  count = num_windows(signal.shape[0], hop_samples, w)
  out = np.empty((count, w), dtype=np.float32)
  for i in range(count):
    out[i] = pad_window(signal[i * hop_samples:i * hop_samples + w], w)
  return out


class ClapFrontEnd(FrontEnd):
  """Streams one file's 48 kHz mono samples into CLAP windows (see the module docstring).

  ``padded`` is True when the last window was padded (a partial window).
  """

  def __init__(self, hop_samples: int, params: ClapParams = DEFAULT_PARAMS):
    self.hop_samples = int(hop_samples)
    self.params = params
    self.window_samples = params.window_samples
    self.num_frames = 0
    self.padded = False
    self.num_samples = 0                     # samples received
    self._data = np.zeros(2 * self.window_samples, dtype=np.float64)
    self._start = 0                          # absolute index of _data[0]
    self._length = 0                         # valid samples in _data
    self._finished = False

  # --- buffer ---------------------------------------------------------------------
  def _append(self, samples: np.ndarray) -> None:
    keep_from = self.num_frames * self.hop_samples     # the next window's start
    drop = min(max(keep_from - self._start, 0), self._length)
    if self._length + samples.shape[0] > self._data.shape[0]:
      kept = self._data[drop:self._length]
      capacity = max(self._data.shape[0], kept.shape[0] + samples.shape[0])
      data = np.empty(capacity, dtype=np.float64) if capacity > self._data.shape[0] else self._data
      data[:kept.shape[0]] = kept            # overlapping copy is safe: drop >= 0
      self._data, self._start, self._length = data, self._start + drop, kept.shape[0]
    self._data[self._length:self._length + samples.shape[0]] = samples
    self._length += samples.shape[0]

  def _segment(self, begin: int, end: int) -> np.ndarray:
    return self._data[begin - self._start:end - self._start]

  def _blocks(self, windows: list[np.ndarray], first_index: int) -> Iterator[InputBlock]:
    step = self.params.max_windows_per_block
    for j in range(0, len(windows), step):
      yield InputBlock(start_index=first_index + j,
                       inputs=np.stack(windows[j:j + step]).astype(np.float32))

  # --- FrontEnd -----------------------------------------------------------------------
  def push(self, samples: np.ndarray) -> Iterator[InputBlock]:
    """samples: float64 [k] mono at 48 kHz -> the full windows completed by them."""
    if self._finished:
      raise RuntimeError("ClapFrontEnd.push() called after finish().")
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    if samples.shape[0] == 0:
      return
    self._append(samples)
    self.num_samples += samples.shape[0]
    first = self.num_frames
    windows = []
    while self.num_frames * self.hop_samples + self.window_samples <= self.num_samples:
      begin = self.num_frames * self.hop_samples
      windows.append(self._segment(begin, begin + self.window_samples).copy())
      self.num_frames += 1
      if len(windows) == self.params.max_windows_per_block:
        yield from self._blocks(windows, first)
        first, windows = self.num_frames, []
    yield from self._blocks(windows, first)

  def finish(self, duration_seconds: float) -> Iterator[InputBlock]:
    """End of file: the last, partial window (padded), if the signal needs one."""
    del duration_seconds  # The window count follows the samples received.
    if self._finished:
      return
    self._finished = True
    n = self.num_samples
    if n == 0:
      raise TooShortError("expected audio samples for CLAP, found none (the decoded file is "
                          "empty)", error_type="too_short")
    total = num_windows(n, self.hop_samples, self.window_samples)
    if self.num_frames >= total:
      return
    begin = self.num_frames * self.hop_samples
    window = pad_window(self._segment(begin, n), self.window_samples)
    self.num_frames += 1
    self.padded = True
    yield InputBlock(start_index=self.num_frames - 1,
                     inputs=window[None, :].astype(np.float32))
