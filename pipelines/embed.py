"""``python -m pipelines.embed``: embed audio files with one or more models on Apache Beam.

The job reads as the data flow, one branch per ``--model``::

  MatchAudio | [SkipAlreadyEmbedded] | ExtractModelInputs
    -> per model: EmbedWithModel | PostprocessAndPool | WriteModelOutputs
    -> all models' failures: WriteErrors

Before building the job the launcher validates the configuration and resolves every
model's assets (its bundle's ``resolve_assets``): a bad flag or missing weights stop
here, and the assets' sha256 go into the provenance. Workers load the assets from the
URIs the launcher resolved and check the sha256. The run's lifecycle -- one writer per
output, ownership of files, staging, commit, cleanup -- is ``pipelines.lifecycle``.
"""

from __future__ import annotations

import os as _os
import sys as _sys

_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",              # TensorFlow's C++ notices (CUDA probing, oneDNN)
    "GRPC_VERBOSITY": "ERROR",                # gRPC's fork-support notices
    "TRANSFORMERS_VERBOSITY": "error",         # transformers' notices ...
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",      # ... and its weight-loading progress bars
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def _set_quiet_env(verbose: bool) -> None:
  """``AUDIOBEAM_VERBOSE=1`` with ``--verbose``, else ``_QUIET_ENV`` (a value the user
  exported wins). Worker processes inherit them."""
  if verbose:
    _os.environ["AUDIOBEAM_VERBOSE"] = "1"
  else:
    for key, value in _QUIET_ENV.items():
      _os.environ.setdefault(key, value)


if __name__ == "__main__":
  # The CLI: set before the imports below can pull in TensorFlow or transformers (they
  # read them once).
  _set_quiet_env("--verbose" in _sys.argv)

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, SetupOptions
from apache_beam.runners.runner import PipelineState

from audiobeam.bundle import Asset, ModelBundle
from audiobeam.errors import AudiobeamError
from audiobeam.redact import redact_text, redact_uri
from pipelines import lifecycle
from pipelines.options import (DEFAULT_RUNNER, RUN_RECORD_KIND, EmbedConfig, is_local_runner,
                               model_options, parse_config)
from transforms import manifest, progress
from transforms import provenance as provenance_lib
from transforms.embed import (BundleModelHandler, EmbedWithModel, model_metrics_namespace,
                              poison_input_for_test)
from transforms.extract import ExtractModelInputs
from transforms.match import PATTERN_ERROR_TYPES, MatchAudio
from transforms.postprocess import PostprocessAndPool
from transforms.write import ERRORS_DIR, WriteErrors, WriteModelOutputs

__all__ = ["run", "main", "build_pipeline", "RunSummary", "RUN_JSON"]

RUN_JSON = lifecycle.RUN_JSON
_NAMESPACE = "audiobeam"
_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass
class RunSummary:
  """What a finished run did; ``counts`` are read back from the files written.

  ``counts``: ``files_matched``, ``files_skipped_existing`` and ``models``: model ->
  ``files_embedded``, ``files_skipped_existing``, ``errors``, ``errors_by_type``,
  ``frames``, ``audio_seconds`` (and ``<extra>_records`` for TFRecord extras).
  """
  run_id: str
  output: str
  config: dict[str, Any]
  provenance: dict[str, dict[str, Any]]
  counts: dict[str, Any]
  metrics: dict[str, int]
  outputs: dict[str, list[str]]
  wall_seconds: float
  committed_run_ids: list[str] = dataclasses.field(default_factory=list)

  def to_record(self, started_at: str, finished_at: str) -> dict[str, Any]:
    return {
        "kind": RUN_RECORD_KIND,
        "run_id": self.run_id,
        "started_at": started_at,
        "finished_at": finished_at,
        "wall_seconds": round(self.wall_seconds, 3),
        "config": self.config,
        "models": list(self.provenance),
        "provenance": self.provenance,
        "counts": self.counts,
        "metrics": self.metrics,
        "outputs": self.outputs,
    }

  def format(self) -> str:
    c = self.counts
    if not c:
      return f"audiobeam run {self.run_id}: dry run, the job was built and nothing was run"
    skipped = (f", {c['files_skipped_existing']} skipped (embedded before)"
               if c.get("files_skipped_existing") else "")
    lines = [f"audiobeam run {self.run_id}: {c['files_matched']} files matched{skipped}"]
    for model, m in c["models"].items():
      by_type = ", ".join(f"{k}={v}" for k, v in sorted(m["errors_by_type"].items()))
      lines.append(
          f"  {model}: {m['files_embedded']} embedded, {m['errors']} errors"
          + (f" ({by_type})" if by_type else "")
          + f"; audio {m['audio_seconds'] / 3600.0:.3f} h ({m['audio_seconds']:.1f} s), "
          f"frames: {m['frames']}" + self._model_calls(model))
    written = [k for k, v in self.outputs.items() if v]
    lines += [f"  wall time: {self.wall_seconds:.1f} s",
              f"  outputs: {redact_uri(self.output)} ({', '.join(written) or 'no new rows'}; "
              f"{RUN_JSON})"]
    return "\n".join(lines)

  def _model_calls(self, model: str) -> str:
    calls = self.metrics.get(f"{model}_model_calls")
    if not calls:
      return ""
    return (f", model calls: {calls} (mean batch "
            f"{self.metrics.get(f'{model}_model_call_inputs', 0) / calls:.1f})")


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


