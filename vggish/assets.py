"""Finding, downloading, caching and validating the VGGish weights and PCA file.

The real assets are Google's ``vggish_model.ckpt`` (TF1 V1 checkpoint, ~288 MB) and
``vggish_pca_params.npz``, published at ``https://storage.googleapis.com/audioset/``.

- A user may pass local paths, ``file://``, ``gs://``, ``s3://`` (read through Beam's
  ``FileSystems``, imported lazily) or ``http(s)://`` URIs. Remote files are copied
  once into the cache, keyed by URI; local files are used in place.
- With nothing passed, the official files are downloaded once into
  ``<cache>/vggish/``. ``<cache>`` is the ``cache_dir`` argument, else the
  ``AUDIOBEAM_CACHE_DIR`` environment variable, else ``~/.cache/audiobeam``. The
  download base URL can be redirected with ``AUDIOBEAM_WEIGHTS_BASE_URL`` (a mirror;
  tests point it at a local server).
- Every download goes to a temporary file in the destination directory, is validated
  (checkpoint variable names/shapes/dtypes; PCA keys/shapes) and only then renamed
  into place with ``os.replace`` -- a cache never holds a partial or invalid file. A
  sidecar ``<file>.json`` records the source URI, size and sha256.
- Without network the error says how to pass ``--checkpoint``/``--pca_params``. There
  is never a fallback to other weights.

To refresh a cached copy, delete it from the cache directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from vggish.errors import AssetError
from vggish.params import DEFAULT_PARAMS, Params

__all__ = [
    "OFFICIAL_BASE_URL",
    "CHECKPOINT_FILENAME",
    "PCA_PARAMS_FILENAME",
    "CACHE_DIR_ENV",
    "BASE_URL_ENV",
    "Assets",
    "default_cache_dir",
    "official_urls",
    "sha256_of",
    "localize",
    "resolve_assets",
]

OFFICIAL_BASE_URL = "https://storage.googleapis.com/audioset/"
CHECKPOINT_FILENAME = "vggish_model.ckpt"
PCA_PARAMS_FILENAME = "vggish_pca_params.npz"
CACHE_DIR_ENV = "AUDIOBEAM_CACHE_DIR"
BASE_URL_ENV = "AUDIOBEAM_WEIGHTS_BASE_URL"
_DOWNLOAD_TIMEOUT_SECONDS = 60.0
_CHUNK_BYTES = 1 << 20
_REMOTE_SCHEMES = ("gs", "s3")
_HTTP_SCHEMES = ("http", "https")

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Assets:
  """Local paths of validated assets, their sha256 and where they came from."""

  checkpoint_path: str
  pca_params_path: str
  checkpoint_sha256: str
  pca_params_sha256: str
  checkpoint_uri: str
  pca_params_uri: str


def default_cache_dir() -> str:
  """``$AUDIOBEAM_CACHE_DIR`` if set, else ``~/.cache/audiobeam``."""
  return os.environ.get(CACHE_DIR_ENV) or os.path.join(
      os.path.expanduser("~"), ".cache", "audiobeam")


def official_urls(base_url: str | None = None) -> tuple[str, str]:
  """(checkpoint URL, PCA URL) under ``base_url``, ``$AUDIOBEAM_WEIGHTS_BASE_URL`` or Google's."""
  base = base_url or os.environ.get(BASE_URL_ENV) or OFFICIAL_BASE_URL
  if not base.endswith("/"):
    base += "/"
  return base + CHECKPOINT_FILENAME, base + PCA_PARAMS_FILENAME


def _how_to_pass() -> str:
  return (
      "audiobeam needs Google's VGGish weights and never substitutes others. Either allow "
      f"access to {OFFICIAL_BASE_URL} (they are then cached in {default_cache_dir()!r}, "
      f"or ${CACHE_DIR_ENV}), or fetch {OFFICIAL_BASE_URL}{CHECKPOINT_FILENAME} and "
      f"{OFFICIAL_BASE_URL}{PCA_PARAMS_FILENAME} elsewhere and pass them: "
      f"--checkpoint PATH/{CHECKPOINT_FILENAME} --pca_params PATH/{PCA_PARAMS_FILENAME} "
      "where PATH is a local directory, gs://bucket/dir or s3://bucket/dir (in Python: "
      "VGGish.load(checkpoint=..., pca_params=...)).")


def _scheme(uri: str) -> str:
  parsed = urllib.parse.urlparse(uri)
  return parsed.scheme.lower() if len(parsed.scheme) > 1 else ""  # "C:" is a drive.


