"""The run lifecycle: one writer per output, staging, commit, and only our own files touched.

An output directory holds the readable outputs (``<model>/frames/``, ``<model>/clips/``,
model extras, ``errors/``, ``run.json``) and audiobeam's ledger under ``_audiobeam/``::

  _audiobeam/lock.json                    the lease of the run writing now (one writer)
  _audiobeam/runs/<run_id>.started.json   written before a run writes anything: proves
                                          that files named with <run_id> are ours
  _audiobeam/runs/<run_id>.json           the commit record: every file the run owns
  _audiobeam/manifests/run-<run_id>.jsonl what the run embedded (incremental runs)
  _audiobeam/staging/<run_id>/...         where the job writes; moved into place on commit

**Ownership.** audiobeam deletes or replaces only files it can prove it wrote: the files
named in a commit record, and files whose names carry a run id with a started record
(``part-<run_id>-*``, ``beam-temp-part-<run_id>-*``, our staging and temp files). Every
delete takes literal paths (from a record, or from a listing filtered by exact name);
an output path is never a pattern (options.py refuses glob characters in ``--output``).
A first run into a directory that holds files audiobeam cannot prove it wrote is
refused, nothing touched, unless ``--output_mode replace|append`` says to write next to
them (they are still never touched).

**One writer.** ``_audiobeam/lock.json`` is created with a precondition (local:
``O_EXCL``; gs://: ``ifGenerationMatch=0``; s3://: ``If-None-Match: *``), renewed by a
heartbeat while the run lasts and deleted at the end. A second run stops at once with a
message naming the holder. A lease whose heartbeat is older than its time to live, or
whose local process is gone, is stale and is taken over.

**Commit.** The job writes under ``_audiobeam/staging/<run_id>/``; readers of the
documented layout never see it. After the job succeeded, empty part files are dropped,
rows of earlier runs that this run's inputs supersede are retired (append mode: a
changed input replaces its old rows), the staged files are moved into place, the
manifest and the commit record are written (the commit point), then ``run.json``, and in
replace mode the earlier runs' files are deleted by their records. A failed run removes
its staging; a killed run leaves staging and a started record, which the next run
removes before its job starts (so a disk that a failed run filled is freed first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Mapping, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from audiobeam.assets import write_atomically
from audiobeam.errors import AudiobeamError, ConfigError
from audiobeam.layout import LEDGER_DIR, LOCK, RUN_JSON, RUNS_DIR, STAGING_DIR, STARTED_SUFFIX
from audiobeam.redact import redact_uri
from transforms.manifest import MANIFESTS_DIR, manifest_path

__all__ = [
    "LEDGER_DIR",
    "RUN_JSON",
    "ConcurrentRunError",
    "ForeignFilesError",
    "Lease",
    "OutputLedger",
    "new_run_id",
]

_TMP_PREFIX = ".tmp-"
_LEASE_TTL_SECONDS = 15 * 60.0
_LOGGER = logging.getLogger(__name__)


class ConcurrentRunError(AudiobeamError):
  """Another run holds the output's lease."""


class ForeignFilesError(ConfigError):
  """The output holds files audiobeam did not write, and no --output_mode was given."""


def new_run_id() -> str:
  """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by start time, unique, no glob characters."""
  now = datetime.datetime.now(datetime.timezone.utc)
  return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _now_iso() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _is_local(uri: str) -> bool:
  return FileSystems.get_scheme(uri) in (None, "file")


def _local(uri: str) -> str:
  return uri[len("file://"):] if uri.startswith("file://") else uri


# --- files -------------------------------------------------------------------------------


def _list_files(directory: str) -> list[tuple[str, int]]:
  """Every file below ``directory`` (recursive, hidden ones too): (path, size). The
  directory name is literal (no glob characters, checked by options.py)."""
  directory = directory.rstrip("/")
  if _is_local(directory):
    root = _local(directory)
    out = []
    for base, dirs, files in os.walk(root):
      dirs.sort()
      for name in sorted(files):
        path = os.path.join(base, name)
        try:
          out.append((path, os.lstat(path).st_size))
        except OSError:
          pass
    return out
  try:
    results = FileSystems.match([directory + "/**"])
  except Exception:  # pylint: disable=broad-except  # nothing there
    return []
  return sorted((m.path, int(m.size_in_bytes or 0)) for r in results for m in r.metadata_list)


