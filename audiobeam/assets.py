"""Model assets (weights, class maps, tokenizer folders): localize, cache, validate, hash.

Every model's weights go through here; what is model-specific (official URLs, how to
validate a file, which companion files a checkpoint has) is passed in by the model's
package.

- A user passes local paths, ``file://``, ``gs://``, ``s3://`` (read through Beam's
  ``FileSystems``, imported lazily) or ``http(s)://`` URIs. Remote files are copied
  once into the cache; local files are used in place.
- ``<cache>`` is the ``cache_dir`` argument, else ``$AUDIOBEAM_CACHE_DIR``, else
  ``~/.cache/audiobeam``. Official files live under ``<cache>/<model>/``; other remote
  URIs under ``<cache>/remote/<sha256(uri)[:16]>/``.
- Every copy goes to a temporary name in the destination directory, is validated by
  the caller's ``validate`` and only then renamed into place (``os.replace``): a cache
  never holds a partial or invalid file. A sidecar ``<file>.json`` records the source
  URI, size and sha256; a copy whose size no longer matches its sidecar is fetched again.
- There is never a fallback to other weights: a failure raises ``AssetError`` whose
  message ends with the caller's ``how_to_fix``.

To refresh a cached copy, delete it from the cache directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Iterable, Sequence

from audiobeam.errors import AssetError

__all__ = [
    "CACHE_DIR_ENV",
    "default_cache_dir",
    "uri_scheme",
    "is_remote",
    "sha256_of_files",
    "write_atomically",
    "read_sidecar",
    "localize",
    "localize_validated",
    "localize_directory",
]

CACHE_DIR_ENV = "AUDIOBEAM_CACHE_DIR"
_DOWNLOAD_TIMEOUT_SECONDS = 60.0
_CHUNK_BYTES = 1 << 20
_BEAM_SCHEMES = ("gs", "s3")
_HTTP_SCHEMES = ("http", "https")

_log = logging.getLogger(__name__)


def default_cache_dir() -> str:
  """``$AUDIOBEAM_CACHE_DIR`` if set, else ``~/.cache/audiobeam``."""
  return os.environ.get(CACHE_DIR_ENV) or os.path.join(
      os.path.expanduser("~"), ".cache", "audiobeam")


def uri_scheme(uri: str) -> str:
  """Lower-case scheme of ``uri``; ``""`` for a local path (``C:`` is a drive, not a scheme)."""
  parsed = urllib.parse.urlparse(os.fspath(uri))
  return parsed.scheme.lower() if len(parsed.scheme) > 1 else ""


def is_remote(uri: str) -> bool:
  """True for URIs that are not local paths (``file://`` counts as local)."""
  return uri_scheme(uri) not in ("", "file")


def local_path(uri: str) -> str:
  """A local path or ``file://`` URI -> the path (``~`` expanded)."""
  uri = os.fspath(uri)
  path = urllib.parse.urlparse(uri).path if uri_scheme(uri) == "file" else uri
  return os.path.expanduser(path)


def sha256_of_files(paths: Iterable[str]) -> str:
  """Hex sha256 of the concatenated bytes of ``paths`` (in the order given)."""
  digest = hashlib.sha256()
  for name in paths:
    with open(name, "rb") as f:
      for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
        digest.update(chunk)
  return digest.hexdigest()


def write_atomically(path: str, write: Callable[[object], None], sync: bool = True) -> None:
  """Calls ``write(binary_file)`` on a temp file next to ``path`` (``.tmp-<random>-<name>``,
  so a leftover says whose it was), syncs it to disk (unless ``sync=False``: for files that
  need not survive a crash, such as progress totals rewritten every second),
  then renames it over ``path``: a reader sees the old or the new content, never a part.
  The one atomic-write helper for local files. The file gets the permissions ``open()``
  gives a new file (0o666 less the umask), like the Parquet parts beside it; not
  ``mkstemp``'s 0o600, which hid run.json and map.html from everyone but their writer."""
  directory = os.path.dirname(path) or "."
  os.makedirs(directory, exist_ok=True)
  while True:
    tmp = os.path.join(directory, f".tmp-{secrets.token_hex(4)}-{os.path.basename(path)}")
    try:
      fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                   0o666)
      break
    except FileExistsError:
      continue
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      if sync:
        os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def localize_validated(uri: str, cache_dir: str | None, *, validate: Callable[[str], None],
                       **localize_options) -> tuple[str, str]:
  """(local path, sha256) of a validated asset: ``localize`` it; a cached remote copy was
  validated before it entered the cache and its sidecar holds its sha256; a local file is
  validated here, then hashed. ``localize_options``: ``localize``'s keywords."""
  path = localize(uri, cache_dir, validate=validate, **localize_options)
  record = read_sidecar(path) if is_remote(os.fspath(uri)) else None
  if record is not None:
    return path, record["sha256"]
  validate(path)
  hash_files = localize_options.get("hash_files") or (lambda p: [p])
  return path, sha256_of_files(hash_files(path))


