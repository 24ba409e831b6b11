"""AST's streaming front end: 16 kHz mono samples -> normalised 1024 x 128 fbank windows.

transformers' ``ASTFeatureExtractor`` turns one waveform into one model input: the
Kaldi fbank of the waveform (``models.ast.fbank``), cut after 1024 frames or zero-padded
up to 1024 frames (zeros in the log-mel domain), then normalised as
``(fbank - mean) / (2 * std)``. Called on a whole file, it sees only the first 10.24 s.

Here the whole file is covered: window ``w`` holds fbank frames
``[w * hop, w * hop + 1024)`` of the whole-file fbank (``hop = ast_hop_seconds / 10 ms``,
1024 by default: consecutive, non-overlapping windows), i.e. exactly what the extractor
gives for the samples ``[w * hop * 160, w * hop * 160 + 164080)`` of the file, since an
fbank frame depends only on its own 400 samples. The last window is what the extractor
gives for the file's remaining samples: its frames run out and the rest is zero-padded
before normalisation. Windows exist while they start inside the file and the previous
one does not already reach its last frame (``ASTParams.num_windows``).

``ASTFrontEnd`` is fed 16 kHz float64 mono in pieces of any length and yields the same
windows as ``whole_file_inputs`` while holding about one window of frames plus one
piece of samples.

Short files: a file under one fbank frame (400 samples, 25 ms at 16 kHz) has no fbank
(torchaudio rejects it) and follows ``short_clips``: ``"reference"`` raises
``TooShortError``, ``"pad"`` zero-pads the samples to one frame (``padded = True``).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from audiobeam.bundle import SHORT_CLIP_POLICIES, FrontEnd, InputBlock, check_choice
from audiobeam.errors import AudioContentError, TooShortError
from models.ast import fbank as fbank_lib
from models.ast.params import ASTParams

__all__ = ["ASTFrontEnd", "normalize", "whole_file_inputs", "window_frames"]


def normalize(frames: np.ndarray, params: ASTParams) -> np.ndarray:
  """fbank frames float [..., 128] -> model input float32: ``(x - mean) / (2 std)``."""
  frames = np.asarray(frames, dtype=np.float64)
  if params.do_normalize:
    frames = (frames - params.mean) / (2.0 * params.std)
  return frames.astype(np.float32)


def window_frames(frames: np.ndarray, start_frame: int, params: ASTParams) -> np.ndarray:
  """Frames ``[start, start + 1024)`` of ``frames`` [F, 128], zero-padded past F -> [1024, 128]."""
  out = np.zeros((params.max_length_frames, params.num_mel_bins), dtype=np.float64)
  piece = frames[start_frame:start_frame + params.max_length_frames]
  out[:piece.shape[0]] = piece
  return out


def _too_short(num_samples: int, params: ASTParams) -> TooShortError:
  return TooShortError(
      f"{num_samples} samples at {params.sample_rate_hz} Hz "
      f"({num_samples / params.sample_rate_hz:.4f} s) is shorter than one fbank frame "
      f"({params.frame_length_samples} samples, {params.frame_length_seconds} s): the reference "
      "extractor has no features for it. Use --short_clips pad to zero-pad it to one frame.")


def _check_finite(inputs: np.ndarray) -> np.ndarray:
  if not np.isfinite(inputs).all():
    raise AudioContentError(
        "the fbank features overflow (non-finite values); expected samples of order 1 "
        "(float audio in [-1, 1]). Rescale the file.", error_type="non_finite_features")
  return inputs


def whole_file_inputs(signal: np.ndarray, params: ASTParams,
                      short_clips: str = "reference") -> tuple[np.ndarray, bool]:
  """Whole-file computation: 16 kHz mono float [n] -> (float32 [N, 1024, 128], padded).

  The definition the streaming ``ASTFrontEnd`` is tested against. Raises
  ``TooShortError`` under the reference policy for a file under one fbank frame.
  """
  check_choice("short_clips", short_clips, SHORT_CLIP_POLICIES)
  signal = np.asarray(signal, dtype=np.float64)
  padded = False
  if params.num_fbank_frames(signal.shape[0]) == 0:
    if short_clips == "reference":
      raise _too_short(signal.shape[0], params)
    signal = np.concatenate([signal, np.zeros(params.frame_length_samples - signal.shape[0])])
    padded = True
  frames = fbank_lib.fbank(signal, params)                                  # [F, 128]
  count = params.num_windows(frames.shape[0])
  windows = [window_frames(frames, w * params.hop_frames, params) for w in range(count)]
  return _check_finite(normalize(np.stack(windows), params)), padded


class ASTFrontEnd(FrontEnd):
  """Streaming AST front end for one file (see the module docstring).

  ``push(samples float64 [k])`` yields ``InputBlock``s of float32 [j, 1024, 128] for every
  window whose frames are complete; ``finish(duration_seconds)`` yields the last
  (zero-padded) window(s). ``num_frames`` counts windows yielded; ``padded`` says the
  short-clip policy padded the file.
  """

  def __init__(self, params: ASTParams, short_clips: str = "reference"):
    check_choice("short_clips", short_clips, SHORT_CLIP_POLICIES)
    self.params = params
    self.short_clips = short_clips
    self.num_frames = 0            # windows yielded
    self.padded = False
    self.num_samples = 0           # 16 kHz samples received
    self._samples = np.zeros(0, dtype=np.float64)   # starts at sample fbank_frames * shift
    self.fbank_frames = 0          # fbank frames computed so far
    self._frames = np.zeros((0, params.num_mel_bins), dtype=np.float64)
    self._frames_start = 0         # absolute index of _frames[0]
    self._finished = False

  # --- feeding ----------------------------------------------------------------------
  def push(self, samples: np.ndarray) -> Iterator[InputBlock]:
    if self._finished:
      raise RuntimeError("ASTFrontEnd.push() called after finish().")
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    self.num_samples += samples.shape[0]
    self._add_samples(samples)
    yield from self._drain(final=False)

  def finish(self, duration_seconds: float) -> Iterator[InputBlock]:
    del duration_seconds  # The 16 kHz sample count decides.
    if self._finished:
      return
    self._finished = True
    if self.fbank_frames == 0:
      if self.short_clips == "reference":
        raise _too_short(self.num_samples, self.params)
      self._add_samples(np.zeros(self.params.frame_length_samples - self._samples.shape[0]))
      self.padded = True
    yield from self._drain(final=True)

  # --- internals --------------------------------------------------------------------
  def _add_samples(self, samples: np.ndarray) -> None:
    p = self.params
    buffer = np.concatenate([self._samples, samples]) if self._samples.size else samples
    count = p.num_fbank_frames(buffer.shape[0])
    if count == 0:
      self._samples = buffer.copy() if buffer is samples else buffer
      return
    used = (count - 1) * p.frame_shift_samples + p.frame_length_samples
    new_frames = fbank_lib.fbank(buffer[:used], p)                         # [count, 128]
    first = self.fbank_frames
    self.fbank_frames += count
    self._samples = buffer[count * p.frame_shift_samples:].copy()
    keep_from = max(self._frames_start - first, 0)    # frames before the next window: dropped
    if keep_from < count:
      kept = new_frames[keep_from:]
      self._frames = np.concatenate([self._frames, kept]) if self._frames.size else kept
      if self._frames.shape[0] == kept.shape[0]:
        self._frames_start = first + keep_from

  def _drain(self, final: bool) -> Iterator[InputBlock]:
    p = self.params
    hop, span = p.hop_frames, p.max_length_frames
    if final:
      stop = p.num_windows(self.fbank_frames)
    else:  # windows whose frames are all computed
      stop = 0 if self.fbank_frames < span else (self.fbank_frames - span) // hop + 1
    if stop <= self.num_frames:
      return
    windows = [window_frames(self._frames, w * hop - self._frames_start, p)
               for w in range(self.num_frames, stop)]
    block = InputBlock(self.num_frames, _check_finite(normalize(np.stack(windows), p)))
    self.num_frames = stop
    next_start = stop * hop
    drop = next_start - self._frames_start
    if drop >= self._frames.shape[0]:
      self._frames = np.zeros((0, p.num_mel_bins), dtype=np.float64)
    elif drop > 0:
      self._frames = self._frames[drop:].copy()
    self._frames_start = next_start
    yield block
