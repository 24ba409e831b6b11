"""Incremental runs: a manifest of what each run embedded, and a transform that skips it.

Layout: every successful run of ``pipelines.embed`` adds one file under its output::

  {output}/_manifest/run-{run_id}.jsonl

one JSON object per input the run finished with (a ``clips/`` row or a content error)::

  {"uri": ..., "size_bytes": ..., "last_modified_seconds": ..., "settings_sha256": ...,
   "run_id": ..., "outcome": "embedded" | "error", "error_type": ...}

A manifest file exists only for a committed run (written after the job succeeded, by a
temporary name + rename), so it doubles as the list of runs whose part files are
complete: ``committed_run_ids``.

What "already embedded" means (``SkipAlreadyEmbedded``): an entry with the same ``uri``,
``size_bytes`` and ``last_modified_seconds`` as the matched file, under the same
``settings_sha256`` (provenance.settings_sha256: checkpoint sha256 + PCA sha256 +
front-end params incl. hop + resampler + short-clip policy + pooling), whose outcome was
``embedded``, or an error that the file's bytes determine (``CONTENT_ERROR_TYPES``:
too short, corrupt, unsupported format, ...). Transient failures (not found, permission,
inference) are retried by the next run.

Why size + modification time and not a content hash: the identity must come from the
listing that matching already does (Beam's ``FileMetadata``: path, size_in_bytes,
last_updated_in_seconds), or a daily run over a growing bucket would read every old file
again just to hash it, which is the cost incremental mode exists to avoid. On GCS and S3
an object cannot change without its update time changing (an overwrite is a new object
generation), so the check is exact there; on local disks a rewrite that keeps both size
and mtime (``cp -p``, ``rsync -t`` of a different file) would be missed: touch the file
or run without ``--skip_existing``.

The manifests consulted are the output's own plus those of ``existing_outputs`` (globs of
other output directories: ``gs://b/embeddings/dt=*`` lets a daily partitioned DAG skip
what any earlier partition embedded). The manifests are read inside the pipeline
(fileio + CoGroupByKey on uri), so a manifest of millions of entries never has to fit in
the launcher or be pickled into the job.

Wiring in ``pipelines.embed.run`` (flags ``--skip_existing``, ``--existing_outputs``):
build the job with ``select_files=SkipAlreadyEmbedded(manifest_patterns(output,
existing_outputs), settings_sha256)``; after the job succeeded,
``write_manifest(output, run_id, manifest_entries(clips_parts, errors_parts))``, then keep
the part files of ``committed_run_ids(output)`` (a normal run keeps only its own) and
``delete_manifests(output, kept_run_ids)``, so a manifest never outlives its run's files.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

__all__ = [
    "MANIFEST_DIR",
    "CONTENT_ERROR_TYPES",
    "SkipAlreadyEmbedded",
    "manifest_patterns",
    "manifest_entries",
    "write_manifest",
    "read_manifest",
    "committed_run_ids",
    "delete_manifests",
]

MANIFEST_DIR = "_manifest"
_PREFIX = "run-"
_SUFFIX = ".jsonl"
_NAMESPACE = "audiobeam"

CONTENT_ERROR_TYPES = frozenset({
    "too_short", "corrupt_audio", "empty_file", "unsupported_format", "no_audio_stream",
    "non_finite_samples", "invalid_sample_rate", "no_channels", "decode_error", "bad_audio",
})
"""Error types that the file's bytes determine: re-running on the same bytes fails again."""


def _manifest_dir(output: str) -> str:
  return f"{output.rstrip('/')}/{MANIFEST_DIR}"


def manifest_patterns(output: str, existing_outputs: Sequence[str] = ()) -> list[str]:
  """File patterns of the manifests of ``output`` and of ``existing_outputs`` (dirs/globs)."""
  patterns = []
  for directory in [output, *existing_outputs]:
    pattern = f"{_manifest_dir(directory)}/{_PREFIX}*{_SUFFIX}"
    if pattern not in patterns:
      patterns.append(pattern)
  return patterns


def _identity(uri: str, size_bytes, last_modified_seconds) -> tuple:
  return (uri,
          None if size_bytes is None else int(size_bytes),
          None if last_modified_seconds is None else float(last_modified_seconds))


def _skippable(entry: dict[str, Any], settings_sha256: str) -> bool:
  if entry.get("settings_sha256") != settings_sha256:
    return False
  if entry.get("size_bytes") is None or entry.get("last_modified_seconds") is None:
    return False  # unknown identity: never skip on a guess
  return entry.get("outcome") == "embedded" or (
      entry.get("outcome") == "error" and entry.get("error_type") in CONTENT_ERROR_TYPES)


def _entries_of(readable_file, settings_sha256: str) -> Iterable[tuple[str, tuple]]:
  """A manifest file -> (uri, identity) of the entries that let a file be skipped."""
  for line in readable_file.read_utf8().splitlines():
    if not line.strip():
      continue
    entry = json.loads(line)
    if _skippable(entry, settings_sha256):
      yield entry["uri"], _identity(entry["uri"], entry["size_bytes"], entry["last_modified_seconds"])


