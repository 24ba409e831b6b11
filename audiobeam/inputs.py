"""Opening one input file for reading: never blocks, never retries without bound.

``open_input(uri)`` is the one way the pipeline opens an input (a context manager that
gives a seekable binary file object for ``audiobeam.audio.open_audio``):

* **Local paths** (and ``file://``) are opened directly, and only when they are regular
  files. The path is ``stat``-ed first (following symlinks); a FIFO, character or block
  device (``/dev/zero`` behind a symlink), socket or directory is an ``InputError``
  ``not_a_regular_file`` at once. The open itself uses ``O_NONBLOCK`` and the opened
  descriptor is checked again with ``fstat`` (a file swapped for a FIFO between the two
  calls cannot block the worker either); ``O_NONBLOCK`` is then cleared, which changes
  nothing for a regular file. Reads of a local regular file do not block indefinitely
  except on a hung network mount, which no in-process timeout can interrupt.
* **gs://** and **s3://** objects are read by ranged requests (``read_chunk_bytes`` per
  request) through the storage client library that Beam itself uses (google-cloud-storage
  built by Beam's ``gcsio.create_storage_client``; boto3 configured from Beam's
  ``S3Options``), with *our* retry policy instead of the libraries' defaults. Those
  defaults were what made outages grind: Beam 2.77's ``GcsIO.open`` builds a
  ``BlobReader`` whose ``blob.reload()`` runs google-cloud-storage's ``DEFAULT_RETRY``
  (exponential back-off up to a 120 s deadline) for every file, and ``s3io``'s
  ``S3Downloader`` wraps ``head_object`` in Beam's ``retry.with_exponential_backoff``
  (7 retries, 5 s initial delay) on top of botocore's own retries. Here every request
  has a connect/read timeout, the libraries' retries are off, and all retries of one
  file share one ``RetryPolicy.budget_seconds``. The object's generation (GCS) or ETag
  (S3) is pinned at open, so an object replaced while it is read is
  ``changed_during_read``, never a mix of two versions.
* **Other schemes** (``azfs://``, ``hdfs://``, ...) go through Beam's
  ``FileSystems.open`` unchanged (their retries are Beam's).

``match_local(pattern)`` finds the local files of a ``--input`` pattern the same careful
way (Beam's glob syntax; symlinked directories followed with loop protection; FIFOs,
devices, sockets, dangling links and unlistable directories reported, never opened).

Errors carry a stable ``error_type`` (``OPEN_ERROR_TYPES``, defined in
``audiobeam.errors.ERROR_TYPES``) for the ``errors/`` output.
A storage outage is also tracked per process by a ``StorageHealth``: once one bucket has
failed ``max_consecutive_failures`` files in a row (or kept failing for
``max_outage_seconds``) with no success in between, every further open of that bucket
raises ``StorageDownError`` (an ``AudiobeamError`` that is *not* an ``InputError``): the
job fails with that message instead of turning each remaining file into an errors row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import io
import os
import re
import stat
import threading
import time
from typing import BinaryIO, Callable, Iterator

from audiobeam.errors import AudiobeamError, InputError
from audiobeam.redact import redact_text, redact_uri

__all__ = [
    "OPEN_ERROR_TYPES",
    "RetryPolicy",
    "DEFAULT_RETRY_POLICY",
    "StorageHealth",
    "StorageDownError",
    "storage_health",
    "open_input",
    "check_local_input",
    "glob_regex",
    "LocalFile",
    "LocalMatch",
    "match_local",
]

OPEN_ERROR_TYPES = frozenset({"not_found", "permission_denied", "not_a_regular_file",
                              "storage_unavailable", "changed_during_read", "storage_error",
                              "unreadable"})
"""The ``error_type`` values ``open_input`` raises (each defined in
``audiobeam.errors.ERROR_TYPES``, the one table)."""

_LOCAL_SCHEMES = ("", "file")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
  """How long one remote file may keep us waiting.

  A failed request that may succeed later (``storage_unavailable``) is retried after
  ``first_delay_seconds``, doubling up to ``max_delay_seconds``, at most
  ``max_attempts`` times per request, and never past ``budget_seconds`` spent in
  failed requests and back-off for the whole file. ``connect_timeout_seconds`` /
  ``read_timeout_seconds`` bound each request. ``read_chunk_bytes`` is the size of one
  ranged read (and of the read buffer).
  """

  max_attempts: int = 4
  first_delay_seconds: float = 0.5
  max_delay_seconds: float = 4.0
  budget_seconds: float = 20.0
  connect_timeout_seconds: float = 10.0
  read_timeout_seconds: float = 30.0
  read_chunk_bytes: int = 8 << 20

  def __post_init__(self):
    if self.max_attempts < 1 or self.budget_seconds < 0 or self.read_chunk_bytes < 1:
      raise ValueError(f"expected max_attempts >= 1, budget_seconds >= 0, read_chunk_bytes "
                       f">= 1, found {self}")


DEFAULT_RETRY_POLICY = RetryPolicy()


class StorageDownError(AudiobeamError):
  """The storage of a run's inputs is down: the job must stop (not one errors row per file)."""


