"""WriteModelOutputs / WriteErrors: embedded clips and failures -> Parquet / TFRecord.

Layout under the directory they are given (the run's staging directory; the run
lifecycle moves committed files into ``--output``). ``RUN`` is the run id, so a run's
files never collide with another run's and never derive from input names::

  <model>/frames/part-RUN-SSSSS-of-NNNNN.parquet   one row per frame    (format parquet)
  <model>/clips/part-RUN-SSSSS-of-NNNNN.parquet    one row per clip     (always)
  <model>/<extra>/part-RUN-...                     the model's extras (vggish/tfrecord/,
                                                   clap/labels/, ...)
  errors/part-RUN-SSSSS-of-NNNNN.parquet           one row per (input, model) failure

``clips/`` and ``errors/`` are written whatever ``--format`` says: together they are
the account of every matched input, per model. Parquet is zstd-compressed; every Parquet
file carries the provenance JSON in its schema metadata (key ``audiobeam.provenance``).
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

from audiobeam.bundle import ModelBundle
from transforms import records

__all__ = [
    "WriteModelOutputs",
    "WriteErrors",
    "ERRORS_DIR",
    "PARQUET_CODEC",
    "part_prefix",
]

ERRORS_DIR = "errors"
PARQUET_CODEC = "zstd"
_NAMESPACE = "audiobeam"
_FRAME_ROWS_PER_GROUP = 32768
_ROWS_PER_GROUP = 8192


def part_prefix(base_dir: str, subdir: str, run_id: str) -> str:
  """Prefix of the part files a run writes into ``base_dir/subdir``."""
  return f"{base_dir.rstrip('/')}/{subdir}/part-{run_id}"


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


class _CountClipsFn(beam.DoFn):
  """Counts what is written per model: <model>_files_embedded, <model>_frames."""

  def __init__(self, model: str):
    self._files = Metrics.counter(_NAMESPACE, f"{model}_files_embedded")
    self._frames = Metrics.counter(_NAMESPACE, f"{model}_frames")

  def process(self, clip):
    self._files.inc()
    self._frames.inc(clip.num_frames)
    yield clip


class _ExpandAndCountErrorsFn(beam.DoFn):
  """InputFailure -> one per model (a match failure, ``model=None``, counts for every
  model); counts <model>_errors and <model>_errors_<error_type>."""

  def __init__(self, models: Sequence[str]):
    self._models = tuple(models)

  def process(self, failure):
    import dataclasses  # pylint: disable=import-outside-toplevel
    for model in ((failure.model,) if failure.model else self._models):
      Metrics.counter(_NAMESPACE, f"{model}_errors").inc()
      Metrics.counter(_NAMESPACE, f"{model}_errors_{failure.error_type}").inc()
      yield failure if failure.model else dataclasses.replace(failure, model=model)


def _num_frames(clip: records.EmbeddedClip) -> int:
  return clip.num_frames


def _one(_) -> int:
  return 1


def _write_parquet(pcoll, label: str, path_prefix: str, schema, to_table, rows_of, rows_per_group):
  return (
      pcoll
      | f"Batch{label}" >> beam.ParDo(_RebatchFn(rows_of, rows_per_group))
      | f"{label}Table" >> beam.Map(to_table, schema)
      | f"Write{label}" >> beam.io.WriteToParquetBatched(
          path_prefix, schema=schema, codec=PARQUET_CODEC, file_name_suffix=".parquet"))


class WriteModelOutputs(beam.PTransform):
  """PCollection[EmbeddedClip] of one model -> its files under ``base_dir/<model>/``.

  Returns ``{"<model>/<subdir>": PCollection[str]}`` of the final file names written.
  """

  def __init__(self, base_dir: str, bundle: ModelBundle, *, formats: Sequence[str],
               run_id: str, provenance: dict[str, Any], settings_sha256: str,
               schema_metadata: dict[str, str] | None = None):
    super().__init__()
    self._base = f"{base_dir.rstrip('/')}/{bundle.name}"
    self._bundle = bundle
    self._formats = tuple(formats)
    self._run_id = run_id
    self._provenance = provenance
    self._settings_sha256 = settings_sha256
    self._metadata = dict(schema_metadata or {})

  def expand(self, clips):
    name = self._bundle.name
    clips = clips | "Count" >> beam.ParDo(_CountClipsFn(name))
    ids = {"settings_sha256": self._settings_sha256, "run_id": self._run_id}
    written = {}
    clips_schema = records.clips_schema(self._bundle.clip_fields(), self._provenance, self._metadata)
    written[f"{name}/clips"] = _write_parquet(
        clips, "Clips", part_prefix(self._base, "clips", self._run_id), clips_schema,
        lambda batch, schema: records.clips_table(batch, schema, **ids), _one, _ROWS_PER_GROUP)
    if "parquet" in self._formats:
      frames_schema = records.frames_schema(self._bundle.frame_fields(), self._provenance,
                                            self._metadata)
      written[f"{name}/frames"] = _write_parquet(
          clips, "Frames", part_prefix(self._base, "frames", self._run_id), frames_schema,
          records.frames_table, _num_frames, _FRAME_ROWS_PER_GROUP)
    for extra in self._bundle.extras(self._formats):
      label = extra.name.capitalize()
      prefix = part_prefix(self._base, extra.name, self._run_id)
      if extra.kind == "tfrecord":
        written[f"{name}/{extra.name}"] = (
            clips
            | f"{label}Records" >> beam.Map(extra.to_record)
            | f"Write{label}" >> beam.io.WriteToTFRecord(
                prefix, file_name_suffix=".tfrecord",
                compression_type=CompressionTypes.UNCOMPRESSED))
      elif extra.kind == "parquet":
        schema = records.with_provenance(extra.fields(), self._provenance, self._metadata)
        written[f"{name}/{extra.name}"] = _write_parquet(
            clips, label, prefix, schema, extra.to_table, _one, _ROWS_PER_GROUP)
      else:
        raise ValueError(f"{name}: unknown extra kind {extra.kind!r} for {extra.name!r}")
    return written


class WriteErrors(beam.PTransform):
  """PCollection[InputFailure] -> ``base_dir/errors/`` (one row per input and model).

  ``settings_sha256``: model -> its settings hash (every requested model).
  """

  def __init__(self, base_dir: str, *, run_id: str, settings_sha256: dict[str, str],
               provenance: dict[str, Any]):
    super().__init__()
    self._base = base_dir
    self._run_id = run_id
    self._settings = dict(settings_sha256)
    self._provenance = provenance

  def expand(self, failures):
    failures = failures | "PerModel" >> beam.ParDo(_ExpandAndCountErrorsFn(list(self._settings)))
    ids = {"settings_sha256": self._settings, "run_id": self._run_id}
    return {ERRORS_DIR: _write_parquet(
        failures, "Errors", part_prefix(self._base, ERRORS_DIR, self._run_id),
        records.errors_schema(self._provenance),
        lambda batch, schema: records.errors_table(batch, schema, **ids), _one, _ROWS_PER_GROUP)}