def _read_text(path: str) -> str | None:
  try:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      return f.read().decode("utf-8")
  except Exception:  # pylint: disable=broad-except  # absent or unreadable
    return None


def _write_text(path: str, text: str) -> None:
  """Writes ``path`` so that a reader sees the old or the new content, never a part:
  local files via a temporary name + rename; object stores publish an upload whole."""
  data = text.encode("utf-8")
  if _is_local(path):
    write_atomically(_local(path), lambda f: f.write(data))
    return
  with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    f.write(data)


def _delete(paths: Sequence[str]) -> None:
  """Deletes literal file paths (each checked by the caller to be ours); missing is fine."""
  for path in paths:
    if _is_local(path):
      with contextlib.suppress(FileNotFoundError):
        os.unlink(_local(path))
    else:
      with contextlib.suppress(Exception):
        FileSystems.delete([path])


def _prune_empty_dirs(root: str, below: str) -> None:
  """Local only: removes empty directories under ``below`` (inside ``root``), bottom up."""
  if not _is_local(root):
    return
  start = _local(below)
  for base, _, _ in sorted(os.walk(start), key=lambda t: -len(t[0])):
    with contextlib.suppress(OSError):
      os.rmdir(base)


# --- the lease ---------------------------------------------------------------------------


class _LocalLock:

  def __init__(self, path: str):
    self.path = _local(path)

  def create(self, data: str) -> bool:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(data)
    return True

  def read(self):
    try:
      with open(self.path, encoding="utf-8") as f:
        return f.read(), None
    except FileNotFoundError:
      return None, None

  def replace(self, data: str, token) -> bool:
    del token
    temp = f"{self.path}{_TMP_PREFIX}{uuid.uuid4().hex[:8]}"
    with open(temp, "w", encoding="utf-8") as f:
      f.write(data)
    os.replace(temp, self.path)
    return True

  def take_over(self, data: str, token) -> bool:
    """Moves the stale lock aside (only one contender's rename succeeds), then creates."""
    del token
    aside = f"{self.path}.stale-{uuid.uuid4().hex[:8]}"
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return False
    os.unlink(aside)
    return self.create(data)

  def delete(self, token) -> None:
    del token
    with contextlib.suppress(FileNotFoundError):
      os.unlink(self.path)


class _GcsLock:
  """google-cloud-storage with generation preconditions (the client Beam's GcsIO builds)."""

  def __init__(self, path: str, options):
    from apache_beam.io.gcp import gcsio  # pylint: disable=import-outside-toplevel
    bucket, name = path[len("gs://"):].split("/", 1)
    self._blob = gcsio.create_storage_client(options).bucket(bucket).blob(name)

  def create(self, data: str) -> bool:
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    try:
      self._blob.upload_from_string(data, if_generation_match=0)
    except exceptions.PreconditionFailed:
      return False
    return True

  def read(self):
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    try:
      self._blob.reload()
      return self._blob.download_as_bytes().decode("utf-8"), self._blob.generation
    except exceptions.NotFound:
      return None, None

  def replace(self, data: str, token) -> bool:
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    try:
      self._blob.upload_from_string(data, if_generation_match=token)
    except exceptions.PreconditionFailed:
      return False
    return True

  take_over = replace

  def delete(self, token) -> None:
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    with contextlib.suppress(exceptions.NotFound, exceptions.PreconditionFailed):
      self._blob.delete(if_generation_match=token)


class _S3Lock:
  """boto3 with ``If-None-Match: *`` / ``If-Match: <etag>`` (the client Beam's S3IO builds)."""

  def __init__(self, path: str, options):
    from apache_beam.io.aws.clients.s3 import boto3_client  # pylint: disable=import-outside-toplevel
    self._bucket, self._key = path[len("s3://"):].split("/", 1)
    self._client = boto3_client.Client(options=options).client

  def _put(self, data: str, **condition) -> bool:
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel
    try:
      self._client.put_object(Bucket=self._bucket, Key=self._key, Body=data.encode(), **condition)
    except ClientError as error:
      if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412",
                                                          "ConditionalRequestConflict"):
        return False
      raise
    return True

  def create(self, data: str) -> bool:
    return self._put(data, IfNoneMatch="*")

  def read(self):
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel
    try:
      response = self._client.get_object(Bucket=self._bucket, Key=self._key)
    except ClientError as error:
      if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
        return None, None
      raise
    return response["Body"].read().decode("utf-8"), response["ETag"]

  def replace(self, data: str, token) -> bool:
    return self._put(data, IfMatch=token)

  take_over = replace

  def delete(self, token) -> None:
    del token
    self._client.delete_object(Bucket=self._bucket, Key=self._key)