def _checkpoint_files(path: str) -> list[str]:
  """The files making up a local checkpoint: [V1 file] or [V2 .index, .data-*...]."""
  from vggish.checkpoint import checkpoint_prefix

  prefix = checkpoint_prefix(path)
  if os.path.isfile(prefix):
    return [prefix]
  directory, base = os.path.split(prefix)
  data = sorted(f for f in os.listdir(directory or ".") if f.startswith(base + ".data-"))
  return [prefix + ".index"] + [os.path.join(directory, f) for f in data]


def sha256_of(path: str, *, checkpoint: bool = False) -> str:
  """Hex sha256 of a file; for a V2 checkpoint, of its .index then .data-* bytes."""
  digest = hashlib.sha256()
  for name in (_checkpoint_files(path) if checkpoint else [path]):
    with open(name, "rb") as f:
      for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
        digest.update(chunk)
  return digest.hexdigest()


def _cache_path(uri: str, cache_dir: str, official: bool) -> str:
  name = os.path.basename(urllib.parse.urlparse(uri).path.rstrip("/")) or "asset"
  if official:
    return os.path.join(cache_dir, "vggish", name)
  key = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
  return os.path.join(cache_dir, "remote", key, name)


def _read_sidecar(path: str) -> dict | None:
  try:
    with open(path + ".json", encoding="utf-8") as f:
      record = json.load(f)
    if os.path.getsize(path) == record["size_bytes"]:
      return record
  except (OSError, ValueError, KeyError, TypeError):
    pass
  return None


def _write_atomically(path: str, write: Callable[[object], None]) -> None:
  """Calls ``write(binary_file)`` on a temp file next to ``path``, then renames it."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".part")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _http_copy(url: str, out) -> None:
  request = urllib.request.Request(url, headers={"User-Agent": "audiobeam"})
  with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_SECONDS) as response:
    shutil.copyfileobj(response, out, _CHUNK_BYTES)


def _beam_copy(uri: str, out) -> None:
  from apache_beam.io.filesystems import FileSystems  # Lazy: vggish works without Beam.

  with FileSystems.open(uri, compression_type="uncompressed") as f:
    shutil.copyfileobj(f, out, _CHUNK_BYTES)


def _remote_files(uri: str) -> list[str]:
  """The remote files behind a checkpoint-or-file URI: itself, or V2 .index + .data-*."""
  from apache_beam.io.filesystems import FileSystems

  if FileSystems.exists(uri):
    return [uri]
  if FileSystems.exists(uri + ".index"):
    matched = FileSystems.match([uri + ".data-*"])[0].metadata_list
    return [uri + ".index"] + sorted(m.path for m in matched)
  raise AssetError(f"{uri!r} does not exist (nor {uri}.index for a V2 checkpoint). "
                   + _how_to_pass())


def _validate(path: str, kind: str, params: Params) -> None:
  if kind == "checkpoint":
    from vggish.checkpoint import validate_checkpoint

    validate_checkpoint(path, params)
  else:
    from vggish.postprocess import PCAParams

    PCAParams.load(path, params)


def _fetch(uri: str, dest: str, kind: str, params: Params) -> None:
  """Copies ``uri`` (http(s)/gs/s3; a V2 checkpoint's files too) to ``dest``, validated."""
  scheme = _scheme(uri)
  what = "VGGish checkpoint" if kind == "checkpoint" else "VGGish PCA parameters"
  staging = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix=".tmp-")
  try:
    base = os.path.basename(dest)
    if scheme in _HTTP_SCHEMES:
      sources = [(uri, base)]
    else:
      sources = [(f, base + f[len(uri):]) for f in _remote_files(uri)]
    for source, name in sources:
      with open(os.path.join(staging, name), "wb") as out:
        (_http_copy if scheme in _HTTP_SCHEMES else _beam_copy)(source, out)
    staged = os.path.join(staging, base)
    try:
      _validate(staged, kind, params)
    except AssetError as e:
      raise type(e)(f"the {what} downloaded from {uri!r} is invalid and was not cached:\n"
                    f"{e}") from None
    for _, name in sources:
      os.replace(os.path.join(staging, name), os.path.join(os.path.dirname(dest), name))
  except AssetError:
    raise
  except (urllib.error.URLError, OSError, TimeoutError) as e:
    reason = getattr(e, "reason", None) or e
    raise AssetError(f"could not download the {what} from {uri!r}: {reason}. "
                     + _how_to_pass()) from e
  except Exception as e:  # Beam filesystems raise their own types (BeamIOError, ...).
    raise AssetError(f"could not read the {what} from {uri!r}: {type(e).__name__}: {e}. "
                     + _how_to_pass()) from e
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  record = {"uri": uri, "size_bytes": os.path.getsize(dest),
            "sha256": sha256_of(dest, checkpoint=kind == "checkpoint"),
            "fetched_at_unix_seconds": round(time.time(), 3)}
  _write_atomically(dest + ".json", lambda f: f.write(json.dumps(record, indent=1).encode()))


