"""``python -m pipelines.embed``: embed audio files with VGGish on Apache Beam.

The job reads as a sentence::

  MatchAudio | ExtractLogMelPatches | EmbedWithVGGish | PostprocessAndPool | WriteEmbeddings

Before building the job the launcher validates the configuration and resolves the
weights (``vggish.assets.resolve_assets``): a bad flag or missing weights stop here, and
the weights' sha256 go into the provenance. Workers load the weights from the URI the
launcher resolved (a local runner: the launcher's local copy; a remote runner: the
original gs:// / s3:// / https URI, localized by each worker) and check the sha256.

Re-runs replace: each run writes its part files under a fresh run id; once the job
succeeded, ``run.json`` is written (naming that run id) and only then the part files of
earlier runs are deleted. A run killed at any point leaves the previous complete
output (named by the previous ``run.json``) or this one; the next successful run
removes the leftovers. With ``--skip_existing`` a run adds instead of replacing: it skips
inputs its output's manifests (``transforms.manifest``) list as embedded under the same
settings, keeps every committed run's files, and commits its own by writing its manifest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import json
import logging
import os
import sys
import time
import traceback
import uuid
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, SetupOptions
from apache_beam.runners.runner import PipelineState

from pipelines.options import (DEFAULT_RUNNER, RUN_RECORD_KIND, EmbedConfig, is_local_runner,
                               parse_config)
from transforms import manifest
from transforms import provenance as provenance_lib
from transforms.embed import (MODEL_METRICS_NAMESPACE, EmbedWithVGGish, VGGishModelHandler,
                              poison_patch_for_test)
from transforms.extract import ExtractLogMelPatches
from transforms.match import MatchAudio
from transforms.postprocess import PostprocessAndPool
from transforms.write import OUTPUT_SUBDIRS, WriteEmbeddings
from audiobeam.errors import AudiobeamError
from audiobeam.redact import redact_text, redact_uri

__all__ = ["run", "main", "build_pipeline", "RunSummary", "WorkerWeights", "RUN_JSON"]

RUN_JSON = "run.json"
_NAMESPACE = "audiobeam"
_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WorkerWeights:
  """Where workers load the weights from, and the sha256 they must have."""
  checkpoint_uri: str
  checkpoint_sha256: str
  pca_params_uri: str
  pca_params_sha256: str


@dataclasses.dataclass
class RunSummary:
  """What a finished run did; ``counts`` are read back from the files written."""
  run_id: str
  output: str
  config: dict[str, Any]
  provenance: dict[str, Any]
  counts: dict[str, Any]
  metrics: dict[str, int]
  outputs: dict[str, list[str]]
  wall_seconds: float

  def to_record(self, started_at: str, finished_at: str) -> dict[str, Any]:
    return {
        "kind": RUN_RECORD_KIND,
        "run_id": self.run_id,
        "started_at": started_at,
        "finished_at": finished_at,
        "wall_seconds": round(self.wall_seconds, 3),
        "config": self.config,
        "provenance": self.provenance,
        "counts": self.counts,
        "metrics": self.metrics,
        "outputs": self.outputs,
    }

  def format(self) -> str:
    c = self.counts
    if not c:
      return f"audiobeam run {self.run_id}: dry run, the job was built and nothing was run"
    errors_by_type = ", ".join(f"{k}={v}" for k, v in sorted(c["errors_by_type"].items())) or "none"
    lines = [
        f"audiobeam run {self.run_id}: {c['files_matched']} files matched, "
        f"{c['files_embedded']} embedded, {c['errors']} errors",
        f"  audio: {c['audio_seconds'] / 3600.0:.3f} h ({c['audio_seconds']:.1f} s), "
        f"frames: {c['frames']}" + self._model_calls(),
        f"  errors by type: {errors_by_type}",
        f"  wall time: {self.wall_seconds:.1f} s",
        f"  outputs: {redact_uri(self.output)} ({', '.join(k for k, v in self.outputs.items() if v)}; "
        f"{RUN_JSON})",
    ]
    return "\n".join(lines)

  def _model_calls(self) -> str:
    calls = self.metrics.get("model_calls")
    if not calls:
      return ""
    return (f", model calls: {calls} (mean batch "
            f"{self.metrics.get('model_call_patches', 0) / calls:.1f} patches)")


def _new_run_id() -> str:
  now = datetime.datetime.now(datetime.timezone.utc)
  return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _resolve_weights(config: EmbedConfig):
  """Resolves (downloads/localizes, validates, hashes) the weights in the launcher."""
  from vggish import assets  # pylint: disable=import-outside-toplevel
  resolved = assets.resolve_assets(config.checkpoint, config.pca_params, cache_dir=config.cache_dir)
  if is_local_runner(config.runner):
    return resolved, WorkerWeights(resolved.checkpoint_path, resolved.checkpoint_sha256,
                                   resolved.pca_params_path, resolved.pca_params_sha256)
  # Remote workers localize the original URIs themselves (options.py refused local paths).
  return resolved, WorkerWeights(resolved.checkpoint_uri, resolved.checkpoint_sha256,
                                 resolved.pca_params_uri, resolved.pca_params_sha256)


TEST_ONLY_FAULT_ENV = "AUDIOBEAM_TEST_ONLY_INFERENCE_FAULT_URIS"


def _test_only_inference_fault_uris() -> frozenset:
  """TEST ONLY fault injection: a JSON list of URIs in the environment variable
  ``AUDIOBEAM_TEST_ONLY_INFERENCE_FAULT_URIS`` whose model calls are made to fail, to test
  that an inference failure is isolated to its file. Unset: nothing is injected."""
  value = os.environ.get(TEST_ONLY_FAULT_ENV)
  if not value:
    return frozenset()
  _LOGGER.warning("TEST-ONLY inference fault injection is on (%s is set)", TEST_ONLY_FAULT_ENV)
  return frozenset(json.loads(value))


def build_pipeline(pipeline: beam.Pipeline, config: EmbedConfig, weights: WorkerWeights, *,
                   run_id: str, provenance: dict[str, Any],
                   select_files: beam.PTransform | None = None) -> dict[str, Any]:
  """Adds the embedding job to ``pipeline``; returns the written-file PCollections.

  ``select_files`` (PCollection[AudioFile] -> PCollection[AudioFile]) is applied to the
  matched files before decoding: the place for an incremental run to drop inputs that
  earlier runs already embedded under the same ``settings_sha256`` (``clips/`` and
  ``errors/`` rows carry uri, size_bytes, last_modified_seconds and settings_sha256).
  """
  params = config.params
  handler = VGGishModelHandler(
      weights.checkpoint_uri, checkpoint_sha256=weights.checkpoint_sha256, params=params,
      batch_size=config.batch_size, cache_dir=config.cache_dir)
  files, match_failures = pipeline | "MatchAudio" >> MatchAudio(list(config.input))
  if select_files is not None:
    files = files | "SelectFiles" >> select_files
  patches, outcomes = files | "ExtractLogMelPatches" >> ExtractLogMelPatches(
      params, config.resampler, config.short_clips)
  fault_uris = _test_only_inference_fault_uris()
  if fault_uris:  # TEST ONLY (tests/test_hostile_inputs.py): never set in production
    patches = patches | "TestOnlyInjectInferenceFaults" >> beam.Map(
        poison_patch_for_test, fault_uris)
  frames = patches | "EmbedWithVGGish" >> EmbedWithVGGish(handler)
  clips, clip_failures = (outcomes, frames) | "PostprocessAndPool" >> PostprocessAndPool(
      weights.pca_params_uri, pca_params_sha256=weights.pca_params_sha256, params=params,
      pooling=config.pooling, cache_dir=config.cache_dir)
  failures = (match_failures, clip_failures) | "AllFailures" >> beam.Flatten()
  return (clips, failures) | "WriteEmbeddings" >> WriteEmbeddings(
      config.output, formats=config.format, run_id=run_id, params=params,
      provenance=provenance, settings_sha256=provenance["settings_sha256"])


def _redacted(config: dict[str, Any]) -> dict[str, Any]:
  """The effective config with credentials in URIs masked (local paths are unchanged)."""
  out = dict(config)
  for key in ("input", "output", "checkpoint", "pca_params", "cache_dir"):
    value = out.get(key)
    if isinstance(value, str):
      out[key] = redact_uri(value)
    elif isinstance(value, list):
      out[key] = [redact_uri(v) for v in value]
  return out


def _make_runner(config: EmbedConfig, options):
  """Our default local runner, built like DirectRunner builds it (minus the Prism try)."""
  if config.runner.rsplit(".", 1)[-1] != DEFAULT_RUNNER:
    return None  # Beam resolves the runner named in the options.
  # Like DirectRunner, hand the options to the runner's provision info: in
  # multi_processing mode that is how worker processes get them (e.g. s3/gcs settings).
  # pylint: disable=import-outside-toplevel
  from apache_beam.portability.api import beam_provision_api_pb2
  from apache_beam.runners.portability.fn_api_runner import fn_runner
  from apache_beam.runners.portability.portable_runner import JobServiceHandle
  encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
  return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
      beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


INTRA_OP_THREADS_ENV = "TF_NUM_INTRAOP_THREADS"


@contextlib.contextmanager
def _share_cores_between_workers(options):
  """Local multi-processing: size each worker's TensorFlow pool to its share of the cores.

  Every worker process runs its own TensorFlow, whose intra-op pool defaults to one
  thread per core, so N workers would run N x cores model threads on the machine.
  Workers are spawned during ``pipeline.run()`` with the launcher's environment, so
  ``TF_NUM_INTRAOP_THREADS`` is set to ``cores // N`` (at least 1) for that call and
  restored after; a value the user exported wins. Measured model throughput per
  CPU-second with two concurrent workers on 2 cores: 62.5 (1 thread each) vs 57.5
  (2 threads each) patches.
  """
  direct = options.view_as(DirectOptions)
  if direct.direct_running_mode != "multi_processing" or INTRA_OP_THREADS_ENV in os.environ:
    yield
    return
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    cores = os.cpu_count() or 1
  workers = direct.direct_num_workers or cores  # 0 means one worker per core.
  os.environ[INTRA_OP_THREADS_ENV] = str(max(1, cores // workers))
  try:
    yield
  finally:
    os.environ.pop(INTRA_OP_THREADS_ENV, None)


def _metrics(result) -> dict[str, int]:
  """Our counters, plus ``model_calls``/``model_call_patches`` from RunInference's batch-size
  distribution (so a user can see that batches were full)."""
  out: dict[str, int] = {}
  try:
    ours = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE))
    model = result.metrics().query(MetricsFilter().with_namespace(
        MODEL_METRICS_NAMESPACE).with_name("inference_request_batch_size"))
  except Exception:  # pylint: disable=broad-except  # some runners cannot query metrics
    return out

  def value_of(metric):
    return metric.committed if metric.committed is not None else metric.attempted

  for counter in ours["counters"]:
    name = counter.key.metric.name
    out[name] = out.get(name, 0) + int(value_of(counter) or 0)
  for distribution in model["distributions"]:
    data = value_of(distribution)
    if data is not None:
      out["model_calls"] = out.get("model_calls", 0) + int(data.count)
      out["model_call_patches"] = out.get("model_call_patches", 0) + int(data.sum)
  return out


def _run_parts(output: str, subdir: str, run_id: str | None = None) -> list[str]:
  """Part files in ``output/subdir`` (of ``run_id``, or of every run), sorted."""
  pattern = f"{output.rstrip('/')}/{subdir}/part-{run_id + '-' if run_id else ''}*"
  try:
    return sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)
  except Exception:  # pylint: disable=broad-except  # nothing there yet
    return []


def _parquet_rows(paths: Sequence[str], column: str | None = None):
  """Row count (from the footers: cheap) and, with ``column``, that column's values."""
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  rows, values = 0, []
  for path in paths:
    with FileSystems.open(path) as f:
      parquet = pq.ParquetFile(f)
      rows += parquet.metadata.num_rows
      if column is not None:
        values.extend(parquet.read(columns=[column]).column(column).to_pylist())
  return rows, values