def _lock_backend(path: str, options):
  scheme = FileSystems.get_scheme(path)
  if scheme in (None, "file"):
    return _LocalLock(path)
  if scheme == "gs":
    return _GcsLock(path, options)
  if scheme == "s3":
    return _S3Lock(path, options)
  raise ConfigError(f"expected --output on a local disk, gs:// or s3://, found {redact_uri(path)!r}")


class Lease:
  """The output's single-writer lease (see the module docstring)."""

  def __init__(self, output: str, run_id: str, options=None, ttl_seconds: float = _LEASE_TTL_SECONDS):
    self._path = f"{output.rstrip('/')}/{LOCK}"
    self._run_id = run_id
    self._ttl = float(ttl_seconds)
    self._backend = _lock_backend(self._path, options)
    self._token = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def _record(self) -> str:
    now = time.time()
    return json.dumps({"run_id": self._run_id, "host": socket.gethostname(), "pid": os.getpid(),
                       "heartbeat_unix_seconds": now, "expires_unix_seconds": now + self._ttl},
                      sort_keys=True)

  @staticmethod
  def _stale(holder: Mapping[str, Any]) -> bool:
    if float(holder.get("expires_unix_seconds", 0)) < time.time():
      return True
    if holder.get("host") == socket.gethostname():
      try:
        os.kill(int(holder.get("pid", -1)), 0)
      except ProcessLookupError:
        return True  # its process is gone
      except (PermissionError, ValueError, OverflowError):
        return False
    return False

  def acquire(self) -> None:
    """Takes the lease or raises ConcurrentRunError naming the holder."""
    for _ in range(3):
      if self._backend.create(self._record()):
        break
      text, token = self._backend.read()
      if text is None:
        continue  # released meanwhile: try again
      try:
        holder = json.loads(text)
      except ValueError:
        holder = {}
      if not self._stale(holder):
        started = datetime.datetime.fromtimestamp(
            float(holder.get("heartbeat_unix_seconds", 0)), datetime.timezone.utc).isoformat()
        raise ConcurrentRunError(
            f"another audiobeam run is writing to this output: run {holder.get('run_id')!r} "
            f"on host {holder.get('host')!r} (pid {holder.get('pid')}), last heartbeat "
            f"{started}. Wait for it to finish, or write to another --output. (A lease whose "
            f"heartbeat is older than {self._ttl / 60:.0f} min is taken over; delete "
            f"{redact_uri(self._path)} only if you are sure no run is writing.)")
      _LOGGER.warning("taking over the stale lease of run %s", holder.get("run_id"))
      if self._backend.take_over(self._record(), token):
        break
    else:
      raise ConcurrentRunError(f"could not take the lease {redact_uri(self._path)}: other runs "
                               "keep taking it; try again")
    _, self._token = self._backend.read()
    self._thread = threading.Thread(target=self._heartbeat, name="audiobeam-lease", daemon=True)
    self._thread.start()

  def _heartbeat(self) -> None:
    while not self._stop.wait(self._ttl / 3):
      try:
        if self._backend.replace(self._record(), self._token):
          _, self._token = self._backend.read()
        else:
          _LOGGER.error("lost the output's lease %s to another run", redact_uri(self._path))
          return
      except Exception:  # pylint: disable=broad-except  # the next beat retries
        _LOGGER.warning("could not renew the lease %s", redact_uri(self._path), exc_info=True)

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=10)
    text, token = self._backend.read()
    if text is not None and json.loads(text).get("run_id") == self._run_id:
      self._backend.delete(token)


# --- the ledger --------------------------------------------------------------------------


@dataclasses.dataclass
class Listing:
  """What an output holds, sorted into ours and not ours."""

  ours: list[str]
  foreign: list[str]
  committed: dict[str, dict[str, Any]]  # run id -> commit record
  started: set[str]                     # run ids with a started record
  committed_files: frozenset[str]       # the files the commit records name


