"""WriteEmbeddings: embedded clips and failures -> Parquet / TFRecord under ``--output``.

Layout (``RUN`` is the run id, so a run's files never collide with another run's and
never derive from input names)::

  frames/part-RUN-SSSSS-of-NNNNN.parquet      one row per frame      (format parquet)
  clips/part-RUN-SSSSS-of-NNNNN.parquet       one row per clip       (always)
  errors/part-RUN-SSSSS-of-NNNNN.parquet      one row per failure    (always)
  tfrecord/part-RUN-SSSSS-of-NNNNN.tfrecord   one SequenceExample per clip (format tfrecord)

``clips/`` and ``errors/`` are written whatever ``--format`` says: together they are
the account of every matched input. Parquet is zstd-compressed; every Parquet file
carries the provenance JSON in its schema metadata (key ``audiobeam.provenance``).
TFRecord files are uncompressed, like the AudioSet release, so stock readers
(``tf.data.TFRecordDataset(path)``) read them without options.

Rows are written in row groups of many clips (``_RebatchFn``) rather than one tiny row
group per input file.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from transforms import records
from vggish.params import Params

__all__ = [
    "WriteEmbeddings",
    "OUTPUT_SUBDIRS",
    "PARQUET_CODEC",
    "part_prefix",
]

OUTPUT_SUBDIRS = ("frames", "clips", "errors", "tfrecord")
PARQUET_CODEC = "zstd"
_NAMESPACE = "audiobeam"
_FRAME_ROWS_PER_GROUP = 32768
_ROWS_PER_GROUP = 8192


def part_prefix(output_dir: str, subdir: str, run_id: str) -> str:
  """Prefix of the part files a run writes into ``output_dir/subdir``."""
  return f"{output_dir.rstrip('/')}/{subdir}/part-{run_id}"


class _RebatchFn(beam.DoFn):
  """Buffers elements until their row count reaches ``rows_per_batch``; emits lists."""

  def __init__(self, rows_of: Callable[[Any], int], rows_per_batch: int):
    self._rows_of = rows_of
    self._rows_per_batch = rows_per_batch
    self._buffer: list = []
    self._rows = 0

  def start_bundle(self):
    self._buffer, self._rows = [], 0

  def process(self, element):
    self._buffer.append(element)
    self._rows += self._rows_of(element)
    if self._rows >= self._rows_per_batch:
      batch, self._buffer, self._rows = self._buffer, [], 0
      yield batch

  def finish_bundle(self):
    if self._buffer:
      batch, self._buffer, self._rows = self._buffer, [], 0
      yield GlobalWindows.windowed_value(batch)


class _CountOutputsFn(beam.DoFn):
  """Counts what is written: files_embedded, frames, errors, errors_<error_type>."""

  def __init__(self, kind: str):
    self._kind = kind
    self._files = Metrics.counter(_NAMESPACE, "files_embedded")
    self._frames = Metrics.counter(_NAMESPACE, "frames")
    self._errors = Metrics.counter(_NAMESPACE, "errors")

  def process(self, element):
    if self._kind == "clips":
      self._files.inc()
      self._frames.inc(len(element.frame_index))
    else:
      self._errors.inc()
      Metrics.counter(_NAMESPACE, "errors_" + element.error_type).inc()
    yield element


def _num_frames(clip: records.EmbeddedClip) -> int:
  return len(clip.frame_index)


def _one(_) -> int:
  return 1


class WriteEmbeddings(beam.PTransform):
  """(clips: PCollection[EmbeddedClip], failures: PCollection[InputFailure]) -> written paths.

  Returns a dict ``{subdir: PCollection[str]}`` of the final file names written.
  """

  def __init__(self, output_dir: str, *, formats: Sequence[str], run_id: str, params: Params,
               provenance: dict[str, Any], settings_sha256: str):
    super().__init__()
    self._output_dir = output_dir
    self._formats = tuple(formats)
    self._run_id = run_id
    self._params = params
    self._provenance = provenance
    self._settings_sha256 = settings_sha256

  def _parquet(self, subdir, schema, batches, to_table):
    tables = batches | f"{subdir.capitalize()}Table" >> beam.Map(to_table, schema)
    return tables | f"Write{subdir.capitalize()}" >> beam.io.WriteToParquetBatched(
        part_prefix(self._output_dir, subdir, self._run_id), schema=schema,
        codec=PARQUET_CODEC, file_name_suffix=".parquet")

  def expand(self, clips_and_failures):
    clips, failures = clips_and_failures
    clips = clips | "CountClips" >> beam.ParDo(_CountOutputsFn("clips"))
    failures = failures | "CountErrors" >> beam.ParDo(_CountOutputsFn("errors"))
    ids = {"settings_sha256": self._settings_sha256, "run_id": self._run_id}
    written = {}

    clip_batches = clips | "BatchClips" >> beam.ParDo(_RebatchFn(_one, _ROWS_PER_GROUP))
    written["clips"] = self._parquet(
        "clips", records.clips_schema(self._params, self._provenance), clip_batches,
        lambda batch, schema: records.clips_table(batch, schema, **ids))

    error_batches = failures | "BatchErrors" >> beam.ParDo(_RebatchFn(_one, _ROWS_PER_GROUP))
    written["errors"] = self._parquet(
        "errors", records.errors_schema(self._provenance), error_batches,
        lambda batch, schema: records.errors_table(batch, schema, **ids))

    if "parquet" in self._formats:
      frame_batches = clips | "BatchFrames" >> beam.ParDo(
          _RebatchFn(_num_frames, _FRAME_ROWS_PER_GROUP))
      written["frames"] = self._parquet(
          "frames", records.frames_schema(self._params, self._provenance), frame_batches,
          records.frames_table)

    if "tfrecord" in self._formats:
      written["tfrecord"] = (
          clips
          | "SequenceExamples" >> beam.Map(records.sequence_example)
          | "WriteTfrecord" >> beam.io.WriteToTFRecord(
              part_prefix(self._output_dir, "tfrecord", self._run_id),
              file_name_suffix=".tfrecord", compression_type=CompressionTypes.UNCOMPRESSED))
    return written