@dataclasses.dataclass(frozen=True)
class _Model:
  """One model of the run, resolved in the launcher."""
  bundle: ModelBundle
  assets: dict[str, Asset]
  provenance: dict[str, Any]
  schema_metadata: dict[str, str]

  @property
  def settings_sha256(self) -> str:
    return self.provenance["settings_sha256"]


def build_pipeline(pipeline: beam.Pipeline, config: EmbedConfig, models: Sequence[_Model], *,
                   run_id: str, base_dir: str,
                   select_files: beam.PTransform | None = None) -> dict[str, Any]:
  """Adds the embedding job to ``pipeline``, writing under ``base_dir``; returns the
  written-file PCollections by output folder (``vggish/clips``, ``errors``, ...).

  ``select_files`` (PCollection[AudioFile] -> PCollection[AudioFile]) is applied to the
  matched files before decoding: an incremental run drops the (file, model) pairs that
  earlier runs embedded under the same ``settings_sha256``.
  """
  files, match_failures = pipeline | "MatchAudio" >> MatchAudio(list(config.input))
  if select_files is not None:
    files = files | "SelectFiles" >> select_files
  branches = files | "ExtractModelInputs" >> ExtractModelInputs([m.bundle for m in models])
  fault_uris = _test_only_inference_fault_uris()
  failures = [match_failures]
  written: dict[str, Any] = {}
  for model in models:
    name = model.bundle.name
    inputs, outcomes = branches[name]
    if fault_uris:  # TEST ONLY (tests/test_hostile_inputs.py): never set in production
      inputs = inputs | f"TestOnlyInjectInferenceFaults[{name}]" >> beam.Map(
          poison_input_for_test, fault_uris)
    handler = BundleModelHandler(model.bundle, model.assets,
                                 batch_size=config.batch_size_of(model.bundle),
                                 model_copies=config.model_copies)
    frames = inputs | f"EmbedWith[{name}]" >> EmbedWithModel(handler)
    clips, clip_failures = (outcomes, frames) | f"PostprocessAndPool[{name}]" >> PostprocessAndPool(
        model.bundle, model.assets)
    failures.append(clip_failures)
    written.update(clips | f"WriteOutputs[{name}]" >> WriteModelOutputs(
        base_dir, model.bundle, formats=config.format, run_id=run_id,
        provenance=model.provenance, settings_sha256=model.settings_sha256,
        schema_metadata=model.schema_metadata))
  all_failures = failures | "AllFailures" >> beam.Flatten()
  errors_provenance = {"run_id": run_id, "models": {m.bundle.name: m.provenance for m in models}}
  written.update(all_failures | "WriteErrors" >> WriteErrors(
      base_dir, run_id=run_id, settings_sha256={m.bundle.name: m.settings_sha256 for m in models},
      provenance=errors_provenance))
  return written


def _redacted(config: dict[str, Any]) -> dict[str, Any]:
  """The effective config with credentials in URIs masked (local paths are unchanged)."""
  paths = {"input", "output", "cache_dir", "existing_outputs"} | {
      k for k, (_, option) in model_options().items() if option.kind == "path"}
  out = dict(config)
  for key in paths:
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
def _progress(config: EmbedConfig):
  """Local runs: a progress line on stderr every 10 s while the job runs (``--progress``;
  ``auto``: when stderr is a terminal or with ``--verbose``). Workers inherit
  ``AUDIOBEAM_PROGRESS_DIR`` from the launcher's environment for the duration of the run."""
  wanted = config.progress == "on" or (config.progress == "auto" and (
      config.verbose or sys.stderr.isatty()))
  if not wanted or not is_local_runner(config.runner) or progress.PROGRESS_DIR_ENV in os.environ:
    yield
    return
  directory = tempfile.mkdtemp(prefix="audiobeam-progress-")
  os.environ[progress.PROGRESS_DIR_ENV] = directory
  reporter = progress.ProgressReporter(directory).start()
  try:
    yield
  finally:
    reporter.stop()
    os.environ.pop(progress.PROGRESS_DIR_ENV, None)
    shutil.rmtree(directory, ignore_errors=True)


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


