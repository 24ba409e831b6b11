"""CLMR's streaming front end: 22050 Hz mono samples -> raw 59049-sample windows.

CLMR reads raw audio: window ``i`` is samples ``[i * hop, i * hop + 59049)`` of the
file's 22050 Hz mono signal, as float32, unchanged (no normalisation; float audio in
[-1, 1] as decoded). ``hop`` is ``--clmr_hop_seconds`` in samples, 59049 by default
(consecutive non-overlapping windows, as CLMR's evaluation and Towhee's operator cut a
track). A trailing part shorter than a window is not embedded, as VGGish's reference
drops its partial patch. A file shorter than one window follows ``short_clips``:
``"reference"`` raises ``TooShortError`` (the reference yields nothing), ``"pad"``
zero-pads it to one window (``padded = True``).

``CLMRFrontEnd`` is fed samples in pieces of any length and yields exactly the windows
of ``whole_file_windows`` while holding about one window plus one piece.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from audiobeam.bundle import SHORT_CLIP_POLICIES, FrontEnd, HopBuffer, InputBlock, check_choice
from audiobeam.errors import AudioContentError, TooShortError
from models.clmr.params import CLMRParams

__all__ = ["CLMRFrontEnd", "whole_file_windows"]

# Windows per InputBlock: bounds a block to ~7 MB of float32.
_WINDOWS_PER_BLOCK = 32


def _too_short(num_samples: int, params: CLMRParams) -> TooShortError:
  return TooShortError(
      f"{num_samples} samples at {params.sample_rate_hz} Hz "
      f"({num_samples / params.sample_rate_hz:.4f} s) is shorter than one CLMR window "
      f"({params.window_samples} samples, {params.window_seconds:.4f} s), so the reference "
      "yields no embedding. Use --short_clips pad to zero-pad it to one window.")


def _as_inputs(windows: np.ndarray) -> np.ndarray:
  if not np.isfinite(windows).all():
    raise AudioContentError("non-finite samples in a CLMR window; expected finite audio.",
                            error_type="non_finite_samples")
  return windows.astype(np.float32)


def whole_file_windows(signal: np.ndarray, params: CLMRParams,
                       short_clips: str = "reference") -> tuple[np.ndarray, bool]:
  """Whole-file computation: 22050 Hz mono [n] -> (float32 [N, 59049], padded)."""
  check_choice("short_clips", short_clips, SHORT_CLIP_POLICIES)
  signal = np.asarray(signal, dtype=np.float64)
  padded = False
  if signal.shape[0] < params.window_samples:
    if short_clips == "reference":
      raise _too_short(signal.shape[0], params)
    signal = np.concatenate([signal, np.zeros(params.window_samples - signal.shape[0])])
    padded = True
  count = params.num_windows(signal.shape[0])
  windows = np.stack([signal[i * params.hop:i * params.hop + params.window_samples]
                      for i in range(count)])
  return _as_inputs(windows), padded


class CLMRFrontEnd(FrontEnd):
  """Streaming CLMR windows for one file (see the module docstring)."""

  def __init__(self, params: CLMRParams, short_clips: str = "reference"):
    check_choice("short_clips", short_clips, SHORT_CLIP_POLICIES)
    self.params = params
    self.short_clips = short_clips
    self.num_frames = 0            # windows yielded
    self.padded = False
    self.num_samples = 0           # samples received
    self._buffer = HopBuffer(np.float64)   # from sample num_frames * hop on
    self._finished = False

  def push(self, samples: np.ndarray) -> Iterator[InputBlock]:
    if self._finished:
      raise RuntimeError("CLMRFrontEnd.push() called after finish().")
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    self.num_samples += samples.shape[0]
    self._buffer.append(samples)
    yield from self._drain()

  def finish(self, duration_seconds: float) -> Iterator[InputBlock]:
    del duration_seconds
    if self._finished:
      return
    self._finished = True
    if self.num_frames == 0:
      if self.short_clips == "reference":
        raise _too_short(self.num_samples, self.params)
      padded = np.zeros(self.params.window_samples, dtype=np.float64)
      padded[:self._buffer.samples.shape[0]] = self._buffer.samples
      self._buffer.samples = padded
      self.padded = True
      yield from self._drain()

  def _drain(self) -> Iterator[InputBlock]:
    p = self.params
    while True:
      count = min(p.num_windows(self._buffer.samples.shape[0]), _WINDOWS_PER_BLOCK)
      if count == 0:
        return
      windows = np.stack([self._buffer.samples[i * p.hop:i * p.hop + p.window_samples]
                          for i in range(count)])
      block = InputBlock(self.num_frames, _as_inputs(windows))
      self.num_frames += count
      self._buffer.consume(count * p.hop)
      yield block