class StorageHealth:
  """Per-process record of remote storage outcomes, per storage root (``gs://bucket``).

  ``record_success(root)`` after any request that the storage answered (a 404 counts:
  the storage is up). ``record_unavailable(root, uri, message)`` after a file that
  failed with ``storage_unavailable`` once its retries were spent; it raises
  ``StorageDownError`` when ``max_consecutive_failures`` files of that root failed in a
  row, or failures have gone on for ``max_outage_seconds`` (and at least two files)
  with no success in between. After that, ``check(root)`` raises at once: the root
  stays down for this process. Thread-safe.
  """

  def __init__(self, *, max_consecutive_failures: int = 5, max_outage_seconds: float = 120.0,
               clock: Callable[[], float] = time.monotonic):
    if max_consecutive_failures < 1 or max_outage_seconds <= 0:
      raise ValueError("expected max_consecutive_failures >= 1 and max_outage_seconds > 0, "
                       f"found {max_consecutive_failures}, {max_outage_seconds}")
    self.max_consecutive_failures = int(max_consecutive_failures)
    self.max_outage_seconds = float(max_outage_seconds)
    self._clock = clock
    self._lock = threading.Lock()
    self._failures: dict[str, int] = {}           # root -> consecutive failed files
    self._first_failure: dict[str, float] = {}    # root -> clock() of the first of them
    self._down: dict[str, str] = {}               # root -> the StorageDownError message

  def check(self, root: str) -> None:
    """Raises ``StorageDownError`` if ``root`` has been declared down in this process."""
    with self._lock:
      message = self._down.get(root)
    if message is not None:
      raise StorageDownError(message)

  def record_success(self, root: str) -> None:
    with self._lock:
      if root not in self._down:
        self._failures.pop(root, None)
        self._first_failure.pop(root, None)

  def record_unavailable(self, root: str, uri: str, message: str) -> None:
    with self._lock:
      now = self._clock()
      count = self._failures.get(root, 0) + 1
      self._failures[root] = count
      first = self._first_failure.setdefault(root, now)
      outage_seconds = now - first
      if root not in self._down and (
          count >= self.max_consecutive_failures
          or (count >= 2 and outage_seconds >= self.max_outage_seconds)):
        self._down[root] = redact_text(
            f"expected the storage {root} to answer, found {count} files in a row failing "
            f"with storage_unavailable over {outage_seconds:.1f} s and no success in between "
            f"(last: {redact_uri(uri)}: {message}). The run stops here instead of recording "
            "every remaining file as an error: check the network, the bucket and the "
            "credentials, then rerun (with --skip_existing to keep what was embedded).")
      down = self._down.get(root)
    if down is not None:
      raise StorageDownError(down)

  def consecutive_failures(self, root: str) -> int:
    with self._lock:
      return self._failures.get(root, 0)

  def is_down(self, root: str) -> bool:
    with self._lock:
      return root in self._down


_PROCESS_HEALTH = StorageHealth()


def storage_health() -> StorageHealth:
  """The process-wide ``StorageHealth`` that ``open_input`` uses unless given another."""
  return _PROCESS_HEALTH


# --- local files -----------------------------------------------------------------------------


def _kind_of(mode: int) -> str:
  for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                     (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                     (stat.S_ISSOCK, "a socket")):
    if test(mode):
      return name
  return "not a regular file"


def _not_regular(path: str, mode: int) -> InputError:
  return InputError(
      f"{path}: expected a regular audio file, found {_kind_of(mode)}; it is not opened "
      "(reading it could block or never end). Point --input at regular files.",
      error_type="not_a_regular_file")