def _metrics(result, models: Sequence[str]) -> dict[str, int]:
  """Our counters, plus ``<model>_model_calls``/``<model>_model_call_inputs`` from
  RunInference's batch-size distribution (so a user can see that batches were full)."""
  out: dict[str, int] = {}
  try:
    ours = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE))
    model_metrics = {m: result.metrics().query(MetricsFilter().with_namespace(
        model_metrics_namespace(m)).with_name("inference_request_batch_size")) for m in models}
  except Exception:  # pylint: disable=broad-except  # some runners cannot query metrics
    return out

  def value_of(metric):
    return metric.committed if metric.committed is not None else metric.attempted

  for counter in ours["counters"]:
    name = counter.key.metric.name
    out[name] = out.get(name, 0) + int(value_of(counter) or 0)
  for model, result_of_model in model_metrics.items():
    for distribution in result_of_model["distributions"]:
      data = value_of(distribution)
      if data is not None:
        out[f"{model}_model_calls"] = out.get(f"{model}_model_calls", 0) + int(data.count)
        out[f"{model}_model_call_inputs"] = out.get(f"{model}_model_call_inputs", 0) + int(data.sum)
  return out


# --- reading back what the job wrote ----------------------------------------------------------


def _parquet(path: str, columns: Sequence[str] | None = None):
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    parquet = pq.ParquetFile(f)
    rows = parquet.metadata.num_rows
    table = parquet.read(columns=list(columns)) if columns and rows else None
  return rows, table


def _tfrecord_count(path: str) -> int:
  """Records in a TFRecord file, skipping over payloads (length header + 2 CRCs)."""
  import struct  # pylint: disable=import-outside-toplevel
  count = 0
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        break
      (length,) = struct.unpack("<Q", header[:8])
      f.seek(length + 4, 1)
      count += 1
  return count


@dataclasses.dataclass
class _Written:
  """The staged files of a run, read back: rows per file and the values we count."""
  files: list[tuple[str, str]]               # (staged path, final relative path), non-empty
  counts: dict[str, Any]
  outputs: dict[str, list[str]]              # folder -> final relative paths
  outcomes: dict[str, set[str]]              # model -> uris with a clips or errors row
  manifest_entries: list[dict[str, Any]]