def read_sidecar(path: str) -> dict | None:
  """The ``<path>.json`` record of a cached copy, or None if absent or stale."""
  try:
    with open(path + ".json", encoding="utf-8") as f:
      record = json.load(f)
    if os.path.getsize(path) == record["size_bytes"]:
      return record
  except (OSError, ValueError, KeyError, TypeError):
    pass
  return None


def _write_sidecar(path: str, uri: str, sha256: str) -> None:
  record = {"uri": uri, "size_bytes": os.path.getsize(path), "sha256": sha256,
            "fetched_at_unix_seconds": round(time.time(), 3)}
  write_atomically(path + ".json", lambda f: f.write(json.dumps(record, indent=1).encode()))


def cache_path(uri: str, cache_dir: str, official_subdir: str | None = None) -> str:
  """Where the copy of ``uri`` lives: ``<cache>/<official_subdir>/<name>`` for official
  files, ``<cache>/remote/<sha256(uri)[:16]>/<name>`` for anything else."""
  name = os.path.basename(urllib.parse.urlparse(uri).path.rstrip("/")) or "asset"
  if official_subdir:
    return os.path.join(cache_dir, official_subdir, name)
  key = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
  return os.path.join(cache_dir, "remote", key, name)


def _http_copy(url: str, out) -> None:
  request = urllib.request.Request(url, headers={"User-Agent": "audiobeam"})
  with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_SECONDS) as response:
    shutil.copyfileobj(response, out, _CHUNK_BYTES)


def _beam_copy(uri: str, out) -> None:
  from apache_beam.io.filesystems import FileSystems  # Lazy: models work without Beam.

  with FileSystems.open(uri, compression_type="uncompressed") as f:
    shutil.copyfileobj(f, out, _CHUNK_BYTES)


def _copy(uri: str, out) -> None:
  (_http_copy if uri_scheme(uri) in _HTTP_SCHEMES else _beam_copy)(uri, out)


def _fetch_failure(what: str, uri: str, error: BaseException, how_to_fix: str) -> AssetError:
  if isinstance(error, (urllib.error.URLError, OSError, TimeoutError)):
    reason = getattr(error, "reason", None) or error
    return AssetError(f"could not download the {what} from {uri!r}: {reason}. {how_to_fix}".rstrip())
  # Beam filesystems raise their own types (BeamIOError, ...).
  return AssetError(f"could not read the {what} from {uri!r}: {type(error).__name__}: "
                    f"{error}. {how_to_fix}".rstrip())


def _check_scheme(uri: str) -> None:
  scheme = uri_scheme(uri)
  if scheme not in _HTTP_SCHEMES + _BEAM_SCHEMES:
    raise AssetError(f"unsupported URI scheme {scheme!r} in {uri!r}: use a local path, "
                     "gs://, s3://, http:// or https://.")


def localize(uri: str, cache_dir: str | None = None, *, what: str = "file",
             validate: Callable[[str], None] | None = None,
             remote_files: Callable[[str], Sequence[str]] | None = None,
             local_exists: Callable[[str], bool] | None = None,
             hash_files: Callable[[str], Sequence[str]] | None = None,
             official_subdir: str | None = None, allow_download: bool = True,
             how_to_fix: str = "") -> str:
  """A local path for ``uri``: local paths as they are; remote URIs copied once into the cache.

  ``validate(path)`` raises AssetError for a file that is not what it should be; it runs
  on every fresh copy before it is renamed into place (a local file is validated by the
  caller when it resolves it). ``remote_files(uri)`` lists the remote files that make up
  the asset on gs:// or s3://, each ``uri + suffix`` (default, and for http(s):
  ``[uri]``; a TF V2 checkpoint lists its ``.index`` and ``.data-*``). ``local_exists(path)`` says whether a local asset is there
  (default ``os.path.isfile``); ``hash_files(path)`` lists the local files whose bytes
  the sidecar's sha256 covers (default ``[path]``). Raises AssetError.
  """
  uri = os.fspath(uri)
  if not is_remote(uri):
    path = local_path(uri)
    if not (local_exists or os.path.isfile)(path):
      raise AssetError(f"{uri!r} does not exist or is not a file. {how_to_fix}".rstrip())
    return path
  _check_scheme(uri)
  dest = cache_path(uri, cache_dir or default_cache_dir(), official_subdir)
  if read_sidecar(dest) is not None:
    return dest
  if not allow_download:
    raise AssetError(f"{uri!r} is not in the cache ({dest!r}) and downloads are off. "
                     f"{how_to_fix}".rstrip())
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  _log.info("fetching %s into %s", uri, dest)
  staging = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix=".tmp-")
  base = os.path.basename(dest)
  try:
    try:
      listable = remote_files is not None and uri_scheme(uri) in _BEAM_SCHEMES
      sources = list(remote_files(uri)) if listable else [uri]
      names = [base + source[len(uri):] for source in sources]
      for source, name in zip(sources, names):
        with open(os.path.join(staging, name), "wb") as out:
          _copy(source, out)
    except AssetError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      raise _fetch_failure(what, uri, error, how_to_fix) from error
    staged = os.path.join(staging, base)
    if validate is not None:
      try:
        validate(staged)
      except AssetError as error:
        raise type(error)(f"the {what} downloaded from {uri!r} is invalid and was not cached:\n"
                          f"{error}") from None
    for name in names:
      os.replace(os.path.join(staging, name), os.path.join(os.path.dirname(dest), name))
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  _write_sidecar(dest, uri, sha256_of_files(hash_files(dest) if hash_files else [dest]))
  return dest