def _local_path(uri: str) -> str:
  return uri[len("file://"):] if uri.startswith("file://") else uri


def check_local_input(path: str) -> os.stat_result:
  """``os.stat`` of a local input (symlinks followed), or the ``InputError`` it deserves.

  Raises ``InputError`` ``not_found`` (missing, dangling symlink, symlink loop),
  ``permission_denied`` (a directory on the way is not searchable) or
  ``not_a_regular_file``. Never opens anything.
  """
  try:
    st = os.stat(path)
  except FileNotFoundError as e:
    if os.path.islink(path):
      raise InputError(f"{path}: a symlink to {os.readlink(path)!r}, which does not exist; "
                       "fix or remove the link.", error_type="not_found") from e
    raise InputError(f"{path}: no such file; check the path.", error_type="not_found") from e
  except PermissionError as e:
    raise InputError(f"{path}: permission denied while looking it up; make its directories "
                     "searchable (x) for this user.", error_type="permission_denied") from e
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise InputError(f"{path}: symlinks form a loop; fix the links.",
                       error_type="not_found") from e
    if e.errno == errno.ENOTDIR:
      raise InputError(f"{path}: a parent of this path is not a directory; check the path.",
                       error_type="not_found") from e
    raise
  if not stat.S_ISREG(st.st_mode):
    raise _not_regular(path, st.st_mode)
  return st


def _open_local(path: str) -> BinaryIO:
  """A regular local file opened for binary reading, without ever blocking in open()."""
  check_local_input(path)
  flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
  try:
    fd = os.open(path, flags)
  except FileNotFoundError as e:
    raise InputError(f"{path}: vanished before it could be opened.", error_type="not_found") from e
  except PermissionError as e:
    raise InputError(f"{path}: permission denied; make the file readable for this user.",
                     error_type="permission_denied") from e
  try:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # replaced between stat() and open()
      raise _not_regular(path, mode)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    fileobj = os.fdopen(fd, "rb")
    fileobj.raw.name = path  # else named by the descriptor number ("3: ..." in errors rows)
    return fileobj
  except BaseException:
    os.close(fd)
    raise


# --- local globs -------------------------------------------------------------------------------


_GLOB_CHARS = re.compile(r"[*?\[]")


def glob_regex(pattern: str) -> re.Pattern:
  """The regex of a glob in Beam FileSystems' syntax (``FileSystem.translate_pattern``).

  ``*`` matches within one path segment (``[^/\\]*``), ``**`` across segments
  (``.*``), ``?`` one character, ``[...]`` / ``[!...]`` a class; the match is anchored
  at both ends. (Written for this project to match Beam's rules; ``tests`` check both
  agree on the same trees.)
  """
  out, index, n = [], 0, len(pattern)
  while index < n:
    char = pattern[index]
    index += 1
    if char == "*":
      if index < n and pattern[index] == "*":
        out.append(".*")
        index += 1
      else:
        out.append(r"[^/\\]*")
    elif char == "?":
      out.append(".")
    elif char == "[":
      end = index
      if end < n and pattern[end] == "!":
        end += 1
      if end < n and pattern[end] == "]":
        end += 1
      while end < n and pattern[end] != "]":
        end += 1
      if end >= n:
        out.append(r"\[")
      else:
        members = pattern[index:end].replace("\\", "\\\\")
        index = end + 1
        if members[0] == "!":
          members = "^" + members[1:]
        elif members[0] == "^":
          members = "\\" + members
        out.append(f"[{members}]")
    else:
      out.append(re.escape(char))
  return re.compile(r"(?ms)" + "".join(out) + r"\Z")


@dataclasses.dataclass(frozen=True)
class LocalFile:
  """A regular local file found by ``match_local`` (``path`` absolute, as walked)."""

  path: str
  size_bytes: int
  last_modified_seconds: float | None


@dataclasses.dataclass(frozen=True)
class LocalMatch:
  """What ``match_local`` found: regular ``files``, and ``failures`` ((path, InputError))
  for matching entries that cannot be inputs and directories it could not list."""

  files: tuple[LocalFile, ...]
  failures: tuple[tuple[str, InputError], ...]