def _read_back(ledger: lifecycle.OutputLedger, run_id: str, models: Sequence[_Model],
               metrics: dict[str, int], kept_folders: set[str]) -> _Written:
  """Reads the run's staged files: counts rows, builds the manifest, and drops the empty
  files of folders in ``kept_folders`` (folders that keep earlier committed files: an
  append run that found nothing new adds no empty files; otherwise every folder gets
  at least one file, so readers always find the schema)."""
  names = [m.bundle.name for m in models]
  per_model = {n: {"files_embedded": 0, "files_skipped_existing": metrics.get(
      f"{n}_files_skipped_existing", 0), "errors": 0, "errors_by_type": {}, "frames": 0,
      "audio_seconds": 0.0} for n in names}
  outcomes: dict[str, set[str]] = {n: set() for n in names}
  entries: list[dict[str, Any]] = []
  outputs: dict[str, list[str]] = {}
  kept = []
  identity = ["uri", "size_bytes", "last_modified_seconds", "settings_sha256", "run_id"]
  for staged, rel in ledger.staged_files(run_id):
    folder = rel.rsplit("/", 1)[0]
    model, _, sub = folder.partition("/")
    if rel.endswith(".tfrecord"):
      rows = _tfrecord_count(staged)
      if rows and model in per_model:
        key = f"{sub}_records"
        per_model[model][key] = per_model[model].get(key, 0) + rows
    elif rel.endswith(".parquet") and folder == ERRORS_DIR:
      rows, table = _parquet(staged, identity + ["model", "error_type", "stage"])
      for row in (table.to_pylist() if table is not None else []):
        model_counts = per_model[row["model"]]
        model_counts["errors"] += 1
        model_counts["errors_by_type"][row["error_type"]] = model_counts["errors_by_type"].get(
            row["error_type"], 0) + 1
        outcomes[row["model"]].add(row["uri"])
        if row["stage"] != "match":
          entries.append({k: row[k] for k in identity} | {
              "model": row["model"], "outcome": "error", "error_type": row["error_type"]})
    elif rel.endswith(".parquet") and sub == "clips":
      rows, table = _parquet(staged, identity + ["duration_seconds"])
      for row in (table.to_pylist() if table is not None else []):
        per_model[model]["files_embedded"] += 1
        per_model[model]["audio_seconds"] += float(row.pop("duration_seconds"))
        outcomes[model].add(row["uri"])
        entries.append(row | {"model": model, "outcome": "embedded"})
    elif rel.endswith(".parquet"):
      rows, _ = _parquet(staged)
      if sub == "frames" and model in per_model:
        per_model[model]["frames"] += rows
    else:
      rows = 1
    if rows or folder not in kept_folders:
      kept.append((staged, rel))
      outputs.setdefault(folder, []).append(rel)
  matched = metrics.get("files_matched")
  accounted_by_model = {}
  for name, counts in per_model.items():
    no_match = sum(counts["errors_by_type"].get(t, 0) for t in PATTERN_ERROR_TYPES)
    accounted = counts["files_embedded"] + counts["errors"] - no_match + counts[
        "files_skipped_existing"]
    accounted_by_model[name] = accounted
    mismatches = [f"{k}: metrics {metrics[f'{name}_{k}']} != rows {counts[k]}"
                  for k in ("files_embedded", "errors", "frames")
                  if f"{name}_{k}" in metrics and metrics[f"{name}_{k}"] != counts[k]]
    if matched is not None and matched != accounted:
      mismatches.append(f"files_matched {matched} != clips {counts['files_embedded']} + errors "
                        f"{counts['errors'] - no_match} (without pattern rows) + skipped "
                        f"{counts['files_skipped_existing']}")
    if mismatches:  # Never silent: this would mean lost or duplicated inputs.
      _LOGGER.error("audiobeam accounting mismatch for %s: %s", name, "; ".join(mismatches))
      counts["accounting_mismatches"] = mismatches
  counts = {"files_matched": matched if matched is not None else max(
      accounted_by_model.values(), default=0),
            "files_skipped_existing": metrics.get("files_skipped_existing", 0),
            "models": per_model}
  return _Written(kept, counts, outputs, outcomes, entries)


def _record_uri_of(models: Sequence[_Model]):
  """For rewriting TFRecord extras when rows are retired: the uri a record belongs to."""
  if not any(e.kind == "tfrecord" for m in models for e in m.bundle.extras(("tfrecord",))):
    return None

  def record_uri(record: bytes) -> str:
    from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
    import_tensorflow()
    from tensorflow.core.example import example_pb2  # pylint: disable=import-outside-toplevel
    example = example_pb2.SequenceExample.FromString(record)
    return example.context.feature["video_id"].bytes_list.value[0].decode("utf-8")

  return record_uri


def _resolve_models(config: EmbedConfig, run_id: str) -> list[_Model]:
  local = is_local_runner(config.runner)
  models = []
  for bundle in config.bundles():
    assets = bundle.resolve_assets(local_runner=local)
    models.append(_Model(bundle, assets, provenance_lib.provenance(
        run_id=run_id, bundle=bundle, assets=assets), bundle.schema_metadata(assets)))
  return models