def _tfrecord_count(paths: Sequence[str]) -> int:
  """Records in TFRecord files, skipping over payloads (length header + 2 CRCs)."""
  import struct  # pylint: disable=import-outside-toplevel
  count = 0
  for path in paths:
    with FileSystems.open(path) as f:
      while True:
        header = f.read(12)
        if len(header) < 12:
          break
        (length,) = struct.unpack("<Q", header[:8])
        f.seek(length + 4, 1)
        count += 1
  return count


def _count_outputs(config: EmbedConfig, run_id: str, metrics: dict[str, int]):
  outputs = {sub: _run_parts(config.output, sub, run_id) for sub in OUTPUT_SUBDIRS}
  files_embedded, durations = _parquet_rows(outputs["clips"], "duration_seconds")
  errors, error_types = _parquet_rows(outputs["errors"], "error_type")
  errors_by_type: dict[str, int] = {}
  for error_type in error_types:
    errors_by_type[error_type] = errors_by_type.get(error_type, 0) + 1
  no_match = errors_by_type.get("no_match", 0)
  skipped = metrics.get("files_skipped_existing", 0)  # --skip_existing: embedded before
  counts = {
      "files_matched": metrics.get("files_matched", files_embedded + errors - no_match + skipped),
      "files_skipped_existing": skipped,
      "files_embedded": files_embedded,
      "errors": errors,
      "errors_by_type": errors_by_type,
      "frames": metrics.get("frames", 0),
      "audio_seconds": float(sum(durations)),  # of the embedded clips, as written
  }
  if "parquet" in config.format:
    counts["frames"], _ = _parquet_rows(outputs["frames"])
  if "tfrecord" in config.format:
    counts["tfrecord_examples"] = _tfrecord_count(outputs["tfrecord"])
  mismatches = []
  for name, value in (("files_embedded", files_embedded), ("errors", errors),
                      ("frames", counts["frames"])):
    if name in metrics and metrics[name] != value:
      mismatches.append(f"{name}: metrics {metrics[name]} != rows {value}")
  if counts["files_matched"] != files_embedded + errors - no_match + skipped:
    mismatches.append(f"files_matched {counts['files_matched']} != clips {files_embedded} + "
                      f"errors {errors - no_match} (without no_match)")
  if mismatches:  # Never silent: this would mean lost or duplicated inputs.
    _LOGGER.error("audiobeam accounting mismatch: %s", "; ".join(mismatches))
    counts["accounting_mismatches"] = mismatches
  return counts, outputs


