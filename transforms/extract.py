"""ExtractModelInputs: one matched file -> every model's inputs, one element each.

Each file is opened with ``audiobeam.inputs.open_input`` (local regular files only;
``gs://`` and ``s3://`` with bounded retries; a storage that is down stops the job with
``StorageDownError``), decoded once, mixed to mono once and resampled once per distinct model rate by the streaming
driver ``audiobeam.stream.stream_inputs``, in bounded memory; each model's front end
(its bundle's ``frontend()``) cuts its inputs. Inputs are emitted one per element, keyed
``(uri, frame_index)``, on the model's own output (``inputs_<model>``), so the batching in
front of each model packs inputs from many files into full batches.

For every (file, model) exactly one *outcome* leaves on ``outcomes_<model>``, keyed by
uri: a ``ClipInfo`` (says how many inputs were emitted) or an ``InputFailure`` (stage
``decode``: open/read/decode/sample problems, for every model; stage ``frontend``: the
model's own front end refused the file, e.g. too short under ``--short_clips
reference``; the other models go on). A file that fails part-way may already have
emitted inputs; the join in ``PostprocessAndPool`` drops them, so the file is one errors
row of that model and no frames.
"""

from __future__ import annotations

from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.metrics import Metrics

from audiobeam.bundle import ModelBundle
from audiobeam.errors import InputError, TooShortError
from audiobeam.inputs import StorageDownError
from audiobeam.redact import redact_text
from transforms import progress
from transforms.records import AudioFile, ClipInfo, InputFailure

__all__ = ["ExtractModelInputs", "failure_from_exception", "inputs_tag", "outcomes_tag"]

_NAMESPACE = "audiobeam"
_MAX_MESSAGE_CHARS = 2000


def inputs_tag(model: str) -> str:
  return f"inputs_{model}"


def outcomes_tag(model: str) -> str:
  return f"outcomes_{model}"


def failure_from_exception(file: AudioFile, stage: str, error: BaseException,
                           model: str | None = None) -> InputFailure:
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
  return InputFailure(file=file, stage=stage, error_type=error_type, message=message, model=model)


def _stage_of(error: BaseException) -> str:
  return "frontend" if isinstance(error, TooShortError) else "decode"


class _ExtractInputsFn(beam.DoFn):
  """AudioFile -> per model: ((uri, frame_index), input) + outcome (uri, ClipInfo|InputFailure)."""

  def __init__(self, bundles: Sequence[ModelBundle]):
    self._bundles = {b.name: b for b in bundles}
    self._audio_ms = Metrics.counter(_NAMESPACE, "audio_milliseconds")
    self._decoded = Metrics.counter(_NAMESPACE, "files_decoded")
    self._failed = Metrics.counter(_NAMESPACE, "files_failed")

  def setup(self):
    # Blocks of every file reuse freed heap memory instead of faulting in fresh pages
    # (audiobeam.allocator: ~1.4x front-end throughput per CPU-second measured).
    from audiobeam.allocator import reuse_freed_memory  # pylint: disable=import-outside-toplevel

    reuse_freed_memory()

  def process(self, file: AudioFile):
    from audiobeam.audio import open_audio  # pylint: disable=import-outside-toplevel
    from audiobeam.inputs import open_input  # pylint: disable=import-outside-toplevel
    from audiobeam.stream import Feed, StreamResult, stream_inputs  # pylint: disable=import-outside-toplevel

    uri = file.uri
    wanted = [n for n in self._bundles if file.models is None or n in file.models]
    if not wanted:
      return
    counts = {name: 0 for name in wanted}
    try:
      with open_input(uri) as raw_file:  # regular files only; bounded waits on storage
        with open_audio(raw_file) as audio_stream:
          info = audio_stream.info
          feeds = {name: Feed.for_bundle(self._bundles[name]) for name in wanted}
          result = StreamResult()
          for name, block in stream_inputs(audio_stream, feeds, result):
            tag = inputs_tag(name)
            for offset, item in enumerate(block.inputs):
              yield beam.pvalue.TaggedOutput(tag, ((uri, block.start_index + offset), item))
            counts[name] += len(block.inputs)
    except StorageDownError:
      raise  # the storage is down: stop the job with its message, not an errors row per file
    except Exception as error:  # pylint: disable=broad-except
      # One bad file never fails the run: it becomes one errors row per model.
      self._failed.inc()
      progress.record(files_done=1, files_failed=1)
      for name in wanted:
        yield beam.pvalue.TaggedOutput(outcomes_tag(name), (uri, failure_from_exception(
            file, _stage_of(error), error, name)))
      return
    self._decoded.inc()
    self._audio_ms.inc(int(round(result.duration_seconds * 1000)))
    progress.record(files_done=1, audio_seconds=result.duration_seconds)
    for name in wanted:
      error = result.errors.get(name)
      if error is None and (counts[name] == 0 or counts[name] != feeds[name].frontend.num_frames):
        error = InputError(f"{uri}: the {name} front end gave {counts[name]} inputs for "
                           f"{feeds[name].frontend.num_frames} frames; this is a bug",
                           error_type="internal_error")
      if error is not None:
        outcome = failure_from_exception(file, _stage_of(error), error, name)
      else:
        outcome = ClipInfo(
            file=file, model=name, duration_seconds=float(result.duration_seconds),
            sample_rate=int(info.sample_rate_hz), channels=int(info.channels),
            num_frames=counts[name], container=info.container, codec=info.codec,
            padded=bool(feeds[name].frontend.padded))
      yield beam.pvalue.TaggedOutput(outcomes_tag(name), (uri, outcome))


class ExtractModelInputs(beam.PTransform):
  """PCollection[AudioFile] -> {model: (inputs, outcomes)}.

  inputs: ``((uri, frame_index), float32 [*input_shape])``; outcomes: ``(uri, ClipInfo |
  InputFailure)``, exactly one per (input file, model).
  """

  def __init__(self, bundles: Sequence[ModelBundle]):
    super().__init__()
    self._bundles = list(bundles)

  def expand(self, files):
    tags = [t for b in self._bundles for t in (inputs_tag(b.name), outcomes_tag(b.name))]
    results = files | "DecodeAndFrame" >> beam.ParDo(
        _ExtractInputsFn(self._bundles)).with_outputs(*tags)
    return {b.name: (results[inputs_tag(b.name)], results[outcomes_tag(b.name)])
            for b in self._bundles}
