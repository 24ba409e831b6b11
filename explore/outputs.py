"""Find and read what the pipeline wrote, committed part files only.

An output directory (local path, ``file://``, ``gs://`` or ``s3://``) holds::

  <output>/run.json                                   names the committed run(s)
  <output>/<model>/clips/part-<run_id>-SSSSS-of-NNNNN.parquet    one row per file
  <output>/<model>/frames/part-<run_id>-....parquet              one row per model input
  <output>/<model>/labels/part-....parquet            model extras (CLAP's zero-shot labels)
  <output>/errors/part-<run_id>-....parquet           one row per input without embedding
  <output>/_audiobeam/                                the run ledger (pipelines/lifecycle.py):
      runs/<run_id>.json          commit record of a run (every file it owns)
      runs/<run_id>.started.json  a run that started and has not committed (running, killed)
      staging/<run_id>/...        where a running job writes; moved into place on commit
      lock.json                   the lease of the run writing now

The Airflow DAG writes one such output per day, ``<root>/dt=YYYY-MM-DD/``; a ``<root>``
holding partitions (and no ``run.json`` of its own) reads as the union of its partitions.

Only *committed* part files are read: those whose run id ``run.json`` names (see
``committed_run_ids``, the one place that decides). The pipeline writes into
``_audiobeam/staging/`` and moves files into the readable folders only when it commits, so
those folders hold committed files only and ``run.json``'s ``committed_run_ids`` names
their runs; the check by run id is what keeps a reader consistent while a commit is
moving files, and what reads outputs of the VGGish-only pipeline (which wrote part files
in place: a run in progress or killed left part files that no ``run.json`` names).
``ledger`` reports runs that started and did not commit, and the lease holder.

Every Parquet file carries the run's provenance JSON in its schema metadata under
``audiobeam.provenance``; ``read_provenance`` reads it from the footer alone.

Local paths are read with the standard library and pyarrow (no Beam import); remote ones
through ``apache_beam.io.filesystems.FileSystems`` (imported lazily), so GCS/S3
credentials and ``--s3_endpoint_url``-style options work as in the pipeline.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import json
import os
import re
import urllib.parse
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audiobeam.errors import ConfigError
from audiobeam.layout import (LEDGER_DIR, LOCK, PROVENANCE_METADATA_KEY, RUN_JSON, RUNS_DIR,
                              STAGING_DIR, STARTED_SUFFIX)

__all__ = [
    "RUN_JSON",
    "PROVENANCE_KEY",
    "ERRORS_DIR",
    "LEGACY_MODEL",
    "MANIFEST_DIR",
    "PartFile",
    "Output",
    "open_output",
    "normalize_path",
    "is_local",
    "join",
    "set_filesystem_options",
    "exists",
    "open_binary",
    "list_files",
    "parse_part_name",
    "read_run_json",
    "committed_run_ids",
    "LEDGER_DIR",
    "Ledger",
    "ledger",
    "output_dirs",
    "models",
    "default_model",
    "require_model",
    "part_files",
    "committed_paths",
    "uncommitted_part_files",
    "read_parts",
    "read_clips",
    "read_frames",
    "read_labels",
    "read_errors",
    "read_provenance",
    "provenances",
    "is_vector_type",
    "embedding_column",
    "embedding_matrix",
]

PROVENANCE_KEY = PROVENANCE_METADATA_KEY.encode()
ERRORS_DIR = "errors"
LEGACY_MODEL = "vggish"
"""Outputs of the VGGish-only pipeline (before ``--model``) hold VGGish's ``clips/``,
``frames/``, ``tfrecord/`` at the top instead of under ``vggish/``; they read as model
``vggish``."""
MANIFEST_DIR = "_manifest"
"""Where the VGGish-only pipeline's ``--skip_existing`` runs wrote their manifests
(``run-<run_id>.jsonl``); a manifest there committed its run (see ``committed_run_ids``)."""
_PARTITION_GLOB = "dt=*"
_NOT_MODELS = frozenset({ERRORS_DIR, MANIFEST_DIR, LEDGER_DIR})
_PART_RE = re.compile(
    r"^part-(?P<run_id>.+)-(?P<shard>\d{5})-of-(?P<num_shards>\d{5})(?P<suffix>\..+)?$")
_MANIFEST_RE = re.compile(r"^run-(?P<run_id>.+)\.jsonl$")


@dataclasses.dataclass(frozen=True)
class PartFile:
  """One part file: its full ``path``, ``size_bytes``, ``run_id`` and the ``output``
  directory (a single run's output or ``dt=`` partition) it belongs to."""

  path: str
  size_bytes: int
  run_id: str
  output: str


# --- file system: local without Beam, remote through Beam FileSystems ----------------------

def normalize_path(path: str | os.PathLike) -> str:
  """``file://`` URIs -> local paths, ``~`` expanded, trailing ``/`` removed."""
  path = os.fspath(path)
  if path.startswith("file://"):
    path = urllib.parse.unquote(urllib.parse.urlparse(path).path)
  if is_local(path):
    path = os.path.expanduser(path)
  return path.rstrip("/") or "/"


def is_local(path: str) -> bool:
  """True for local paths and ``file://`` URIs."""
  scheme = urllib.parse.urlparse(path).scheme.lower()
  return len(scheme) <= 1 or scheme == "file"


def join(base: str, *names: str) -> str:
  """``base/name/...`` with ``/`` for URIs and ``os.path.join`` for local paths."""
  if is_local(base):
    return os.path.join(base, *names)
  return "/".join([base.rstrip("/"), *names])


def _filesystems():
  from apache_beam.io.filesystems import FileSystems  # Lazy: local reads need no Beam.
  return FileSystems


def set_filesystem_options(flags: Sequence[str]) -> None:
  """Beam options for reading remote outputs (``--s3_endpoint_url=...``, ``--project=...``):
  passed to ``FileSystems.set_options``. No flags: nothing to set (Beam is not imported)."""
  if not flags:
    return
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  _filesystems().set_options(PipelineOptions(list(flags)))


def exists(path: str) -> bool:
  return os.path.exists(path) if is_local(path) else _filesystems().exists(path)


def open_binary(path: str):
  """A readable, seekable binary file object for ``path``."""
  if is_local(path):
    return open(path, "rb")
  from apache_beam.io.filesystem import CompressionTypes  # pylint: disable=import-outside-toplevel
  return _filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def list_files(pattern: str) -> list[tuple[str, int]]:
  """Files matching the glob ``pattern`` -> sorted ``[(path, size_bytes)]``."""
  if is_local(pattern):
    return sorted((p, os.path.getsize(p)) for p in glob.glob(pattern) if os.path.isfile(p))
  results = _filesystems().match([pattern])
  return sorted((m.path, int(m.size_in_bytes)) for r in results for m in r.metadata_list)


def _basename(path: str) -> str:
  return path.rstrip("/").rsplit("/", 1)[-1] if not is_local(path) else os.path.basename(path)


def _dirname(path: str) -> str:
  return path.rstrip("/").rsplit("/", 1)[0] if not is_local(path) else os.path.dirname(path)


def parse_part_name(name: str) -> str | None:
  """``part-<run_id>-SSSSS-of-NNNNN.parquet`` -> ``run_id``; None for other names."""
  match = _PART_RE.match(_basename(name))
  return match.group("run_id") if match else None


# --- run.json and what is committed ----------------------------------------------------------

def read_run_json(output: str) -> dict:
  """The ``run.json`` record of one output directory; ConfigError when absent or invalid."""
  output = normalize_path(output)
  path = join(output, RUN_JSON)
  if not exists(path):
    leftovers = sorted({p.run_id for p in _all_parts(output)})
    hint = (f" It holds part files of run(s) {', '.join(leftovers)} that no run.json names: "
            "a run in progress or one that did not finish; wait for it or re-run."
            if leftovers else " Pass the --output of a finished `python -m pipelines.embed` run.")
    raise ConfigError(f"expected an audiobeam output with {RUN_JSON} in {output!r}, found no "
                      f"{RUN_JSON}.{hint}")
  return _parse_run_json(path)


def _parse_run_json(path: str) -> dict:
  """The record in the ``run.json`` at ``path`` (known to exist); ConfigError when invalid."""
  try:
    with open_binary(path) as f:
      record = json.loads(f.read().decode("utf-8"))
  except (ValueError, UnicodeDecodeError) as error:
    raise ConfigError(f"expected {path!r} to be JSON written by audiobeam, found invalid JSON "
                      f"({error}); re-run the pipeline into this output") from None
  if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
    raise ConfigError(f"expected {path!r} to hold an object with a string 'run_id', found "
                      f"{type(record).__name__} without one; re-run the pipeline into this output")
  return record


def committed_run_ids(output: str, run_record: dict | None = None,
                      manifest_names: Iterable[str] | None = None) -> frozenset[str]:
  """The run ids whose part files are complete: the one function that decides.

  - ``run.json``'s ``committed_run_ids`` (a list), when it has one (incremental runs that
    keep earlier runs' files may name them all there);
    Every run of the multi-model pipeline writes it (its ``_audiobeam/runs/<id>.json``
    commit records name the same runs); an empty list: no run is committed;
  - else (outputs of the VGGish-only pipeline) its ``run_id``, plus the runs that
    committed an incremental-run manifest (``<output>/_manifest/run-<run_id>.jsonl``:
    ``--skip_existing`` kept those runs' part files, and a run wrote its manifest only
    after its job succeeded).

  ``run_record`` and ``manifest_names`` (file names in ``_manifest/``) are read from
  ``output`` when not given.
  """
  record = run_record if run_record is not None else read_run_json(output)
  named = record.get("committed_run_ids")
  if named is not None:
    if not isinstance(named, list) or not all(isinstance(r, str) for r in named):
      raise ConfigError(f"expected run.json's committed_run_ids in {output!r} to be a list of "
                        f"strings, found {named!r}")
    return frozenset(named)
  if manifest_names is None:
    manifest_names = [_basename(p) for p, _ in
                      list_files(join(normalize_path(output), MANIFEST_DIR, "run-*.jsonl"))]
  ids = {record["run_id"]}
  for name in manifest_names:
    match = _MANIFEST_RE.match(name)
    if match:
      ids.add(match.group("run_id"))
  return frozenset(ids)


def _list_tree(path: str) -> list[tuple[str, int]]:
  """Every file below ``path``: ``[(relative path with '/', size_bytes)]``, sorted. One
  listing request on gs:// / s3://."""
  found = []
  if is_local(path):
    for root, _, names in os.walk(path):
      for name in names:
        full = os.path.join(root, name)
        try:
          found.append((os.path.relpath(full, path).replace(os.sep, "/"), os.path.getsize(full)))
        except OSError:  # removed while listing (a run finishing)
          continue
  else:
    prefix = path.rstrip("/") + "/"
    found = [(p[len(prefix):], size) for p, size in list_files(prefix + "**")
             if p.startswith(prefix)]
  return sorted(found)


def _glob_match(relative: str, pattern: str) -> bool:
  """``fnmatch`` per ``/``-separated component (``*`` never crosses a folder)."""
  names, patterns = relative.split("/"), pattern.split("/")
  return len(names) == len(patterns) and all(
      fnmatch.fnmatchcase(n, p) for n, p in zip(names, patterns))


@dataclasses.dataclass(frozen=True)
class Output:
  """An output resolved once: ``dirs`` (itself, or its ``dt=`` partitions, relative to
  ``path``: ``""`` or ``"dt=2026-03-04"``), each one's ``run.json`` record and committed
  run ids, and the listing of every file below ``path``. Readers accept an ``Output`` or a
  path (resolved on each call: pass an ``Output`` to save round trips on gs:// / s3://)."""

  path: str
  dirs: tuple[str, ...]
  run_records: dict[str, dict]
  committed: dict[str, frozenset[str]]
  files: tuple[tuple[str, int], ...]
  legacy_dirs: frozenset[str] = frozenset()
  footer_provenance: dict[str, dict] = dataclasses.field(default_factory=dict, compare=False,
                                                         repr=False)
  """Provenance already read from part footers, by part path (a committed part never
  changes): a command that asks ``provenances`` twice reads each footer once."""

  def model_prefix(self, directory: str, model: str) -> str:
    """Where ``model``'s tables live in ``directory``, relative to it: ``"<model>/"``, or
    ``""`` for VGGish in the VGGish-only layout (``clips/`` at the top, see ``LEGACY_MODEL``)."""
    return "" if model == LEGACY_MODEL and directory in self.legacy_dirs else f"{model}/"

  def relative_files(self, directory: str) -> list[tuple[str, int]]:
    """``files`` below ``directory``, relative to it."""
    prefix = f"{directory}/" if directory else ""
    return [(rel[len(prefix):], size) for rel, size in self.files if rel.startswith(prefix)]

  def full_path(self, directory: str, *names: str) -> str:
    return join(self.path, *[n for n in (*directory.split("/"), *names) if n])

  def matching(self, directory: str, pattern: str) -> list[tuple[str, int]]:
    """Files of ``directory`` matching ``pattern`` (relative to it) -> [(full path, size)]."""
    prefix = f"{directory}/" if directory else ""
    return [(self.full_path(directory, rel[len(prefix):]), size) for rel, size in self.files
            if rel.startswith(prefix) and _glob_match(rel[len(prefix):], pattern)]


def open_output(path: str | Output) -> Output:
  """Resolves ``path``: an output directory (with ``run.json``) or a folder of ``dt=*``
  partitions that have one. ConfigError when it is neither."""
  if isinstance(path, Output):
    return path
  path = normalize_path(path)
  files = tuple(_list_tree(path))
  names = {rel for rel, _ in files}
  if RUN_JSON in names:
    dirs: tuple[str, ...] = ("",)
  else:
    dirs = tuple(sorted(rel.split("/")[0] for rel in names
                        if _glob_match(rel, f"{_PARTITION_GLOB}/{RUN_JSON}")))
    if not dirs:
      read_run_json(path)  # raises the explanatory ConfigError
  records, committed = {}, {}
  for directory in dirs:
    full = join(path, directory) if directory else path
    records[directory] = _parse_run_json(join(full, RUN_JSON))  # the listing holds it
    prefix = f"{directory}/" if directory else ""
    manifests = [rel.rsplit("/", 1)[-1] for rel in names
                 if rel.startswith(prefix) and _glob_match(rel[len(prefix):], f"{MANIFEST_DIR}/*")]
    committed[directory] = committed_run_ids(full, records[directory], manifests)
  legacy = frozenset(d for d in dirs if any(
      _glob_match(rel[len(f"{d}/" if d else ""):], "clips/part-*.parquet")
      for rel in names if rel.startswith(f"{d}/" if d else "")))
  return Output(path, dirs, records, committed, files, legacy)


def output_dirs(path: str | Output) -> list[str]:
  """The output directories ``path`` stands for: itself when it holds ``run.json``, else
  its ``dt=*`` partitions (sorted, full paths)."""
  out = open_output(path)
  return [out.full_path(d) for d in out.dirs]


# --- part files ---------------------------------------------------------------------------------

def _all_parts(output: str) -> list[PartFile]:
  """Every ``part-*`` file in ``output/*/`` and ``output/*/*/`` (no run.json needed)."""
  found = []
  for rel, size in _list_tree(output):
    run_id = parse_part_name(rel)
    if run_id is not None and rel.count("/") in (1, 2):
      found.append(PartFile(join(output, *rel.split("/")), size, run_id, output))
  return found


def _subdir(model: str | None, kind: str) -> str:
  if model is None:
    return kind
  if not model or "/" in model or model in _NOT_MODELS or model.startswith((".", "_", "dt=")):
    raise ConfigError(f"expected a model name such as 'vggish', found {model!r}")
  return f"{model}/{kind}"


def models(path: str | Output) -> list[str]:
  """Models with committed ``clips`` or ``frames`` in the output (or its partitions), sorted."""
  out = open_output(path)
  names = set()
  for directory in out.dirs:
    for rel, _ in out.relative_files(directory):
      if parse_part_name(rel) not in out.committed[directory]:
        continue
      if _glob_match(rel, "*/clips/part-*.parquet") or _glob_match(rel, "*/frames/part-*.parquet"):
        names.add(rel.split("/")[0])
      elif directory in out.legacy_dirs and (_glob_match(rel, "clips/part-*.parquet")
                                             or _glob_match(rel, "frames/part-*.parquet")):
        names.add(LEGACY_MODEL)
  return sorted(n for n in names - _NOT_MODELS if not n.startswith(("_", ".")))


def require_model(path: str | Output, model: str) -> str:
  """``model`` if the output holds its committed rows, else a ``ConfigError`` naming those it
  holds."""
  out = open_output(path)
  present = models(out)
  if model not in present:
    raise ConfigError(f"expected --model to be one of the models in {out.path!r} "
                      f"({', '.join(present) or 'none'}), found {model!r}")
  return model


def default_model(path: str | Output) -> str:
  """The model a tool uses when none is named: the first model of the latest run.json's
  ``models`` (the run's ``--model`` order) that has committed clips, else the first in
  alphabetical order. ConfigError when the output holds no model's rows."""
  out = open_output(path)
  present = models(out)
  if not present:
    raise ConfigError(f"expected committed clips of at least one model in {out.path!r}, found "
                      "none; run `python -m pipelines.embed` into it first")
  for directory in reversed(out.dirs):
    record = out.run_records.get(directory) or {}
    listed = record.get("models") or (record.get("config") or {}).get("model") or []
    for name in listed if isinstance(listed, list) else []:
      if name in present:
        return name
  return present[0]


def part_files(path: str | Output, model: str | None, kind: str) -> list[PartFile]:
  """Committed Parquet part files of ``<output>/<model>/<kind>/`` (``model=None``: the
  top-level ``<output>/<kind>/``, e.g. ``errors``), over every partition, sorted by path."""
  out = open_output(path)
  subdir = _subdir(model, kind)
  parts = []
  for directory in out.dirs:
    if model is not None:
      subdir = out.model_prefix(directory, model) + kind
    for part_path, size in out.matching(directory, f"{subdir}/part-*.parquet"):
      run_id = parse_part_name(part_path)
      if run_id in out.committed[directory]:
        parts.append(PartFile(part_path, size, run_id, out.full_path(directory)))
  return parts


def committed_paths(path: str | Output, model: str | None, kind: str) -> list[str]:
  """The paths of ``part_files`` (for ``pandas.read_parquet``, ``polars.read_parquet``,
  DuckDB's ``read_parquet([...])``): the committed files only."""
  return [p.path for p in part_files(path, model, kind)]


def uncommitted_part_files(path: str | Output) -> list[PartFile]:
  """Part files no committed run owns: those a run staged under ``_audiobeam/staging/``
  (a run in progress, or killed: the next run removes them), and (VGGish-only pipeline)
  part files in the readable folders whose run id ``run.json`` does not name."""
  out = open_output(path)
  leftovers = []
  for directory in out.dirs:
    for pattern in ("*/part-*", "*/*/part-*"):
      for part_path, size in out.matching(directory, pattern):
        run_id = parse_part_name(part_path)
        if run_id is not None and run_id not in out.committed[directory]:
          leftovers.append(PartFile(part_path, size, run_id, out.full_path(directory)))
    for rel, size in out.relative_files(directory):
      if rel.startswith(STAGING_DIR + "/") and parse_part_name(rel) is not None:
        run_id = rel[len(STAGING_DIR) + 1:].split("/", 1)[0]
        leftovers.append(PartFile(out.full_path(directory, *rel.split("/")), size, run_id,
                                  out.full_path(directory)))
  return sorted(leftovers, key=lambda p: p.path)


@dataclasses.dataclass(frozen=True)
class Ledger:
  """What ``_audiobeam/`` of one output directory says (see ``pipelines/lifecycle.py``).

  ``committed``: ``{run_id: committed_at}`` of the commit records; ``unfinished``:
  ``{run_id: started record}`` of runs that started and did not commit (running now, or
  killed: the next run removes their staging); ``staged``: ``{run_id: (files, bytes)}``
  under ``staging/``; ``lease``: the ``lock.json`` record of the run writing now (None when
  no run holds it).
  """

  committed: dict[str, str | None]
  unfinished: dict[str, dict]
  staged: dict[str, tuple[int, int]]
  lease: dict | None


def _read_json_file(path: str) -> dict | None:
  """A small JSON object file, or None when it is absent, unreadable or not an object (a
  ledger file being replaced)."""
  try:
    with open_binary(path) as f:
      record = json.loads(f.read().decode("utf-8"))
  except (OSError, ValueError, UnicodeDecodeError):
    return None
  return record if isinstance(record, dict) else None


def ledger(path: str | Output, directory: str = "") -> Ledger:
  """The ledger of the output directory ``directory`` of ``path`` (``""``: the output
  itself; ``"dt=..."``: a partition). Outputs without a ledger (the VGGish-only
  pipeline's) give an empty one."""
  out = open_output(path)
  committed: dict[str, str | None] = {}
  started: dict[str, dict] = {}
  staged: dict[str, list[int]] = {}
  lease = None
  for rel, size in out.relative_files(directory):
    if not rel.startswith(LEDGER_DIR + "/"):
      continue
    full = out.full_path(directory, *rel.split("/"))
    if rel.startswith(RUNS_DIR + "/") and rel.count("/") == 2:
      name = rel.rsplit("/", 1)[-1]
      if name.endswith(STARTED_SUFFIX):
        started[name[:-len(STARTED_SUFFIX)]] = _read_json_file(full) or {}
      elif name.endswith(".json") and not name.startswith("."):
        record = _read_json_file(full) or {}
        if record.get("run_id") == name[:-len(".json")]:
          committed[record["run_id"]] = record.get("committed_at")
    elif rel.startswith(STAGING_DIR + "/") and rel.count("/") >= 3:
      run_id = rel[len(STAGING_DIR) + 1:].split("/", 1)[0]
      totals = staged.setdefault(run_id, [0, 0])
      totals[0] += 1
      totals[1] += size
    elif rel == LOCK:
      lease = _read_json_file(full)
  unfinished = {run: record for run, record in sorted(started.items()) if run not in committed}
  return Ledger(dict(sorted(committed.items())), unfinished,
                {run: (n, b) for run, (n, b) in sorted(staged.items())}, lease)


# --- reading tables ------------------------------------------------------------------------------

def _read_one(part: PartFile, columns: Sequence[str] | None) -> pa.Table:
  with open_binary(part.path) as f:
    parquet = pq.ParquetFile(f)
    present = parquet.schema_arrow.names
    wanted = None if columns is None else [c for c in columns if c in present]
    table = parquet.read(columns=wanted)
  return table.replace_schema_metadata(None)


def read_parts(parts: Iterable[PartFile], columns: Sequence[str] | None = None) -> pa.Table:
  """The rows of ``parts`` in order, one table. ``columns``: those to read (a column absent
  from some files is null there; absent from all, it is left out). Schemas of different
  runs are unified (``promote_options="permissive"``). No parts: an empty table."""
  tables = [_read_one(p, columns) for p in parts]
  if not tables:
    return pa.table({})
  return pa.concat_tables(tables, promote_options="permissive")


def read_clips(path: str | Output, model: str, columns: Sequence[str] | None = None) -> pa.Table:
  """``<output>/<model>/clips`` (committed rows): one row per embedded file."""
  return read_parts(part_files(path, model, "clips"), columns)


def read_frames(path: str | Output, model: str, columns: Sequence[str] | None = None) -> pa.Table:
  """``<output>/<model>/frames`` (committed rows): one row per model input window."""
  return read_parts(part_files(path, model, "frames"), columns)


def read_labels(path: str | Output, model: str, columns: Sequence[str] | None = None) -> pa.Table:
  """``<output>/<model>/labels`` (committed rows), e.g. CLAP's zero-shot labels."""
  return read_parts(part_files(path, model, "labels"), columns)


def read_errors(path: str | Output, columns: Sequence[str] | None = None) -> pa.Table:
  """``<output>/errors`` (committed rows): one row per (input, model) without embedding."""
  return read_parts(part_files(path, None, ERRORS_DIR), columns)


def read_provenance(path: str) -> dict | None:
  """The provenance JSON in a Parquet file's schema metadata (footer only); None if absent."""
  with open_binary(path) as f:
    metadata = pq.ParquetFile(f).schema_arrow.metadata or {}
  raw = metadata.get(PROVENANCE_KEY)
  if raw is None:
    return None
  try:
    return json.loads(raw.decode("utf-8"))
  except (ValueError, UnicodeDecodeError):
    raise ConfigError(f"expected {path!r} to carry JSON under the schema metadata key "
                      f"{PROVENANCE_KEY.decode()!r}, found unreadable bytes") from None


def provenances(path: str | Output, model: str | None, kind: str = "clips") -> dict[str, dict]:
  """``{run_id: provenance}`` of the committed parts of ``<model>/<kind>`` (one footer read
  per run); a part without provenance maps to ``{}``."""
  read = path.footer_provenance if isinstance(path, Output) else {}
  out: dict[str, dict] = {}
  for part in part_files(path, model, kind):
    if part.run_id not in out:
      if part.path not in read:
        read[part.path] = read_provenance(part.path) or {}
      out[part.run_id] = read[part.path]
  return out


# --- embeddings ----------------------------------------------------------------------------------

def is_vector_type(type_: pa.DataType) -> bool:
  """A list (fixed-size or not) of numbers: an embedding-like column."""
  return ((pa.types.is_fixed_size_list(type_) or pa.types.is_list(type_)
           or pa.types.is_large_list(type_))
          and (pa.types.is_floating(type_.value_type) or pa.types.is_integer(type_.value_type)))


def embedding_column(schema: pa.Schema, provenance: dict | None = None) -> str:
  """The embedding column of a clips/frames schema: ``embedding`` (every model's clips),
  else the provenance's ``embedding_column``, else the only float vector column, else
  VGGish's ``raw_embedding`` (its frames also hold the uint8 ``audio_embedding``)."""
  names = schema.names
  if "embedding" in names:
    return "embedding"
  named = (provenance or {}).get("embedding_column")
  if isinstance(named, str) and named in names:
    return named
  vectors = [f.name for f in schema if is_vector_type(f.type)
             and pa.types.is_floating(f.type.value_type)]
  if len(vectors) == 1:
    return vectors[0]
  if "raw_embedding" in names:
    return "raw_embedding"
  raise ConfigError(f"expected an embedding column ('embedding' or one float vector column), "
                    f"found columns {names}")


def embedding_matrix(column: pa.ChunkedArray | pa.Array, what: str = "embedding") -> np.ndarray:
  """A fixed-size (or equal-length) list column -> float32 ``[N, D]``.

  ConfigError when a row is null or the lengths differ (the rows are then not comparable).
  """
  if isinstance(column, pa.ChunkedArray):
    column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
  if not is_vector_type(column.type):
    raise ConfigError(f"expected {what} to be a list of numbers per row, found {column.type}")
  if column.null_count:
    raise ConfigError(f"expected every row to have an {what}, found {column.null_count} null "
                      f"rows of {len(column)}; re-embed the files of those rows")
  if pa.types.is_fixed_size_list(column.type):
    dim = column.type.list_size
  else:
    lengths = np.asarray(column.value_lengths())
    dim = int(lengths[0]) if len(lengths) else 0
    if len(lengths) and not np.all(lengths == dim):
      raise ConfigError(f"expected every {what} to have the same length, found lengths "
                        f"{sorted(set(lengths.tolist()))[:5]}: rows of different models or "
                        "settings are not comparable")
  values = column.flatten().to_numpy(zero_copy_only=False)
  return np.ascontiguousarray(values.reshape(len(column), dim), dtype=np.float32)