def localize_directory(uri: str, cache_dir: str | None = None, *, what: str = "folder",
                       required: Sequence[str] = (), optional: Sequence[str] = (),
                       validate: Callable[[str], None] | None = None,
                       allow_download: bool = True, how_to_fix: str = "") -> str:
  """A local folder for ``uri`` (a Hugging Face checkpoint folder, say).

  A local folder is used in place and must hold every name in ``required``. A remote
  one is copied file by file (``required`` must exist, ``optional`` are copied when
  present) into ``<cache>/remote/<sha256(uri)[:16]>/<name>/``, validated with
  ``validate(folder)`` and renamed into place; ``<folder>.json`` records the source, the
  files and their combined sha256 (``sha256_of_directory``). Raises AssetError.
  """
  uri = os.fspath(uri).rstrip("/")
  if not is_remote(uri):
    path = local_path(uri)
    if not os.path.isdir(path):
      raise AssetError(f"{uri!r} is not a folder. {how_to_fix}".rstrip())
    missing = [n for n in required if not os.path.isfile(os.path.join(path, n))]
    if missing:
      raise AssetError(f"the {what} {uri!r} lacks {', '.join(missing)}. {how_to_fix}".rstrip())
    return path
  _check_scheme(uri)
  dest = cache_path(uri, cache_dir or default_cache_dir())
  record = _read_directory_sidecar(dest)
  if record is not None:
    return dest
  if not allow_download:
    raise AssetError(f"{uri!r} is not in the cache ({dest!r}) and downloads are off. "
                     f"{how_to_fix}".rstrip())
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  staging = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix=".tmp-")
  try:
    copied = []
    for name in [*required, *optional]:
      source = f"{uri}/{name}"
      try:
        with open(os.path.join(staging, name), "wb") as out:
          _copy(source, out)
        copied.append(name)
      except Exception as error:  # pylint: disable=broad-except
        os.unlink(os.path.join(staging, name))
        if name in required:
          raise _fetch_failure(what, source, error, how_to_fix) from error
    if validate is not None:
      try:
        validate(staging)
      except AssetError as error:
        raise type(error)(f"the {what} downloaded from {uri!r} is invalid and was not cached:\n"
                          f"{error}") from None
    if os.path.isdir(dest):
      shutil.rmtree(dest)  # our own cache entry whose sidecar was stale
    os.replace(staging, dest)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  record = {"uri": uri, "files": sorted(copied), "sha256": sha256_of_directory(dest),
            "fetched_at_unix_seconds": round(time.time(), 3)}
  write_atomically(dest + ".json", lambda f: f.write(json.dumps(record, indent=1).encode()))
  return dest


def sha256_of_directory(path: str, names: Sequence[str] | None = None) -> str:
  """sha256 over ``name\\0sha256(file)\\n`` for the files of a folder (sorted by name)."""
  names = sorted(names if names is not None else
                 (n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))))
  digest = hashlib.sha256()
  for name in names:
    digest.update(f"{name}\0{sha256_of_files([os.path.join(path, name)])}\n".encode())
  return digest.hexdigest()


def _read_directory_sidecar(path: str) -> dict | None:
  try:
    with open(path + ".json", encoding="utf-8") as f:
      record = json.load(f)
    if all(os.path.isfile(os.path.join(path, n)) for n in record["files"]):
      return record
  except (OSError, ValueError, KeyError, TypeError):
    pass
  return None
