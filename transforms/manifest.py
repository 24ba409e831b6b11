"""Incremental runs: skip what earlier runs embedded, per model.

Every committed run of ``pipelines.embed`` keeps a manifest in its output's ledger
(``pipelines.lifecycle``)::

  {output}/_audiobeam/manifests/run-{run_id}.jsonl

one JSON object per (input, model) the run finished with (a ``clips/`` row or a content
error)::

  {"uri": ..., "model": ..., "size_bytes": ..., "last_modified_seconds": ...,
   "settings_sha256": ..., "run_id": ..., "outcome": "embedded" | "error", "error_type": ...}

What "already embedded" means (``SkipAlreadyEmbedded``): for a model, an entry with the
same ``uri``, ``size_bytes`` and ``last_modified_seconds`` as the matched file, under that
model's current ``settings_sha256`` (weights sha256 + front-end params + resampler +
policies + pooling), whose outcome was ``embedded``, or an error that the file's bytes
determine (``audiobeam.errors.is_content_error``: too short, corrupt, unsupported
format, ...). Transient failures (not found, permission, storage, inference) are retried.
A file is decoded only for the models that still need it (``AudioFile.models``); a file
every model has done is skipped.

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
what any earlier partition embedded). They are read inside the pipeline (fileio +
CoGroupByKey on uri), so a manifest of millions of entries never has to fit in the
launcher or be pickled into the job.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Mapping, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from audiobeam.errors import is_content_error
from audiobeam.layout import MANIFESTS_DIR

__all__ = [
    "MANIFESTS_DIR",
    "SkipAlreadyEmbedded",
    "manifest_patterns",
    "manifest_path",
    "skippable",
]

_PREFIX = "run-"
_SUFFIX = ".jsonl"
_NAMESPACE = "audiobeam"


def manifest_path(output: str, run_id: str) -> str:
  """Where the manifest of ``run_id`` lives in ``output``."""
  return f"{output.rstrip('/')}/{MANIFESTS_DIR}/{_PREFIX}{run_id}{_SUFFIX}"


def manifest_patterns(output: str, existing_outputs: Sequence[str] = ()) -> list[str]:
  """File patterns of the manifests of ``output`` and of ``existing_outputs`` (dirs/globs)."""
  patterns = []
  for directory in [output, *existing_outputs]:
    pattern = manifest_path(directory, "*")
    if pattern not in patterns:
      patterns.append(pattern)
  return patterns


def _identity(uri: str, size_bytes, last_modified_seconds) -> tuple:
  return (uri,
          None if size_bytes is None else int(size_bytes),
          None if last_modified_seconds is None else float(last_modified_seconds))


def skippable(entry: Mapping[str, Any], settings_sha256: Mapping[str, str]) -> bool:
  """Whether a manifest entry lets its model skip the file: same model settings, a known
  identity, and an outcome the file's bytes determine."""
  model = entry.get("model")
  if model not in settings_sha256 or entry.get("settings_sha256") != settings_sha256[model]:
    return False
  if entry.get("size_bytes") is None or entry.get("last_modified_seconds") is None:
    return False  # unknown identity: never skip on a guess
  return entry.get("outcome") == "embedded" or (
      entry.get("outcome") == "error" and is_content_error(str(entry.get("error_type"))))


def _entries_of(readable_file, settings_sha256: Mapping[str, str]) -> Iterable[tuple[str, tuple]]:
  """A manifest file -> (uri, (model, identity)) of the entries that let a model skip."""
  for line in readable_file.read_utf8().splitlines():
    if not line.strip():
      continue
    entry = json.loads(line)
    if skippable(entry, settings_sha256):
      yield entry["uri"], (entry["model"], _identity(
          entry["uri"], entry["size_bytes"], entry["last_modified_seconds"]))


def _file_identity(file) -> tuple:
  """Identity of a matched file: our AudioFile or Beam's FileMetadata."""
  if hasattr(file, "uri"):
    return _identity(file.uri, file.size_bytes, file.last_modified_seconds)
  return _identity(file.path, file.size_in_bytes, file.last_updated_in_seconds)


class _KeepNewFn(beam.DoFn):
  """(uri, {files, done}) -> each file with the models it still needs (or nothing)."""

  def __init__(self, models: Sequence[str]):
    self._models = tuple(models)
    self._skipped = {m: Metrics.counter(_NAMESPACE, f"{m}_files_skipped_existing") for m in models}
    self._skipped_all = Metrics.counter(_NAMESPACE, "files_skipped_existing")
    self._new = Metrics.counter(_NAMESPACE, "files_new")

  def process(self, element):
    _, grouped = element
    done = set(grouped["done"])
    for file in grouped["files"]:
      identity = _file_identity(file)
      needed = tuple(m for m in self._models if (m, identity) not in done)
      for model in self._models:
        if model not in needed:
          self._skipped[model].inc()
      if not needed:
        self._skipped_all.inc()
        continue
      self._new.inc()
      if hasattr(file, "models"):
        file = dataclasses.replace(file, models=None if needed == self._models else needed)
      yield file


class SkipAlreadyEmbedded(beam.PTransform):
  """PCollection[AudioFile | FileMetadata] -> the same, minus what is done.

  ``settings_sha256``: model -> its current settings hash (the requested models).
  ``manifest_patterns``: from ``manifest_patterns(output, existing_outputs)``; patterns
  that match nothing are fine (a first run). Counters (namespace ``audiobeam``):
  ``<model>_files_skipped_existing``, ``files_skipped_existing`` (every model done),
  ``files_new``.
  """

  def __init__(self, manifest_patterns: Sequence[str], settings_sha256: Mapping[str, str]):
    super().__init__()
    self._patterns = list(manifest_patterns)
    self._settings = dict(settings_sha256)

  def expand(self, files):
    done = (
        files.pipeline
        | "ManifestPatterns" >> beam.Create(self._patterns)
        | "MatchManifests" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
        | "OpenManifests" >> fileio.ReadMatches(compression=CompressionTypes.UNCOMPRESSED)
        | "DoneEntries" >> beam.FlatMap(_entries_of, self._settings))
    keyed = files | "KeyByUri" >> beam.Map(lambda f: (_file_identity(f)[0], f))
    return ({"files": keyed, "done": done}
            | "JoinManifest" >> beam.CoGroupByKey()
            | "KeepNew" >> beam.ParDo(_KeepNewFn(list(self._settings))))