class _LocalGlob:
  """A local glob pattern, split for the walk: root directory, full regex, segments."""

  def __init__(self, pattern: str):
    self.pattern = pattern
    prefix = _GLOB_CHARS.split(pattern, maxsplit=1)[0]
    root = prefix.rstrip("/") if prefix.endswith("/") else os.path.dirname(prefix)
    self.root = root or "/"
    self.regex = glob_regex(pattern)
    self._segments = pattern.split("/")
    self._segment_regexes = [None if "**" in s else glob_regex(s) for s in self._segments]

  def could_contain(self, directory: str) -> bool:
    """Whether a file below ``directory`` could match (``**`` matches any depth)."""
    parts = directory.rstrip("/").split("/") if directory != "/" else [""]
    for index, part in enumerate(parts):
      if index >= len(self._segments):
        return False
      regex = self._segment_regexes[index]
      if regex is None:
        return True   # '**' matches whatever follows
      if index == len(self._segments) - 1 or not regex.match(part):
        return False  # (the pattern's last segment names files, not directories)
    return True


def match_local(pattern: str) -> LocalMatch:
  """Local files matching ``pattern`` (a path or a glob, made absolute first).

  Globs use Beam's syntax (``glob_regex``). The walk follows symlinked directories, but
  never into a directory already on the current path (loop protection: a link back to
  an ancestor adds nothing), and enters only directories the pattern can match below.
  Matching entries that are not regular files (FIFO, socket, device: never opened),
  dangling links, entries that cannot be examined and directories the pattern reaches
  into but that cannot be listed become ``failures`` with the ``InputError`` that
  ``open_input`` would raise (``not_a_regular_file``, ``not_found``,
  ``permission_denied``). Directories are never matches of a glob; a directory named
  as a plain path is a ``not_a_regular_file`` failure. A path that does not exist
  matches nothing. Never opens a file.
  """
  if pattern.endswith("/"):
    pattern += "*"
  pattern = os.path.abspath(pattern)
  files: list[LocalFile] = []
  failures: list[tuple[str, InputError]] = []
  if not _GLOB_CHARS.search(pattern):
    if os.path.lexists(pattern):
      try:
        files.append(_local_file(pattern, check_local_input(pattern)))
      except InputError as error:
        failures.append((pattern, error))
  else:
    glob = _LocalGlob(pattern)
    if os.path.isdir(glob.root):
      _walk(glob, glob.root, frozenset(), files, failures)
  return LocalMatch(tuple(files), tuple(failures))


def _local_file(path: str, st: os.stat_result) -> LocalFile:
  return LocalFile(path, int(st.st_size), float(st.st_mtime) if st.st_mtime else None)


def _walk(glob: _LocalGlob, directory: str, ancestors: frozenset, files: list, failures: list):
  try:
    identity = os.stat(directory)
    key = (identity.st_dev, identity.st_ino)
    if key in ancestors:
      return  # a symlink back to an ancestor: its files are listed through the ancestor
    with os.scandir(directory) as listing:
      entries = sorted(listing, key=lambda e: e.name)
  except PermissionError as error:
    failures.append((directory, InputError(
        f"{directory}: expected to list this directory for --input {glob.pattern!r}, found "
        f"{error.strerror}; files in it could not be matched. Make it readable and "
        "searchable (r-x) for this user.", error_type="permission_denied")))
    return
  except OSError:
    return  # vanished while walking
  ancestors = ancestors | {key}
  for entry in entries:
    path = os.path.join(directory, entry.name)
    try:
      is_dir = entry.is_dir(follow_symlinks=True)
    except OSError:
      is_dir = False
    if is_dir:
      if glob.could_contain(path):
        _walk(glob, path, ancestors, files, failures)
      continue
    if not glob.regex.match(path):
      continue
    try:
      files.append(_local_file(path, check_local_input(path)))
    except InputError as error:
      failures.append((path, error))
    except OSError as error:
      failures.append((path, InputError(
          f"{path}: could not be examined ({error}); check its permissions.",
          error_type="permission_denied" if isinstance(error, PermissionError)
          else "unreadable")))


# --- remote objects --------------------------------------------------------------------------


_UNAVAILABLE_HTTP = frozenset({408, 429, 500, 502, 503, 504})