def _file_identity(file) -> tuple:
  """Identity of a matched file: our AudioFile or Beam's FileMetadata."""
  if hasattr(file, "uri"):
    return _identity(file.uri, file.size_bytes, file.last_modified_seconds)
  return _identity(file.path, file.size_in_bytes, file.last_updated_in_seconds)


class _KeepNewFn(beam.DoFn):
  """(uri, {files, done}) -> the files whose identity is not among ``done``."""

  def __init__(self):
    self._skipped = Metrics.counter(_NAMESPACE, "files_skipped_existing")
    self._new = Metrics.counter(_NAMESPACE, "files_new")

  def process(self, element):
    _, grouped = element
    done = set(grouped["done"])
    for file in grouped["files"]:
      if _file_identity(file) in done:
        self._skipped.inc()
      else:
        self._new.inc()
        yield file


class SkipAlreadyEmbedded(beam.PTransform):
  """PCollection[AudioFile | FileMetadata] -> the same, minus files already embedded.

  ``manifest_patterns``: from ``manifest_patterns(output, existing_outputs)``; patterns
  that match nothing are fine (a first run). Counters (namespace ``audiobeam``):
  ``files_skipped_existing``, ``files_new``.
  """

  def __init__(self, manifest_patterns: Sequence[str], settings_sha256: str):
    super().__init__()
    self._patterns = list(manifest_patterns)
    self._settings_sha256 = settings_sha256

  def expand(self, files):
    done = (
        files.pipeline
        | "ManifestPatterns" >> beam.Create(self._patterns)
        | "MatchManifests" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
        | "OpenManifests" >> fileio.ReadMatches(compression=CompressionTypes.UNCOMPRESSED)
        | "DoneEntries" >> beam.FlatMap(_entries_of, self._settings_sha256))
    keyed = files | "KeyByUri" >> beam.Map(lambda f: (_file_identity(f)[0], f))
    return ({"files": keyed, "done": done}
            | "JoinManifest" >> beam.CoGroupByKey()
            | "KeepNew" >> beam.ParDo(_KeepNewFn()))


# --- launcher side: write / read / prune -------------------------------------------------


def manifest_entries(clips_paths: Sequence[str], errors_paths: Sequence[str]) -> list[dict[str, Any]]:
  """Manifest entries from a run's ``clips/`` and ``errors/`` Parquet part files."""
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  entries = []
  for outcome, paths, columns in (
      ("embedded", clips_paths, ["uri", "size_bytes", "last_modified_seconds", "settings_sha256",
                                 "run_id"]),
      ("error", errors_paths, ["uri", "size_bytes", "last_modified_seconds", "settings_sha256",
                               "run_id", "error_type", "stage"])):
    for path in paths:
      with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        table = pq.read_table(f, columns=columns)
      for row in table.to_pylist():
        if outcome == "error" and row.get("stage") == "match":
          continue  # a pattern that matched nothing, not a file
        row.pop("stage", None)
        entries.append({**row, "outcome": outcome})
  return entries


def write_manifest(output: str, run_id: str, entries: Iterable[dict[str, Any]]) -> str:
  """Writes ``{output}/_manifest/run-{run_id}.jsonl`` atomically (temp name + rename).

  Call it after the run's job succeeded and before older runs' files are deleted: its
  existence marks ``run_id`` as committed.
  """
  path = f"{_manifest_dir(output)}/{_PREFIX}{run_id}{_SUFFIX}"
  temp = f"{_manifest_dir(output)}/.tmp-{uuid.uuid4().hex}"
  lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
  with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    f.write(lines.encode("utf-8"))
  FileSystems.rename([temp], [path])
  return path


def _manifest_files(output: str) -> list[str]:
  try:
    matched = FileSystems.match([f"{_manifest_dir(output)}/{_PREFIX}*{_SUFFIX}"])[0].metadata_list
  except Exception:  # pylint: disable=broad-except  # no manifest directory yet
    return []
  return sorted(m.path for m in matched)


def committed_run_ids(output: str) -> set[str]:
  """Run ids with a manifest in ``output`` (their part files are complete)."""
  names = (path.rsplit("/", 1)[-1] for path in _manifest_files(output))
  return {name[len(_PREFIX):-len(_SUFFIX)] for name in names}


def read_manifest(patterns: Sequence[str], settings_sha256: str | None = None) -> list[dict[str, Any]]:
  """All entries of the manifests matching ``patterns`` (of ``settings_sha256`` if given).

  For inspection and tests; the pipeline reads manifests with ``SkipAlreadyEmbedded``.
  """
  entries = []
  for result in FileSystems.match(list(patterns)):
    for metadata in sorted(result.metadata_list, key=lambda m: m.path):
      with FileSystems.open(metadata.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for line in f.read().decode("utf-8").splitlines():
          if line.strip():
            entry = json.loads(line)
            if settings_sha256 is None or entry.get("settings_sha256") == settings_sha256:
              entries.append(entry)
  return entries


def delete_manifests(output: str, keep_run_ids: Iterable[str]) -> list[str]:
  """Deletes the manifests of runs not in ``keep_run_ids`` (whose part files are deleted)."""
  keep = set(keep_run_ids)
  stale = [p for p in _manifest_files(output)
           if p.rsplit("/", 1)[-1][len(_PREFIX):-len(_SUFFIX)] not in keep]
  if stale:
    FileSystems.delete(stale)
  return stale
