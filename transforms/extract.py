"""ExtractLogMelPatches: one matched file -> its 96x64 log-mel patches, one element each.

Each file is opened through Beam FileSystems (so ``gs://`` and ``s3://`` work) and
decoded, resampled and framed by ``audiobeam.audio`` + ``vggish.stream`` in bounded
memory. Patches are emitted one per element, keyed ``(uri, frame_index)``, so that the
batching in front of the model packs patches from many files into full batches.

For every file exactly one *outcome* leaves on the ``outcomes`` output, keyed by uri:
a ``ClipInfo`` (decoded; says how many frames were emitted) or an ``InputFailure``
(stage ``decode``: open/read/decode/sample problems; stage ``frontend``: too short for
one frame under ``--short_clips reference``). A file that fails part-way may already have emitted patches; the
join in ``PostprocessAndPool`` drops them, so the file is one errors row and no frames.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.records import AudioFile, ClipInfo, InputFailure
from audiobeam.errors import InputError, TooShortError
from vggish.params import Params
from audiobeam.redact import redact_text

__all__ = ["ExtractLogMelPatches", "OUTCOMES_TAG", "failure_from_exception"]

OUTCOMES_TAG = "outcomes"
_NAMESPACE = "audiobeam"
_MAX_MESSAGE_CHARS = 2000


def failure_from_exception(file: AudioFile, stage: str, error: BaseException) -> InputFailure:
  """An ``InputFailure`` for ``error``: InputErrors keep their ``error_type``; a file that
  cannot be opened or read (a directory, no permission, vanished) is ``unreadable``;
  anything else is ``unexpected_<ExceptionClass>`` so bugs stay visible but never fail
  the run."""
  if isinstance(error, InputError):
    error_type = error.error_type
  elif isinstance(error, (OSError, BeamIOError)):
    error_type = "unreadable"
  else:
    error_type = "unexpected_" + type(error).__name__
  message = redact_text(f"{type(error).__name__}: {error}")  # no credentials in errors/
  if len(message) > _MAX_MESSAGE_CHARS:
    message = message[:_MAX_MESSAGE_CHARS - 3] + "..."
  return InputFailure(file=file, stage=stage, error_type=error_type, message=message)


class _ExtractPatchesFn(beam.DoFn):
  """AudioFile -> ((uri, frame_index), float32 [96, 64]) + outcome (uri, ClipInfo|InputFailure)."""

  def __init__(self, params: Params, resampler: str, short_clips: str):
    self._params = params
    self._resampler = resampler
    self._short_clips = short_clips
    self._audio_ms = Metrics.counter(_NAMESPACE, "audio_milliseconds")
    self._decoded = Metrics.counter(_NAMESPACE, "files_decoded")

  def process(self, file: AudioFile):
    from audiobeam.audio import open_audio  # pylint: disable=import-outside-toplevel
    from vggish.stream import iter_patches  # pylint: disable=import-outside-toplevel

    uri = file.uri
    try:
      with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as raw_file:
        with open_audio(raw_file) as audio_stream:
          info = audio_stream.info
          patches = iter_patches(
              audio_stream, self._params, self._resampler, short_clips=self._short_clips)
          num_frames = 0
          for block in patches:
            for offset, patch in enumerate(block.patches):
              yield (uri, block.start_index + offset), patch
            num_frames += len(block.patches)
          stats = patches.stats  # vggish.stream.PatchStats, set after the last block
      if num_frames == 0 or stats is None:  # the front end raises TooShortError; never emit nothing
        raise _too_short(info.duration_seconds or 0.0, self._params)
      self._decoded.inc()
      self._audio_ms.inc(int(round(stats.duration_seconds * 1000)))
      yield beam.pvalue.TaggedOutput(OUTCOMES_TAG, (uri, ClipInfo(
          file=file,
          duration_seconds=float(stats.duration_seconds),
          sample_rate=int(info.sample_rate_hz),
          channels=int(info.channels),
          num_frames=num_frames,
          container=info.container,
          codec=info.codec,
          padded=bool(stats.padded))))
    except Exception as error:  # pylint: disable=broad-except
      # One bad file never fails the run: it becomes one errors row (see module doc).
      stage = "frontend" if isinstance(error, TooShortError) else "decode"
      yield beam.pvalue.TaggedOutput(
          OUTCOMES_TAG, (uri, failure_from_exception(file, stage, error)))


def _too_short(duration_seconds: float, params: Params):
  return TooShortError(
      f"expected at least {params.patch_span_seconds} s of audio for one frame, found "
      f"{duration_seconds:.3f} s; use --short_clips pad to embed short clips zero-padded")


class ExtractLogMelPatches(beam.PTransform):
  """PCollection[AudioFile] -> (patches, outcomes).

  patches: ``((uri, frame_index), float32 [96, 64])``; outcomes: ``(uri, ClipInfo |
  InputFailure)``, exactly one per input file.
  """

  def __init__(self, params: Params, resampler: str, short_clips: str):
    super().__init__()
    self._params = params
    self._resampler = resampler
    self._short_clips = short_clips

  def expand(self, files):
    results = files | "DecodeAndFrame" >> beam.ParDo(
        _ExtractPatchesFn(self._params, self._resampler, self._short_clips)).with_outputs(
            OUTCOMES_TAG, main="patches")
    return results.patches, results[OUTCOMES_TAG]
