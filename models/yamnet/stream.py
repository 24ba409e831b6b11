"""The bounded-memory YAMNet front end: 16 kHz samples in pieces -> 96x64 log-mel patches.

The whole-file computation (``features.waveform_to_patches``, the reference's) pads the
waveform at the end to ``15600 + 7680 * k`` samples and cuts the log-mel of the padded
signal into patches every 48 frames. Patch ``i`` covers samples
``[i * 7680, i * 7680 + 15600)``; each STFT frame depends only on its own 400 samples and
patch starts are multiples of the 160-sample STFT hop, so the log-mel of a group of
complete patches computed on its own, starting at a patch boundary, holds exactly the
frames of the whole-signal spectrogram. ``YAMNetFrontEnd`` does that for up to 64 patches
(~31 s) at a time, keeps only the samples from the next patch start on, and at the end
of the file zero-pads what is left exactly as the reference pads the whole waveform.

There is no short-clip policy: the reference pads every waveform to at least one patch,
and so do we (``padded`` says the file was shorter than one patch, 15600 samples).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from audiobeam.bundle import FrontEnd, HopBuffer, InputBlock
from audiobeam.errors import AudioContentError, InputError
from models.yamnet import features
from models.yamnet.params import DEFAULT_PARAMS, Params

__all__ = ["YAMNetFrontEnd", "PATCHES_PER_CALL"]

PATCHES_PER_CALL = 64
"""Patches per STFT call: ~31 s of audio, ~3000 frames x 257 bins of temporaries."""


class YAMNetFrontEnd(FrontEnd):
  """One file's mono 16 kHz samples, pushed in pieces -> ``InputBlock``s of patches.

  ``push(samples float [k])`` yields blocks (``inputs`` float32 [j, 96, 64]) of every
  patch completed so far; ``finish(duration_seconds)`` pads the tail as the reference
  does and yields the rest. After ``finish``: ``num_frames`` =
  ``params.num_patches(num_samples)`` (>= 1) and ``padded`` = the file had fewer than
  15600 samples. Holds at most ``patches_per_call`` patches' worth of samples plus the
  last pushed piece. Raises ``AudioContentError('non_finite_features')`` when samples are
  so large that the float32 spectrum overflows.
  """

  def __init__(self, params: Params = DEFAULT_PARAMS, name: str = "<waveform>",
               patches_per_call: int = PATCHES_PER_CALL):
    if patches_per_call < 1:
      raise ValueError(f"patches_per_call must be >= 1, got {patches_per_call}")
    self.params = params
    self.name = name
    self.patches_per_call = int(patches_per_call)
    self.num_samples = 0                         # samples pushed (16 kHz)
    self.num_frames = 0                          # patches yielded
    self.padded = False
    self._buffer = HopBuffer(np.float32)         # from sample num_frames * hop on
    self._finished = False

  @property
  def buffered_samples(self) -> int:
    """Samples held for patches not yet complete (bounded: see the class docstring)."""
    return int(self._buffer.samples.shape[0])

  def push(self, samples: np.ndarray) -> Iterator[InputBlock]:
    if self._finished:
      raise RuntimeError("push() after finish(): use a fresh front end per file")
    samples = np.asarray(samples)
    if samples.ndim != 1:
      raise InputError(f"{self.name}: expected mono samples of shape [k], got {samples.shape}",
                       error_type="bad_audio")
    self.num_samples += samples.shape[0]
    self._buffer.append(samples.astype(np.float32))  # The reference's waveform is float32.
    yield from self._drain()

  def finish(self, duration_seconds: float) -> Iterator[InputBlock]:
    del duration_seconds  # Every length gives patches: the reference pads.
    if self._finished:
      raise RuntimeError("finish() called twice")
    self._finished = True
    params = self.params
    remaining = params.num_patches(self.num_samples) - self.num_frames
    if remaining > 0:
      needed = (remaining - 1) * params.patch_hop_samples + params.patch_span_samples
      tail = np.zeros(needed, np.float32)
      tail[:self._buffer.samples.shape[0]] = self._buffer.samples
      self._buffer.samples = tail
      yield from self._drain()
    self.padded = self.num_samples < params.patch_span_samples
    self._buffer = HopBuffer(np.float32)

  def _drain(self) -> Iterator[InputBlock]:
    hop, span = self.params.patch_hop_samples, self.params.patch_span_samples
    while self._buffer.samples.shape[0] >= span:
      count = min(1 + (self._buffer.samples.shape[0] - span) // hop, self.patches_per_call)
      signal = self._buffer.samples[:(count - 1) * hop + span]                       # [n]
      log_mel = features.log_mel_spectrogram(signal, self.params)                    # [F, 64]
      patches = np.array(features.frame_patches(log_mel, self.params))               # [count, 96, 64]
      if not np.isfinite(patches).all():
        raise AudioContentError(
            f"{self.name}: the float32 log-mel spectrogram overflows (peak |sample| "
            f"{float(np.max(np.abs(signal.astype(np.float64)))):.3g}); expected samples of "
            "order 1 (float audio in [-1, 1]). Rescale the file.",
            error_type="non_finite_features")
      block = InputBlock(self.num_frames, patches)
      self.num_frames += count
      self._buffer.consume(count * hop)
      yield block
