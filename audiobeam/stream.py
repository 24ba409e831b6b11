"""The streaming driver: one decoded file -> every model's inputs, in bounded memory.

A file is decoded once, block by block; each block is mixed to mono once and resampled
once per distinct (rate, resampler, length rule) among the models; each model's ``FrontEnd``
(``audiobeam.bundle``) receives its rate's samples and gives its inputs::

    open_audio(file) --blocks--> to_mono --+-- StreamingResampler(16 kHz) --> vggish, yamnet
                                           +-- StreamingResampler(48 kHz) --> clap

Failure isolation: a decode error ends the file for every model (it is raised); an
``InputError`` raised by one model's front end (too short, non-finite features) ends the
file for that model only, is kept in ``StreamResult.errors`` and the other models go on.
Memory: about one decoded block (``block_frames`` x channels) plus each front end's own
buffer; ``audiobeam.audio.block_frames_for`` sizes the block (at most
``BLOCK_SECONDS``) from a byte budget so that many-channel or high-rate files stay within it.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping

import numpy as np

from audiobeam.audio import AudioStream, block_frames_for, to_mono
from audiobeam.bundle import FrontEnd, InputBlock, ModelBundle
from audiobeam.errors import AudioContentError, InputError
from audiobeam.resample import StreamingResampler

__all__ = ["BLOCK_SECONDS", "Feed", "StreamResult", "stream_inputs"]

# Seconds of audio decoded per block. A block's arrays (2.8 MB of float64 for 44.1 kHz
# stereo) then stay below glibc's largest mmap threshold (32 MB), so freed blocks are
# reused from the heap; 60 s blocks (42 MB decoded, 21 MB mono) were mmapped and
# page-faulted afresh every block. Measured on a 10-min 44.1 kHz stereo WAV through
# VGGish's front end (3 paired runs): user CPU 1.09-1.16 s either way, system CPU 0.17-0.70 s
# with 60 s blocks against 0.01-0.02 s with 4 s blocks (7,000-16,000 minor page faults
# against ~450). Outputs do not depend on it (every stage streams exactly).
BLOCK_SECONDS = 4.0


@dataclasses.dataclass
class Feed:
  """One model fed by the driver: its rate, resampler (and length rule) and a fresh
  front end."""

  rate_hz: int
  resampler: str
  frontend: FrontEnd
  length_rule: str = "resampy"

  @classmethod
  def for_bundle(cls, bundle: ModelBundle) -> "Feed":
    """The feed of ``bundle``: its rate, resampler, length rule and a fresh front end."""
    return cls(bundle.sample_rate_hz, bundle.resampler, bundle.frontend(),
               bundle.resample_length_rule)

  @property
  def key(self) -> tuple[int, str, str]:
    """Models with equal keys share one resampled signal."""
    return (self.rate_hz, self.resampler, self.length_rule)


@dataclasses.dataclass
class StreamResult:
  """What one pass found, set when ``stream_inputs`` is exhausted.

  ``source_frames`` decoded at ``sample_rate_hz`` (per channel); ``errors``: model name ->
  the ``InputError`` that ended the file for that model.
  """

  source_frames: int = 0
  sample_rate_hz: int = 0
  channels: int = 0
  errors: dict[str, InputError] = dataclasses.field(default_factory=dict)
  finished: bool = False

  @property
  def duration_seconds(self) -> float:
    return self.source_frames / self.sample_rate_hz if self.sample_rate_hz else 0.0


def stream_inputs(stream: AudioStream, feeds: Mapping[str, Feed], result: StreamResult,
                  block_frames: int | None = None) -> Iterator[tuple[str, InputBlock]]:
  """Yields ``(model name, InputBlock)`` for every model of ``feeds``, in file order.

  ``result`` is filled as the file is read; it is complete once the iterator is
  exhausted (``result.finished``). Decode errors propagate; a front end's ``InputError``
  is recorded in ``result.errors`` and that model is fed no more. A file that decodes to
  no samples at all raises ``AudioContentError('no_samples')``.
  """
  info = stream.info
  result.sample_rate_hz, result.channels = info.sample_rate_hz, info.channels
  if block_frames is None:
    block_frames = block_frames_for(info, max_seconds=BLOCK_SECONDS)
  live = dict(feeds)
  converters: dict[tuple[int, str, str], StreamingResampler] = {}
  for feed in live.values():
    if feed.key not in converters:
      converters[feed.key] = StreamingResampler(info.sample_rate_hz, feed.rate_hz, feed.resampler,
                                                length_rule=feed.length_rule)

  def deliver(key, samples):
    for name, feed in list(live.items()):
      if feed.key != key:
        continue
      try:
        for block in feed.frontend.push(samples):
          yield name, block
      except InputError as error:
        result.errors[name] = error
        del live[name]

  for block in stream.blocks(block_frames):                        # [k, channels], finite
    mono = to_mono(block)                                            # [k]
    del block
    for key, converter in converters.items():
      if any(f.key == key for f in live.values()):
        yield from deliver(key, converter.process(mono))
  for key, converter in converters.items():
    if any(f.key == key for f in live.values()):
      yield from deliver(key, converter.flush())
  result.source_frames = stream.frames_decoded
  if result.source_frames == 0:
    raise AudioContentError(f"{stream.name}: no audio samples decoded; expected audio.",
                            error_type="no_samples")
  for name, feed in list(live.items()):
    try:
      for block in feed.frontend.finish(result.duration_seconds):
        yield name, block
    except InputError as error:
      result.errors[name] = error
  result.finished = True