def localize(uri: str, cache_dir: str | None = None, *, kind: str = "file",
             params: Params = DEFAULT_PARAMS, allow_download: bool = True,
             _official: bool = False) -> str:
  """A local path for ``uri``: local paths as is; remote URIs copied once into the cache.

  ``kind`` ("checkpoint", "pca_params" or "file") selects the validation applied to a
  fresh copy (none for "file"). Raises AssetError when the source cannot be read.
  """
  uri = os.fspath(uri)
  scheme = _scheme(uri)
  if scheme in ("", "file"):
    path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
    path = os.path.expanduser(path)
    from vggish.checkpoint import checkpoint_prefix

    probe = checkpoint_prefix(path) if kind == "checkpoint" else path
    if not (os.path.isfile(probe) or (kind == "checkpoint" and os.path.isfile(probe + ".index"))):
      raise AssetError(f"{uri!r} does not exist or is not a file. " + _how_to_pass())
    return path
  if scheme not in _HTTP_SCHEMES + _REMOTE_SCHEMES:
    raise AssetError(f"unsupported URI scheme {scheme!r} in {uri!r}: use a local path, "
                     "gs://, s3://, http:// or https://.")
  dest = _cache_path(uri, cache_dir or default_cache_dir(), _official)
  if _read_sidecar(dest) is not None:
    return dest
  if not allow_download:
    raise AssetError(f"{uri!r} is not in the cache ({dest!r}) and downloads are off. "
                     + _how_to_pass())
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  _log.info("fetching %s into %s", uri, dest)
  if kind == "file":
    _fetch_plain(uri, dest)
  else:
    _fetch(uri, dest, kind, params)
  return dest


def _fetch_plain(uri: str, dest: str) -> None:
  scheme = _scheme(uri)
  try:
    _write_atomically(dest, lambda out: (_http_copy if scheme in _HTTP_SCHEMES
                                         else _beam_copy)(uri, out))
  except (urllib.error.URLError, OSError, TimeoutError) as e:
    raise AssetError(f"could not download {uri!r}: {getattr(e, 'reason', None) or e}.") from e
  except Exception as e:  # Beam filesystems raise their own types (BeamIOError, ...).
    raise AssetError(f"could not read {uri!r}: {type(e).__name__}: {e}.") from e
  record = {"uri": uri, "size_bytes": os.path.getsize(dest), "sha256": sha256_of(dest),
            "fetched_at_unix_seconds": round(time.time(), 3)}
  _write_atomically(dest + ".json", lambda f: f.write(json.dumps(record, indent=1).encode()))


def _resolve_one(given: str | None, official_url: str, kind: str, cache_dir: str,
                 allow_download: bool, params: Params) -> tuple[str, str, str]:
  """(local path, sha256, source uri) for one asset, validated."""
  uri = os.fspath(given) if given else official_url
  official = not given and official_url.startswith(OFFICIAL_BASE_URL)
  if not given and not allow_download and _read_sidecar(
      _cache_path(uri, cache_dir, official)) is None:
    raise AssetError(f"no cached copy of {uri} in {cache_dir!r} and downloads are off. "
                     + _how_to_pass())
  path = localize(uri, cache_dir, kind=kind, params=params, allow_download=allow_download,
                  _official=official)
  record = _read_sidecar(path) if _scheme(uri) not in ("", "file") else None
  if record is not None:
    return path, record["sha256"], uri
  _validate(path, kind, params)
  return path, sha256_of(path, checkpoint=kind == "checkpoint"), uri


def resolve_assets(checkpoint: str | None = None, pca_params: str | None = None,
                   cache_dir: str | None = None, allow_download: bool = True,
                   base_url: str | None = None, params: Params = DEFAULT_PARAMS) -> Assets:
  """Local, validated checkpoint and PCA file, with their sha256 and source URIs.

  ``None`` means the official file (from ``base_url``, ``$AUDIOBEAM_WEIGHTS_BASE_URL`` or
  Google), downloaded once into the cache. Raises AssetError (CheckpointError for a bad
  checkpoint) with what to do.
  """
  cache_dir = cache_dir or default_cache_dir()
  checkpoint_url, pca_url = official_urls(base_url)
  ckpt_path, ckpt_sha, ckpt_uri = _resolve_one(
      checkpoint, checkpoint_url, "checkpoint", cache_dir, allow_download, params)
  pca_path, pca_sha, pca_uri = _resolve_one(
      pca_params, pca_url, "pca_params", cache_dir, allow_download, params)
  return Assets(ckpt_path, pca_path, ckpt_sha, pca_sha, ckpt_uri, pca_uri)