def _write_json(path: str, record: dict[str, Any]) -> None:
  """Writes ``record`` to ``path`` via a temporary name + rename (atomic on POSIX/GCS-ish)."""
  temp = path + ".tmp-" + uuid.uuid4().hex[:8]
  with FileSystems.create(temp) as f:
    f.write(json.dumps(record, indent=2, sort_keys=True).encode("utf-8") + b"\n")
  if FileSystems.exists(path):
    FileSystems.delete([path])
  FileSystems.rename([temp], [path])


def _delete_run_parts(output: str, run_id: str) -> None:
  """Best-effort removal of one run's part files (after that run failed)."""
  try:
    parts = [p for sub in OUTPUT_SUBDIRS for p in _run_parts(output, sub, run_id)]
    if parts:
      FileSystems.delete(parts)
  except Exception:  # pylint: disable=broad-except  # the next successful run cleans up
    _LOGGER.warning("could not remove the part files of failed run %s in %s", run_id, output)


def _delete_previous_runs(output: str, run_id: str, keep: set[str] = frozenset()) -> list[str]:
  """Deletes other runs' part files (but those of ``keep``) and Beam temp leftovers."""
  stale = []
  keep_prefixes = tuple(f"part-{r}-" for r in {run_id, *keep})
  for sub in OUTPUT_SUBDIRS:
    stale += [p for p in _run_parts(output, sub) if not p.rsplit("/", 1)[-1].startswith(keep_prefixes)]
    temp_pattern = f"{output.rstrip('/')}/{sub}/beam-temp-*"
    if FileSystems.get_scheme(output) in (None, "file"):
      stale += glob.glob(temp_pattern)  # directories: FileSystems.delete removes them whole
    else:
      try:
        stale += [m.path for r in FileSystems.match([temp_pattern + "/**"]) for m in r.metadata_list]
      except Exception:  # pylint: disable=broad-except  # nothing there
        pass
  if stale:
    FileSystems.delete(stale)
  return stale


