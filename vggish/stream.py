"""The bounded-memory VGGish front end: decoded blocks -> 96x64 log-mel patches.

The whole-file computation of Google's reference front end (vggish_input.py) is::

    patches = frame_patches(log_mel_spectrogram(resample(to_mono(samples), sr, 16000)))

``iter_patches`` gives the same patches, in order, while holding only about one block
of audio: the generic driver ``audiobeam.stream.stream_inputs`` mixes blocks to mono and
resamples them with a ``StreamingResampler`` (whose concatenated output equals the
whole-signal resampling), and ``VGGishFrontEnd`` (the VGGish bundle's front end) cuts
the 16 kHz samples into patches. Patch ``i`` covers 16 kHz samples
``[i * hop, i * hop + 15600)`` with ``hop = params.patch_hop_samples``; an STFT frame
depends only on its own 400 samples, so computing the log-mel of each group of complete
patches separately, starting at a patch boundary (a multiple of the 160-sample STFT
hop), gives the same frames as the whole-signal spectrogram.

Short clips (fewer than ``params.patch_span_samples`` samples at 16 kHz, i.e. under
0.975 s) follow ``short_clips``: ``"reference"`` raises ``TooShortError`` (the reference
yields no patch), ``"pad"`` zero-pads the 16 kHz mono signal at the end to exactly one
patch.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from audiobeam.audio import AudioStream, block_frames_for, check_sample_rate, to_mono
from audiobeam.bundle import SHORT_CLIP_POLICIES, FrontEnd, HopBuffer, InputBlock, check_choice
from audiobeam.errors import AudioContentError, ConfigError, InputError, TooShortError
from audiobeam.resample import DEFAULT_RESAMPLER, _check_method, resample
from audiobeam.stream import BLOCK_SECONDS, Feed, StreamResult, stream_inputs
from vggish import features
from vggish.params import Params

__all__ = [
    "SHORT_CLIP_POLICIES",
    "VGGishFrontEnd",
    "PatchBlock",
    "PatchStats",
    "PatchStream",
    "iter_patches",
    "waveform_to_patches",
]

# Patches per log-mel call: bounds the STFT temporaries (~0.5 MB per patch).
_PATCHES_PER_CALL = 64


@dataclasses.dataclass(frozen=True)
class PatchBlock(InputBlock):
  """Consecutive patches of one file: ``patches[j]`` is patch ``start_index + j``.

  ``patches`` (= ``inputs``): float32 [k, patch_frames (96), num_mel_bins (64)], log-mel.
  """

  @property
  def patches(self) -> np.ndarray:
    return self.inputs


@dataclasses.dataclass(frozen=True)
class PatchStats:
  """What one pass over a file found.

  ``source_frames``: frames decoded at ``sample_rate_hz`` (per channel);
  ``num_samples``: mono samples at the model rate (16 kHz) after resampling;
  ``num_patches``: patches yielded; ``padded``: the clip was zero-padded to one patch.
  """

  source_frames: int
  sample_rate_hz: int
  channels: int
  num_samples: int
  num_patches: int
  padded: bool
  resampler: str

  @property
  def duration_seconds(self) -> float:
    """Decoded duration: ``source_frames / sample_rate_hz``."""
    return self.source_frames / self.sample_rate_hz


class VGGishFrontEnd(FrontEnd):
  """Cuts a 16 kHz mono signal, delivered in pieces, into log-mel patches.

  ``push(samples [k])`` yields ``PatchBlock``s (``InputBlock``s of float32 [k, 96, 64])
  for every patch that is complete; ``finish(duration_seconds)`` yields the padded patch
  when ``short_clips == "pad"`` asks for it, or raises ``TooShortError``.
  """

  def __init__(self, params: Params, short_clips: str = "reference", name: str = "<waveform>"):
    check_choice("short_clips", short_clips, SHORT_CLIP_POLICIES)
    self.params = params
    self.short_clips = short_clips
    self.name = name
    self.num_samples = 0          # 16 kHz samples received
    self.num_patches = 0          # patches yielded
    self.padded = False
    self._buffer = HopBuffer(np.float64)   # from sample num_patches * hop on

  def push(self, samples: np.ndarray) -> Iterator[PatchBlock]:
    samples = np.asarray(samples, dtype=np.float64)
    self.num_samples += samples.shape[0]
    self._buffer.append(samples)
    yield from self._drain()

  def _drain(self) -> Iterator[PatchBlock]:
    hop, span = self.params.patch_hop_samples, self.params.patch_span_samples
    while True:
      count = min(self.params.num_patches(self._buffer.samples.shape[0]), _PATCHES_PER_CALL)
      if count == 0:
        return
      signal = self._buffer.samples[:(count - 1) * hop + span]            # [n]
      log_mel = features.log_mel_spectrogram(signal, self.params)          # [F, 64]
      patches = features.frame_patches(log_mel, self.params).astype(np.float32)  # [count, 96, 64]
      if not np.isfinite(patches).all():
        raise AudioContentError(
            f"{self.name}: the log-mel spectrogram overflows (peak |sample| "
            f"{np.abs(signal).max():.3g}); expected samples of order 1 (float audio in "
            "[-1, 1]). Rescale the file.", error_type="non_finite_features")
      block = PatchBlock(self.num_patches, patches)
      self.num_patches += count
      self._buffer.consume(count * hop)
      yield block

  @property
  def num_frames(self) -> int:
    return self.num_patches

  def finish(self, duration_seconds: float) -> Iterator[PatchBlock]:
    if self.num_patches:
      return
    span = self.params.patch_span_samples
    if self.short_clips == "reference":
      raise TooShortError(
          f"{self.name}: {duration_seconds:.4f} s of audio ({self.num_samples} samples at "
          f"{self.params.sample_rate_hz} Hz) is shorter than one patch "
          f"({self.params.patch_span_seconds} s = {span} samples), so the reference yields no "
          "embedding. Use short_clips='pad' (--short_clips pad) to zero-pad it to one patch.")
    padded = np.zeros(span, dtype=np.float64)
    padded[:self._buffer.samples.shape[0]] = self._buffer.samples
    self._buffer.samples = padded
    self.padded = True
    yield from self._drain()


class PatchStream:
  """Iterator of ``PatchBlock`` over one opened file; ``stats`` once exhausted.

  Made by ``iter_patches``. Iterate it once; afterwards ``stats`` is a ``PatchStats``
  (``None`` before the end or after an error).
  """

  def __init__(self, stream: AudioStream, params: Params, resampler: str,
               short_clips: str, block_seconds: float):
    _check_method(resampler)
    check_choice("short_clips", short_clips, SHORT_CLIP_POLICIES)
    if not block_seconds > 0:
      raise ConfigError(f"block_seconds must be > 0, got {block_seconds!r}.")
    self.stream = stream
    self.params = params
    self.resampler = resampler
    self.short_clips = short_clips
    self.block_seconds = float(block_seconds)
    self.stats: PatchStats | None = None
    self._iterator = self._generate()

  def __iter__(self) -> "PatchStream":
    return self

  def __next__(self) -> PatchBlock:
    return next(self._iterator)

  def _generate(self) -> Iterator[PatchBlock]:
    info = self.stream.info
    frontend = VGGishFrontEnd(self.params, self.short_clips, self.stream.name)
    result = StreamResult()
    feeds = {"vggish": Feed(self.params.sample_rate_hz, self.resampler, frontend)}
    block_frames = block_frames_for(info, max_seconds=self.block_seconds)
    for _, block in stream_inputs(self.stream, feeds, result, block_frames):
      yield block
    if "vggish" in result.errors:
      raise result.errors["vggish"]
    self.stats = PatchStats(source_frames=result.source_frames, sample_rate_hz=info.sample_rate_hz,
                            channels=info.channels, num_samples=frontend.num_samples,
                            num_patches=frontend.num_patches, padded=frontend.padded,
                            resampler=self.resampler)


def iter_patches(stream: AudioStream, params: Params, resampler: str = DEFAULT_RESAMPLER,
                 short_clips: str = "reference",
                 block_seconds: float = BLOCK_SECONDS) -> PatchStream:
  """Stream the patches of an opened file (``audiobeam.audio.open_audio``), in order.

  Yields ``PatchBlock(start_index, patches float32 [k, 96, 64])``; the concatenation equals
  the whole-file front end (to float rounding). Holds about ``block_seconds`` of decoded
  audio at a time. Raises ``TooShortError`` (reference policy, no patch),
  ``AudioContentError`` (NaN/inf samples, nothing decoded) and ``DecodeError``.
  ``.stats`` of the returned iterator holds ``PatchStats`` after the last block.
  """
  return PatchStream(stream, params, resampler, short_clips, block_seconds)


def waveform_to_patches(waveform: np.ndarray, sample_rate_hz: int, params: Params,
                        resampler: str = DEFAULT_RESAMPLER,
                        short_clips: str = "reference") -> np.ndarray:
  """Whole-signal front end: waveform [n] or [n, channels] -> float32 [N, 96, 64].

  ``waveform`` is float in [-1, 1] at ``sample_rate_hz``; channels are averaged. Same
  code path as ``iter_patches`` (one block). Raises ``AudioContentError`` for NaN/inf
  or an empty waveform, ``DecodeError('invalid_sample_rate')`` for a rate outside
  ``audiobeam.audio``'s accepted range, and ``TooShortError`` as ``iter_patches`` does.
  """
  _check_method(resampler)
  check_choice("short_clips", short_clips, SHORT_CLIP_POLICIES)
  waveform = np.asarray(waveform)
  if waveform.ndim not in (1, 2):
    raise InputError(f"expected a waveform of shape [n] or [n, channels], got {waveform.shape}.",
                     error_type="bad_audio")
  if waveform.shape[0] == 0:
    raise AudioContentError("empty waveform (0 samples); expected audio.", error_type="no_samples")
  if not np.issubdtype(waveform.dtype, np.floating):
    raise ValueError(f"expected a float waveform in [-1, 1], got dtype {waveform.dtype}; "
                     "scale integer PCM first (int16: x / 32768).")
  if not np.isfinite(waveform).all():
    raise AudioContentError("waveform holds NaN or infinite samples; expected finite values.",
                            error_type="non_finite_samples")
  sample_rate_hz = check_sample_rate(sample_rate_hz, "waveform")
  mono = to_mono(waveform)                                              # [n]
  signal = resample(mono, sample_rate_hz, params.sample_rate_hz, resampler)  # [m]
  frontend = VGGishFrontEnd(params, short_clips)
  blocks = list(frontend.push(signal))
  blocks += list(frontend.finish(mono.shape[0] / sample_rate_hz))
  if not blocks:
    return np.zeros((0, params.patch_frames, params.num_mel_bins), dtype=np.float32)
  return np.concatenate([b.patches for b in blocks], axis=0)