def run(argv: Sequence[str] | None = None, save_main_session: bool = True,
        test_pipeline: beam.Pipeline | None = None) -> RunSummary:
  """Runs the embedding job. ``argv`` as on the command line (without the program).

  Raises ConfigError/AssetError before any job is built when the configuration or the
  weights are wrong, ConcurrentRunError when another run writes to the output, and
  ForeignFilesError when the output holds files audiobeam did not write (see
  ``--output_mode``). With ``test_pipeline`` (e.g. a TestPipeline) the job is built on
  it and run with its runner and options instead of the ones from ``argv``.
  """
  started = time.monotonic()
  started_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
  config = parse_config(argv)
  # The launcher itself reads weights and writes run.json through FileSystems: give it the
  # same options (s3 endpoint/credentials, GCS project) the workers get.
  FileSystems.set_options(config.pipeline_options())
  run_id = lifecycle.new_run_id()
  models = _resolve_models(config, run_id)
  names = [m.bundle.name for m in models]

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
        {m.bundle.name: m.settings_sha256 for m in models})
  ledger = lifecycle.OutputLedger(config.output)
  provenance = {m.bundle.name: m.provenance for m in models}
  if config.beam_options.get("dry_run"):  # DataflowRunner builds the job and submits nothing
    build_pipeline(pipeline, config, models, run_id=run_id, base_dir=ledger.staging(run_id),
                   select_files=select_files)
    pipeline.run()
    return RunSummary(run_id=run_id, output=config.output, config=_redacted(config.to_dict()),
                      provenance=provenance, counts={}, metrics={}, outputs={},
                      wall_seconds=time.monotonic() - started)

  mode = config.output_mode_effective
  lease = lifecycle.Lease(config.output, run_id, config.pipeline_options())
  lease.acquire()
  try:
    listing = ledger.list()
    ledger.prepare(run_id, config.output_mode, listing)
    build_pipeline(pipeline, config, models, run_id=run_id, base_dir=ledger.staging(run_id),
                   select_files=select_files)
    try:
      with _share_cores_between_workers(pipeline.options), _progress(config):
        result = pipeline.run()
        state = result.wait_until_finish()
      if state is not None and state != PipelineState.DONE:
        raise RuntimeError(f"expected the pipeline to finish DONE, found {state}")
    except BaseException:
      # Uncommitted: remove what this run wrote; earlier outputs stay intact.
      ledger.abort(run_id)
      raise
    metrics = _metrics(result, names)
    kept_folders = ({rel.rsplit("/", 1)[0] for rel in lifecycle.committed_files(listing)}
                    if mode == "append" else set())
    written = _read_back(ledger, run_id, models, metrics, kept_folders)
    summary = RunSummary(run_id=run_id, output=config.output, config=_redacted(config.to_dict()),
                         provenance=provenance, counts=written.counts, metrics=metrics,
                         outputs=written.outputs, wall_seconds=time.monotonic() - started)
    if mode == "append":  # a changed input replaces its old rows
      ledger.retire_rows(listing, written.outcomes, _record_uri_of(models))
    finished_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    record = ledger.commit(run_id, written.files, manifest_entries=written.manifest_entries,
                           run_record=summary.to_record(started_at, finished_at),
                           listing=listing, mode=mode)
    summary.committed_run_ids = record["committed_run_ids"]
  finally:
    lease.release()
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


class _Signalled(BaseException):
  """SIGINT or SIGTERM, raised in the main thread so the run's cleanup (staging, lease)
  runs. Beam may wrap it into its own error when it lands inside a DoFn, so the signal
  is also remembered in ``_SIGNALLED``."""


_SIGNALLED: list[int] = []
_SIGNAL_EXIT = {signal.SIGINT: (130, "SIGINT"), signal.SIGTERM: (143, "SIGTERM")}


def _on_signal(signum, frame):  # pylint: disable=unused-argument
  _SIGNALLED.append(signum)
  # Beam logs the interrupted DoFn's traceback as an error while it unwinds: the user
  # asked for the stop, so only our one-line message is said.
  logging.getLogger("apache_beam").setLevel(logging.CRITICAL + 1)
  raise _Signalled()


def _quiet_start_up(verbose: bool) -> None:
  """TensorFlow's and Beam's start-up noise does not reach a user's terminal unless
  ``--verbose`` (see ``audiobeam.quiet`` for TensorFlow's import-time notices)."""
  _set_quiet_env(verbose)
  if not verbose:
    logging.getLogger("apache_beam").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
  """CLI entry: prints the summary; configuration errors exit 2 with the message; SIGINT
  exits 130 and SIGTERM 143 after removing the run's uncommitted files (earlier outputs
  stay as they were); an unexpected crash exits 1 with its traceback. Everything printed
  is redacted."""
  args = list(sys.argv[1:] if argv is None else argv)
  _quiet_start_up("--verbose" in args)
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
  _redact_log_handlers()
  previous = {s: signal.signal(s, _on_signal) for s in _SIGNAL_EXIT}
  try:
    summary = run(args)
  except AudiobeamError as error:  # ConfigError, AssetError, ...: said before any job ran
    if not _SIGNALLED:
      print(f"error: {redact_text(str(error))}", file=sys.stderr)
      return 2
  except SystemExit:
    raise  # argparse: --help, or a usage error it printed
  except BaseException:  # pylint: disable=broad-except  # shown, minus credentials
    if not _SIGNALLED:
      print(redact_text(traceback.format_exc()), file=sys.stderr)
      return 1
  finally:
    for number, handler in previous.items():
      signal.signal(number, handler)
  if _SIGNALLED:
    code, name = _SIGNAL_EXIT[_SIGNALLED[0]]
    print(f"stopped by {name}: the run's uncommitted files were removed; the output holds "
          "what the last complete run wrote", file=sys.stderr)
    return code
  print(summary.format())
  return 0


if __name__ == "__main__":
  sys.exit(main())