def _http_status(error: BaseException) -> int | None:
  code = getattr(error, "code", None)              # google.api_core.exceptions
  if isinstance(code, int):
    return code
  response = getattr(error, "response", None)      # botocore ClientError: a dict
  if isinstance(response, dict):
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if isinstance(status, int):
      return status
  status = getattr(response, "status_code", None)  # requests.HTTPError
  return status if isinstance(status, int) else None


def _classify(error: BaseException) -> str | None:
  """error_type for a storage library's exception, or None when it is not a storage error."""
  import requests  # both client libraries are built on requests / urllib3  # pylint: disable=import-outside-toplevel

  if isinstance(error, InputError):
    return error.error_type
  status = _http_status(error)
  if status is not None:
    if status == 404:
      return "not_found"
    if status in (401, 403):
      return "permission_denied"
    if status == 412:
      return "changed_during_read"
    if status in _UNAVAILABLE_HTTP:
      return "storage_unavailable"
    if 400 <= status < 600:
      return "storage_error"
  name = type(error).__name__
  if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError,
                        TimeoutError)):
    return "storage_unavailable"
  try:
    from google.auth import exceptions as auth_exceptions  # pylint: disable=import-outside-toplevel
    if isinstance(error, auth_exceptions.TransportError):
      return "storage_unavailable"
    if isinstance(error, auth_exceptions.RefreshError):
      return "permission_denied"
  except ImportError:  # pragma: no cover - google-auth comes with apache-beam[gcp]
    pass
  try:
    from botocore import exceptions as boto_exceptions  # pylint: disable=import-outside-toplevel
    if isinstance(error, (boto_exceptions.EndpointConnectionError,
                          boto_exceptions.ConnectionClosedError,
                          boto_exceptions.ConnectTimeoutError, boto_exceptions.ReadTimeoutError)):
      return "storage_unavailable"
    if isinstance(error, boto_exceptions.NoCredentialsError):
      return "permission_denied"
    if isinstance(error, boto_exceptions.ClientError):
      code = str(error.response.get("Error", {}).get("Code", ""))
      if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
        return "not_found"
      if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return "permission_denied"
      if code in ("PreconditionFailed", "412"):
        return "changed_during_read"
      if code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503"):
        return "storage_unavailable"
  except ImportError:  # pragma: no cover - boto3 comes with apache-beam[aws]
    pass
  if name in ("ProtocolError", "IncompleteRead", "ChunkedEncodingError"):
    return "storage_unavailable"
  return None


class _Attempts:
  """The retry budget of one remote file, shared by all its requests."""

  def __init__(self, uri: str, root: str, policy: RetryPolicy, health: StorageHealth):
    self.uri, self.root, self.policy, self.health = uri, root, policy, health
    self.spent_seconds = 0.0

  def call(self, what: str, request: Callable[[], object]):
    """``request()`` with retries; raises ``InputError`` (typed) or ``StorageDownError``."""
    self.health.check(self.root)
    delay = self.policy.first_delay_seconds
    attempt = 0
    while True:
      attempt += 1
      started = time.monotonic()
      try:
        result = request()
      except Exception as error:  # pylint: disable=broad-except  # classified below
        error_type = _classify(error)
        if error_type is None:
          raise
        self.spent_seconds += time.monotonic() - started
        if error_type != "storage_unavailable":
          self.health.record_success(self.root)  # it answered, with a refusal
          raise self._error(what, error_type, error, attempt) from error
        if (attempt >= self.policy.max_attempts
            or self.spent_seconds + delay > self.policy.budget_seconds):
          failure = self._error(what, error_type, error, attempt)
          self.health.record_unavailable(self.root, self.uri, str(failure))
          raise failure from error
        time.sleep(delay)
        self.spent_seconds += delay
        delay = min(delay * 2, self.policy.max_delay_seconds)
        continue
      self.health.record_success(self.root)
      return result

  def _error(self, what: str, error_type: str, error: BaseException, attempts: int) -> InputError:
    detail = redact_text(f"{type(error).__name__}: {error}")[:500]
    advice = {
        "not_found": "check the path; the object may have been deleted after it was matched",
        "permission_denied": "grant read access (storage.objects.get / s3:GetObject) to the "
                             "credentials the workers use",
        "storage_unavailable": f"gave up after {attempts} attempt(s) and "
                               f"{self.spent_seconds:.1f} s of the {self.policy.budget_seconds:g} s "
                               "retry budget; rerun when the storage is reachable",
        "changed_during_read": "the object was overwritten while it was read; rerun to embed "
                               "the new version",
        "storage_error": "see the storage's message",
    }[error_type]
    return InputError(f"{redact_uri(self.uri)}: could not {what} ({detail}); {advice}.",
                      error_type=error_type)