def run(argv: Sequence[str] | None = None, save_main_session: bool = True,
        test_pipeline: beam.Pipeline | None = None) -> RunSummary:
  """Runs the embedding job. ``argv`` as on the command line (without the program).

  Raises ConfigError/AssetError before any job is built when the configuration or the
  weights are wrong. With ``test_pipeline`` (e.g. a TestPipeline) the job is built on it
  and run with its runner and options instead of the ones from ``argv``.
  """
  started = time.monotonic()
  started_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
  config = parse_config(argv)
  # The launcher itself reads weights and writes run.json through FileSystems: give it the
  # same options (s3 endpoint/credentials, GCS project) the workers get.
  FileSystems.set_options(config.pipeline_options())
  resolved, weights = _resolve_weights(config)
  run_id = _new_run_id()
  settings = provenance_lib.settings(
      checkpoint_sha256=resolved.checkpoint_sha256, pca_params_sha256=resolved.pca_params_sha256,
      params=config.params, resampler=config.resampler, short_clips=config.short_clips,
      pooling=config.pooling)
  provenance = provenance_lib.provenance(
      run_id=run_id, checkpoint_uri=resolved.checkpoint_uri,
      pca_params_uri=resolved.pca_params_uri, settings_dict=settings)

  if test_pipeline is not None:
    pipeline = test_pipeline
  else:
    options = config.pipeline_options()
    options.view_as(SetupOptions).save_main_session = save_main_session
    pipeline = beam.Pipeline(runner=_make_runner(config, options), options=options)
  select_files = None
  if config.skip_existing:
    select_files = manifest.SkipAlreadyEmbedded(
        manifest.manifest_patterns(config.output, config.existing_outputs),
        provenance["settings_sha256"])
  build_pipeline(pipeline, config, weights, run_id=run_id, provenance=provenance,
                 select_files=select_files)
  if config.beam_options.get("dry_run"):  # DataflowRunner builds the job and submits nothing
    pipeline.run()
    return RunSummary(run_id=run_id, output=config.output, config=_redacted(config.to_dict()),
                      provenance=provenance, counts={}, metrics={}, outputs={},
                      wall_seconds=time.monotonic() - started)
  try:
    with _share_cores_between_workers(pipeline.options):
      result = pipeline.run()
      state = result.wait_until_finish()
    if state is not None and state != PipelineState.DONE:
      raise RuntimeError(f"expected the pipeline to finish DONE, found {state}")
  except BaseException:
    # Unpublished and incomplete: remove what this run wrote; earlier outputs stay intact.
    _delete_run_parts(config.output, run_id)
    raise

  metrics = _metrics(result)
  counts, outputs = _count_outputs(config, run_id, metrics)
  summary = RunSummary(run_id=run_id, output=config.output, config=_redacted(config.to_dict()),
                       provenance=provenance, counts=counts, metrics=metrics, outputs=outputs,
                       wall_seconds=time.monotonic() - started)
  finished_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
  if config.skip_existing:  # the manifest commits this run: its part files are complete
    manifest.write_manifest(config.output, run_id,
                            manifest.manifest_entries(outputs["clips"], outputs["errors"]))
  _write_json(f"{config.output.rstrip('/')}/{RUN_JSON}", summary.to_record(started_at, finished_at))
  # Incremental runs add to the output: committed runs stay. Otherwise this run replaces.
  keep = manifest.committed_run_ids(config.output) if config.skip_existing else {run_id}
  _delete_previous_runs(config.output, run_id, keep=keep)
  manifest.delete_manifests(config.output, keep | {run_id})
  return summary


class _RedactingFilter(logging.Filter):
  """Handler filter: log lines (and their tracebacks) pass through ``redact_text`` so a
  URI's password or signed-URL signature never reaches a log collector."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    redacted = redact_text(message)
    if redacted != message:
      record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
      record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
    return True


def _redact_log_handlers() -> None:
  for handler in logging.getLogger().handlers:
    if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
      handler.addFilter(_RedactingFilter())


def main(argv: Sequence[str] | None = None) -> int:
  """CLI entry: prints the summary; configuration errors exit 2 with the message; an
  unexpected crash exits 1 with its traceback. Everything printed is redacted."""
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
  _redact_log_handlers()
  try:
    summary = run(argv)
  except AudiobeamError as error:  # ConfigError, AssetError, ...: said before any job ran
    print(f"error: {redact_text(str(error))}", file=sys.stderr)
    return 2
  except Exception:  # pylint: disable=broad-except  # shown, minus credentials
    print(redact_text(traceback.format_exc()), file=sys.stderr)
    return 1
  print(summary.format())
  return 0


if __name__ == "__main__":
  sys.exit(main())
