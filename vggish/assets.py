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
- Every download is validated (checkpoint variable names/shapes/dtypes; PCA keys/shapes)
  before it is renamed into the cache (the generic machinery: ``audiobeam.assets``).
- Without network the error says how to pass ``--checkpoint``/``--pca_params``. There
  is never a fallback to other weights.

To refresh a cached copy, delete it from the cache directory.
"""

from __future__ import annotations

import dataclasses
import os

from audiobeam import assets as cache
from audiobeam.assets import CACHE_DIR_ENV, default_cache_dir
from audiobeam.errors import AssetError
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
BASE_URL_ENV = "AUDIOBEAM_WEIGHTS_BASE_URL"
_CACHE_SUBDIR = "vggish"


@dataclasses.dataclass(frozen=True)
class Assets:
  """Local paths of validated assets, their sha256 and where they came from."""

  checkpoint_path: str
  pca_params_path: str
  checkpoint_sha256: str
  pca_params_sha256: str
  checkpoint_uri: str
  pca_params_uri: str


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


def _checkpoint_files(path: str) -> list[str]:
  """The files making up a local checkpoint: [V1 file] or [V2 .index, .data-*...]."""
  from vggish.checkpoint import checkpoint_prefix

  prefix = checkpoint_prefix(path)
  if os.path.isfile(prefix):
    return [prefix]
  directory, base = os.path.split(prefix)
  data = sorted(f for f in os.listdir(directory or ".") if f.startswith(base + ".data-"))
  return [prefix + ".index"] + [os.path.join(directory, f) for f in data]


def _checkpoint_exists(path: str) -> bool:
  from vggish.checkpoint import checkpoint_prefix

  prefix = checkpoint_prefix(path)
  return os.path.isfile(prefix) or os.path.isfile(prefix + ".index")


def sha256_of(path: str, *, checkpoint: bool = False) -> str:
  """Hex sha256 of a file; for a V2 checkpoint, of its .index then .data-* bytes."""
  return cache.sha256_of_files(_checkpoint_files(path) if checkpoint else [path])


def _remote_checkpoint_files(uri: str) -> list[str]:
  """The remote files behind a checkpoint URI: itself, or V2 .index + .data-*."""
  from apache_beam.io.filesystems import FileSystems

  if FileSystems.exists(uri):
    return [uri]
  if FileSystems.exists(uri + ".index"):
    matched = FileSystems.match([uri + ".data-*"])[0].metadata_list
    return [uri + ".index"] + sorted(m.path for m in matched)
  raise AssetError(f"{uri!r} does not exist (nor {uri}.index for a V2 checkpoint). "
                   + _how_to_pass())


def _validator(kind: str, params: Params):
  if kind == "checkpoint":
    from vggish.checkpoint import validate_checkpoint

    return lambda path: validate_checkpoint(path, params)
  if kind == "pca_params":
    from vggish.postprocess import PCAParams

    return lambda path: PCAParams.load(path, params)
  return None


_WHAT = {"checkpoint": "VGGish checkpoint", "pca_params": "VGGish PCA parameters"}


def localize(uri: str, cache_dir: str | None = None, *, kind: str = "file",
             params: Params = DEFAULT_PARAMS, allow_download: bool = True,
             _official: bool = False) -> str:
  """A local path for ``uri``: local paths as is; remote URIs copied once into the cache.

  ``kind`` ("checkpoint", "pca_params" or "file") selects the validation applied to a
  fresh copy (none for "file"). Raises AssetError when the source cannot be read.
  """
  checkpoint = kind == "checkpoint"
  return cache.localize(
      uri, cache_dir, what=_WHAT.get(kind, "file"), validate=_validator(kind, params),
      remote_files=_remote_checkpoint_files if checkpoint else None,
      local_exists=_checkpoint_exists if checkpoint else None,
      hash_files=_checkpoint_files if checkpoint else None,
      official_subdir=_CACHE_SUBDIR if _official else None, allow_download=allow_download,
      how_to_fix=_how_to_pass() if kind in _WHAT else "")


def _resolve_one(given: str | None, official_url: str, kind: str, cache_dir: str,
                 allow_download: bool, params: Params) -> tuple[str, str, str]:
  """(local path, sha256, source uri) for one asset, validated."""
  uri = os.fspath(given) if given else official_url
  official = not given and official_url.startswith(OFFICIAL_BASE_URL)
  if not given and not allow_download and cache.read_sidecar(
      cache.cache_path(uri, cache_dir, _CACHE_SUBDIR if official else None)) is None:
    raise AssetError(f"no cached copy of {uri} in {cache_dir!r} and downloads are off. "
                     + _how_to_pass())
  path = localize(uri, cache_dir, kind=kind, params=params, allow_download=allow_download,
                  _official=official)
  record = cache.read_sidecar(path) if cache.is_remote(uri) else None
  if record is not None:
    return path, record["sha256"], uri
  _validator(kind, params)(path)
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