class _RangedObjectFile(io.RawIOBase):
  """A seekable raw file over a remote object of known size, read by ranged requests.

  The last range fetched is kept and reads inside it are served from it: decoders seek
  back to bytes they have read (a header probe, then the decoder; an end-of-file peek, then
  the start), and ``io.BufferedReader`` drops its read-ahead once it is read to its end, so
  without this each such seek downloaded the range again (measured: every WAV and FLAC
  example fetched 3 times, MP3 6 times).
  """

  def __init__(self, uri: str, size_bytes: int, fetch: Callable[[int, int], bytes],
               attempts: _Attempts):
    super().__init__()
    self.name = uri
    self._size = int(size_bytes)
    self._fetch = fetch          # (start, stop) -> bytes of [start, stop)
    self._attempts = attempts
    self._position = 0
    self._kept_start = 0
    self._kept = b""

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def tell(self) -> int:
    return self._position

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
    position = base + offset
    if position < 0:
      raise OSError(errno.EINVAL, f"negative seek position {position}")
    self._position = position
    return position

  def readinto(self, buffer) -> int:
    stop = min(self._position + len(buffer), self._size)
    if stop <= self._position:
      return 0
    start = self._position
    offset = start - self._kept_start
    if 0 <= offset and stop - self._kept_start <= len(self._kept):
      data = memoryview(self._kept)[offset:offset + stop - start]
    else:
      data = self._attempts.call("read bytes %d-%d" % (start, stop - 1),
                                 lambda: self._fetch(start, stop))
      if len(data) != stop - start:
        raise InputError(
            f"{redact_uri(self.name)}: expected bytes {start}-{stop - 1} of a "
            f"{self._size}-byte object, received {len(data)}; it changed while being read. "
            "Rerun to embed the new version.", error_type="changed_during_read")
      self._kept_start, self._kept = start, data
    memoryview(buffer)[:len(data)] = data
    self._position = stop
    return len(data)

  def readall(self) -> bytes:
    parts = []
    while True:
      chunk = self.read(self._attempts.policy.read_chunk_bytes)
      if not chunk:
        return b"".join(parts)
      parts.append(chunk)


_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()


def _pipeline_options(options):
  if options is not None:
    return options
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  # The options Beam gave its own filesystems in this process (set by Pipeline and by the
  # SDK worker); Beam's GCS/S3 filesystems are built from the same attribute.
  return getattr(FileSystems, "_pipeline_options", None) or PipelineOptions([])


def _gcs_client(options):
  from apache_beam.io.gcp import gcsio  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import GoogleCloudOptions  # pylint: disable=import-outside-toplevel

  key = ("gs", os.environ.get("STORAGE_EMULATOR_HOST"),
         options.view_as(GoogleCloudOptions).project)
  with _CLIENTS_LOCK:
    if key not in _CLIENTS:
      _CLIENTS[key] = gcsio.create_storage_client(options)
    return _CLIENTS[key]


def _s3_client(options, policy: RetryPolicy):
  import boto3  # pylint: disable=import-outside-toplevel
  from botocore.config import Config  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import S3Options  # pylint: disable=import-outside-toplevel

  s3 = options.view_as(S3Options)
  key = ("s3", s3.s3_endpoint_url, s3.s3_region_name, s3.s3_access_key_id,
         policy.connect_timeout_seconds, policy.read_timeout_seconds)
  with _CLIENTS_LOCK:
    if key not in _CLIENTS:
      _CLIENTS[key] = boto3.session.Session().client(
          "s3", region_name=s3.s3_region_name, api_version=s3.s3_api_version,
          use_ssl=not s3.s3_disable_ssl, verify=s3.s3_verify,
          endpoint_url=s3.s3_endpoint_url, aws_access_key_id=s3.s3_access_key_id,
          aws_secret_access_key=s3.s3_secret_access_key,
          aws_session_token=s3.s3_session_token,
          config=Config(retries={"max_attempts": 1, "mode": "standard"},
                        connect_timeout=policy.connect_timeout_seconds,
                        read_timeout=policy.read_timeout_seconds))
    return _CLIENTS[key]