class OutputLedger:
  """The output directory and what audiobeam owns in it (see the module docstring)."""

  def __init__(self, output: str):
    self.output = output.rstrip("/")

  def path(self, relative: str) -> str:
    return f"{self.output}/{relative}"

  def relative(self, path: str) -> str:
    prefix = self.output + "/"
    if _is_local(self.output):
      path = _local(path)
      prefix = _local(self.output).rstrip("/") + "/"
    if not path.startswith(prefix):
      raise ValueError(f"{path!r} is not under {self.output!r}")
    return path[len(prefix):]

  def staging(self, run_id: str) -> str:
    return self.path(f"{STAGING_DIR}/{run_id}")

  # -- reading --

  def list(self) -> Listing:
    files = [self.relative(p) for p, _ in _list_files(self.output)]
    committed: dict[str, dict[str, Any]] = {}
    started: set[str] = set()
    for rel in files:
      if rel.startswith(RUNS_DIR + "/"):
        name = rel[len(RUNS_DIR) + 1:]
        if name.endswith(STARTED_SUFFIX):
          started.add(name[:-len(STARTED_SUFFIX)])
        elif name.endswith(".json") and "/" not in name:
          text = _read_text(self.path(rel))
          try:
            record = json.loads(text) if text else None
          except ValueError:
            record = None
          if isinstance(record, dict) and record.get("run_id") == name[:-len(".json")]:
            committed[record["run_id"]] = record
    known = started | set(committed)
    ours, foreign = [], []
    committed_files = frozenset(f for r in committed.values() for f in r.get("files", []))
    for rel in files:
      (ours if self._is_ours(rel, known, committed_files) else foreign).append(rel)
    return Listing(ours=ours, foreign=foreign, committed=committed, started=started,
                   committed_files=committed_files)

  def _is_ours(self, rel: str, known: set[str], committed_files: frozenset[str]) -> bool:
    if rel in committed_files:
      return True
    name = rel.rsplit("/", 1)[-1]
    if rel == RUN_JSON:
      text = _read_text(self.path(rel))
      try:
        return bool(text) and json.loads(text).get("run_id") in known
      except (ValueError, AttributeError):
        return False
    if rel.startswith(LEDGER_DIR + "/"):
      inner = rel[len(LEDGER_DIR) + 1:]
      if inner == "lock.json" or inner.startswith("lock.json" + _TMP_PREFIX):
        return True
      if inner.startswith("runs/"):
        return any(inner in (f"runs/{r}.json", f"runs/{r}{STARTED_SUFFIX}") for r in known) or (
            inner.startswith("runs/" + _TMP_PREFIX))
      if inner.startswith("manifests/"):
        return any(inner == f"manifests/run-{r}.jsonl" for r in known) or "/" + _TMP_PREFIX in "/" + inner
      if inner.startswith("staging/"):
        return inner.split("/")[1] in known
      return name.startswith(_TMP_PREFIX)
    if rel == name and name.startswith(_TMP_PREFIX) and name.endswith("-" + RUN_JSON):
      return True  # an interrupted run.json write of ours
    for run_id in known:  # part files, and Beam temp folders of our runs
      if name.startswith(f"part-{run_id}-") or f"/beam-temp-part-{run_id}-" in "/" + rel:
        return True
    return False

  # -- the start of a run --

  def prepare(self, run_id: str, mode: str | None, listing: Listing) -> None:
    """Checks ownership (ForeignFilesError), then removes what earlier runs of ours left
    uncommitted (staging, parts, temp files) and records this run as started."""
    if listing.foreign and mode is None:
      sample = ", ".join(listing.foreign[:5]) + (" ..." if len(listing.foreign) > 5 else "")
      raise ForeignFilesError(
          f"expected --output {redact_uri(self.output)} to be empty or to hold only audiobeam's "
          f"own outputs, found {len(listing.foreign)} file(s) audiobeam did not write "
          f"({sample}). Nothing was touched. Choose an empty folder, or pass --output_mode "
          "replace (replace audiobeam's earlier outputs here) or --output_mode append (add to "
          "them); either way files audiobeam did not write are never modified or deleted.")
    leftovers = []
    uncommitted = listing.started - set(listing.committed)
    for rel in listing.ours:
      name = rel.rsplit("/", 1)[-1]
      if rel in listing.committed_files or rel == RUN_JSON or rel.startswith(RUNS_DIR + "/"):
        continue
      if rel.startswith(LEDGER_DIR + "/lock.json"):
        continue
      if name.startswith(_TMP_PREFIX):
        leftovers.append(rel)
        continue
      if rel.startswith(STAGING_DIR + "/") or rel.startswith(f"{LEDGER_DIR}/manifests/"):
        run = rel.split("/")[2] if rel.startswith(STAGING_DIR + "/") else name[4:-6]
        if run in uncommitted:
          leftovers.append(rel)
        continue
      if any(name.startswith(f"part-{r}-") or f"/beam-temp-part-{r}-" in "/" + rel
             for r in uncommitted):
        leftovers.append(rel)
    if leftovers:
      _LOGGER.warning("removing %d file(s) that interrupted audiobeam runs left in %s",
                      len(leftovers), redact_uri(self.output))
      _delete([self.path(rel) for rel in leftovers])
      for run in uncommitted:
        _prune_empty_dirs(self.output, self.staging(run))
    # Started records of interrupted runs go last: until their files are gone, they are
    # what proves those files ours.
    _delete([self.path(f"{RUNS_DIR}/{r}{STARTED_SUFFIX}") for r in uncommitted])
    _write_text(self.path(f"{RUNS_DIR}/{run_id}{STARTED_SUFFIX}"), json.dumps(
        {"run_id": run_id, "started_at": _now_iso(), "host": socket.gethostname(),
         "pid": os.getpid(), "mode": mode}, sort_keys=True))

  # -- the end of a run --

  def staged_files(self, run_id: str) -> list[tuple[str, str]]:
    """(staged path, final relative path) of every file the job wrote, Beam's temp files
    excluded."""
    staging = self.staging(run_id)
    out = []
    for path, _ in _list_files(staging):
      rel = self.relative(path)[len(f"{STAGING_DIR}/{run_id}/"):]
      if "/beam-temp-" in "/" + rel or rel.rsplit("/", 1)[-1].startswith(_TMP_PREFIX):
        continue
      out.append((path, rel))
    return out

  def abort(self, run_id: str) -> None:
    """A failed run: remove its staging; its started record goes once staging is gone."""
    try:
      _delete([p for p, _ in _list_files(self.staging(run_id))])
      _prune_empty_dirs(self.output, self.staging(run_id))
      if not _list_files(self.staging(run_id)):
        _delete([self.path(f"{RUNS_DIR}/{run_id}{STARTED_SUFFIX}")])
    except Exception:  # pylint: disable=broad-except  # the next run cleans up
      _LOGGER.warning("could not remove the staging of failed run %s in %s; the next run "
                      "removes it", run_id, redact_uri(self.output), exc_info=True)

  def commit(self, run_id: str, files: Sequence[tuple[str, str]], *,
             manifest_entries: Sequence[Mapping[str, Any]], run_record: Mapping[str, Any],
             listing: Listing, mode: str) -> dict[str, Any]:
    """Moves ``files`` (staged path, final relative path) into place and commits the run.

    Writes the manifest, the commit record (the commit point), ``run.json``
    (``run_record`` + ``committed_run_ids``); in replace mode then deletes the earlier
    runs' files by their records. Returns the ``run.json`` record. (Append mode calls
    ``retire_rows`` first.)
    """
    finals = []
    for staged, rel in files:
      final = self.path(rel)
      if _is_local(final):
        os.makedirs(os.path.dirname(_local(final)), exist_ok=True)
      FileSystems.rename([staged], [final])
      finals.append(rel)
    committed_ids = sorted(listing.committed) if mode == "append" else []
    if finals or manifest_entries:
      manifest = manifest_path(self.output, run_id)
      _write_text(manifest, "".join(json.dumps(e, sort_keys=True) + "\n" for e in manifest_entries))
      finals.append(self.relative(manifest))
      _write_text(self.path(f"{RUNS_DIR}/{run_id}.json"), json.dumps(
          {"run_id": run_id, "committed_at": _now_iso(), "files": finals}, indent=1,
          sort_keys=True))
      committed_ids.append(run_id)
    record = dict(run_record)
    record["committed_run_ids"] = committed_ids
    _write_text(self.path(RUN_JSON), json.dumps(record, indent=2, sort_keys=True) + "\n")
    if mode == "replace":  # earlier runs' files, by their records; then the records
      for old_id, old in sorted(listing.committed.items()):
        _delete([self.path(rel) for rel in old.get("files", [])])
        _delete([self.path(f"{RUNS_DIR}/{old_id}.json")])
    # Staging (empty parts a no-op run wrote) first: until it is gone, the started record
    # is what proves it ours. Committed files are proven by the commit record now.
    _delete([p for p, _ in _list_files(self.staging(run_id))])
    _prune_empty_dirs(self.output, self.path(STAGING_DIR))
    _delete([self.path(f"{RUNS_DIR}/{run_id}{STARTED_SUFFIX}")])
    return record

  def retire_rows(self, listing: Listing, superseded: Mapping[str, set[str]],
                  record_uri: Callable[[bytes], str] | None = None) -> list[str]:
    """Append mode: rewrites earlier committed runs' files without the rows of
    ``superseded`` (model -> uris this run embedded or failed again), so that a changed
    input has one set of rows. Parquet files keep their schema and metadata; TFRecord
    files are filtered with ``record_uri(record) -> uri``; manifests lose the entries.
    Each file is rewritten under a temporary name and renamed over the old one. Returns
    the relative paths rewritten."""
    if not any(superseded.values()):
      return []
    rewritten = []
    for record in listing.committed.values():
      for rel in record.get("files", []):
        parts = rel.split("/")
        model = parts[0] if parts[0] in superseded else None
        if rel.startswith(MANIFESTS_DIR + "/"):
          changed = self._filter_manifest(rel, superseded)
        elif parts[0] == "errors" and rel.endswith(".parquet"):
          changed = self._filter_parquet(rel, superseded, None)
        elif model is not None and rel.endswith(".parquet"):
          changed = self._filter_parquet(rel, superseded, model)
        elif model is not None and rel.endswith(".tfrecord") and record_uri is not None:
          changed = self._filter_tfrecord(rel, superseded[model], record_uri)
        else:
          changed = False
        if changed:
          rewritten.append(rel)
    return rewritten

  def _replace_with(self, rel: str, write: Callable[[Any], None]) -> None:
    final = self.path(rel)
    directory, name = final.rsplit("/", 1)
    temp = f"{directory}/{_TMP_PREFIX}{uuid.uuid4().hex[:8]}-{name}"
    with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      write(f)
    if _is_local(final):
      os.replace(_local(temp), _local(final))
    else:
      FileSystems.rename([temp], [final])

  def _filter_parquet(self, rel: str, superseded: Mapping[str, set[str]], model: str | None) -> bool:
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    import pyarrow.compute as pc  # pylint: disable=import-outside-toplevel
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    with FileSystems.open(self.path(rel), compression_type=CompressionTypes.UNCOMPRESSED) as f:
      table = pq.read_table(f)
    if model is not None:
      drop = pc.is_in(table["uri"], value_set=pa.array(sorted(superseded[model]), pa.string()))
    else:
      drop = pa.array([uri in superseded.get(m, ()) for uri, m in
                       zip(table["uri"].to_pylist(), table["model"].to_pylist())], pa.bool_())
    if not pc.any(drop).as_py():
      return False
    kept = table.filter(pc.invert(drop))
    self._replace_with(rel, lambda f: pq.write_table(kept, f, compression="zstd"))
    return True

  def _filter_tfrecord(self, rel: str, uris: set[str], record_uri: Callable[[bytes], str]) -> bool:
    from apache_beam.io.tfrecordio import _TFRecordUtil  # pylint: disable=import-outside-toplevel
    records = []
    with FileSystems.open(self.path(rel), compression_type=CompressionTypes.UNCOMPRESSED) as f:
      while True:
        record = _TFRecordUtil.read_record(f)
        if record is None:
          break
        records.append(record)
    kept = [r for r in records if record_uri(r) not in uris]
    if len(kept) == len(records):
      return False

    def write(f):
      for record in kept:
        _TFRecordUtil.write_record(f, record)

    self._replace_with(rel, write)
    return True

  def _filter_manifest(self, rel: str, superseded: Mapping[str, set[str]]) -> bool:
    lines = (_read_text(self.path(rel)) or "").splitlines()
    kept = [line for line in lines if line.strip() and (
        lambda e: e.get("uri") not in superseded.get(e.get("model"), ()))(json.loads(line))]
    if len(kept) == len([line for line in lines if line.strip()]):
      return False
    _write_text(self.path(rel), "".join(line + "\n" for line in kept))
    return True


def committed_files(listing: Listing) -> list[str]:
  """Relative paths of every committed run's files (what a reader should read)."""
  return sorted(listing.committed_files)