def _split_bucket(uri: str) -> tuple[str, str, str]:
  scheme, rest = uri.split("://", 1)
  bucket, _, key = rest.partition("/")
  if not bucket or not key:
    raise InputError(f"{redact_uri(uri)}: expected {scheme}://BUCKET/OBJECT.",
                     error_type="not_found")
  return scheme, bucket, key


def _open_gcs(uri: str, policy: RetryPolicy, health: StorageHealth, options) -> BinaryIO:
  _, bucket_name, key = _split_bucket(uri)
  attempts = _Attempts(uri, f"gs://{bucket_name}", policy, health)
  timeout = (policy.connect_timeout_seconds, policy.read_timeout_seconds)

  def stat_object():
    blob = _gcs_client(options).bucket(bucket_name).blob(key)
    blob.reload(timeout=timeout, retry=None)
    return blob

  blob = attempts.call("look up the object", stat_object)
  generation = blob.generation

  def fetch(start: int, stop: int) -> bytes:
    return blob.download_as_bytes(start=start, end=stop - 1, raw_download=True,
                                  if_generation_match=generation, checksum=None,
                                  timeout=timeout, retry=None)

  raw = _RangedObjectFile(uri, int(blob.size or 0), fetch, attempts)
  return io.BufferedReader(raw, buffer_size=policy.read_chunk_bytes)


def _open_s3(uri: str, policy: RetryPolicy, health: StorageHealth, options) -> BinaryIO:
  _, bucket, key = _split_bucket(uri)
  attempts = _Attempts(uri, f"s3://{bucket}", policy, health)
  client = attempts.call("connect", lambda: _s3_client(options, policy))
  head = attempts.call("look up the object", lambda: client.head_object(Bucket=bucket, Key=key))
  etag = head["ETag"]

  def fetch(start: int, stop: int) -> bytes:
    body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{stop - 1}",
                             IfMatch=etag)["Body"]
    try:
      return body.read()
    finally:
      body.close()

  raw = _RangedObjectFile(uri, int(head["ContentLength"]), fetch, attempts)
  return io.BufferedReader(raw, buffer_size=policy.read_chunk_bytes)


def _open_with_beam(uri: str) -> BinaryIO:
  from apache_beam.io.filesystem import BeamIOError, CompressionTypes  # pylint: disable=import-outside-toplevel
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel

  try:
    return FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED)
  except (FileNotFoundError, BeamIOError) as error:
    causes = list(getattr(error, "exception_details", {}).values()) or [error]
    if any(isinstance(c, FileNotFoundError) or getattr(c, "errno", None) == errno.ENOENT
           for c in causes):
      raise InputError(f"{redact_uri(uri)}: no such file.", error_type="not_found") from error
    raise


@contextlib.contextmanager
def open_input(uri: str, *, retry: RetryPolicy = DEFAULT_RETRY_POLICY,
               health: StorageHealth | None = None, pipeline_options=None
               ) -> Iterator[BinaryIO]:
  """Open one input for binary reading: ``with open_input(uri) as f: open_audio(f)``.

  ``uri``: a local path, ``file://``, ``gs://`` or ``s3://`` URI, or any other scheme
  Beam's FileSystems knows. The file object is seekable for local, gs:// and s3:// inputs
  (``audiobeam.audio`` spools any other). Raises ``InputError`` with an ``error_type``
  from ``OPEN_ERROR_TYPES`` — when opening or, for remote objects, from any later read — and
  ``StorageDownError`` when ``health`` (default: ``storage_health()``) has declared the
  input's bucket down. ``pipeline_options`` configure the storage clients (default: the
  options Beam set for its filesystems in this process).
  """
  health = storage_health() if health is None else health
  scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
  if scheme in _LOCAL_SCHEMES:
    fileobj = _open_local(_local_path(uri))
  elif scheme == "gs":
    fileobj = _open_gcs(uri, retry, health, _pipeline_options(pipeline_options))
  elif scheme == "s3":
    fileobj = _open_s3(uri, retry, health, _pipeline_options(pipeline_options))
  else:
    fileobj = _open_with_beam(uri)
  with contextlib.closing(fileobj):
    yield fileobj
