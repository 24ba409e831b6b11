"""Embeddings -> 2-D points for the map, and the deterministic sample of large inputs.

Same input, same picture: rows are ordered by uri before projecting (part-file order does
not matter), the sample is chosen by a seeded hash of each uri (not by position), and every
method runs with a fixed seed (UMAP with ``random_state`` runs single-threaded, which is
what makes it repeatable).

- ``pca``: exact, numpy only (covariance eigenvectors, float64; each axis' sign fixed so
  its largest loading is positive).
- ``umap``: umap-learn, cosine metric, ``n_neighbors=15``, ``min_dist=0.1``.
- ``tsne``: scikit-learn's Barnes-Hut t-SNE, cosine metric, PCA initialisation (slow beyond
  ~50k points; sample).
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from typing import Sequence

import numpy as np

from audiobeam.errors import ConfigError

__all__ = ["METHODS", "DEFAULT_METHOD", "DEFAULT_SAMPLE", "sample_indices", "uri_order",
           "project"]

METHODS = ("umap", "pca", "tsne")
DEFAULT_METHOD = "umap"
DEFAULT_SAMPLE = 100_000
"""Inputs with more clips than this are sampled (``--sample 0`` maps all of them)."""

_UMAP_NEIGHBORS = 15
_UMAP_MIN_DIST = 0.1
_TSNE_PERPLEXITY = 30.0
_TSNE_THREADED_FROM = 10_000
_PARAMETRIC_UMAP = "umap.parametric_umap"
_MIN_POINTS = {"umap": 4, "tsne": 4, "pca": 1}


def uri_order(uris: Sequence[str]) -> np.ndarray:
  """Indices that sort ``uris`` (stable): int64 [N]."""
  return np.argsort(np.asarray(uris, dtype=object).astype(str), kind="stable")


def sample_indices(uris: Sequence[str], sample: int, seed: int) -> np.ndarray:
  """The ``sample`` rows with the smallest ``blake2b(seed, uri)`` (all rows when
  ``sample <= 0`` or there are fewer), as sorted int64 indices. Depends on the set of
  uris and the seed only, never on row order."""
  n = len(uris)
  if sample <= 0 or n <= sample:
    return np.arange(n, dtype=np.int64)
  salt = str(int(seed)).encode() + b"\0"
  keys = np.fromiter(
      (int.from_bytes(hashlib.blake2b(salt + u.encode("utf-8", "surrogatepass"), digest_size=8)
                      .digest(), "big") for u in uris), dtype=np.uint64, count=n)
  order = np.lexsort((np.arange(n), keys))  # ties (duplicate uris) by position
  return np.sort(order[:sample]).astype(np.int64)


def _pca(x: np.ndarray) -> np.ndarray:
  x = x.astype(np.float64)
  x -= x.mean(axis=0, keepdims=True)
  if x.shape[0] < 2 or x.shape[1] < 1:
    return np.zeros((x.shape[0], 2))
  covariance = x.T @ x                                    # [D, D]
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
  components = eigenvectors[:, ::-1][:, :2]               # [D, <=2]
  signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(components.shape[1])])
  components = components * np.where(signs == 0, 1.0, signs)
  points = x @ components
  if points.shape[1] < 2:  # D == 1
    points = np.concatenate([points, np.zeros_like(points)], axis=1)
  return points


def _import_umap():
  """``import umap`` without its optional ``ParametricUMAP``, which imports TensorFlow
  (7-25 s here) and which the map never uses: umap-learn skips it when that import fails."""
  if "umap" in sys.modules:
    return sys.modules["umap"]
  sys.modules[_PARAMETRIC_UMAP] = None  # makes `from .parametric_umap import ...` fail
  try:
    import umap  # pylint: disable=import-outside-toplevel
  finally:
    if sys.modules.get(_PARAMETRIC_UMAP, 0) is None:
      del sys.modules[_PARAMETRIC_UMAP]  # a later explicit import works as usual
  return umap


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "n_jobs overridden to 1 by setting random_state": wanted.
    umap = _import_umap()
    reducer = umap.UMAP(n_components=2, n_neighbors=min(_UMAP_NEIGHBORS, x.shape[0] - 1),
                        min_dist=_UMAP_MIN_DIST, metric="cosine", random_state=int(seed),
                        n_jobs=1)
    return reducer.fit_transform(x)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
  from sklearn.manifold import TSNE  # pylint: disable=import-outside-toplevel
  from threadpoolctl import threadpool_limits  # pylint: disable=import-outside-toplevel
  perplexity = min(_TSNE_PERPLEXITY, max(1.0, (x.shape[0] - 1) / 3.0))
  tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
              random_state=int(seed))
  # Small inputs: OpenMP threads spin more than they work (15 s instead of 0.9 s for 60
  # points on a busy 2-core machine).
  limit = 1 if x.shape[0] < _TSNE_THREADED_FROM else None
  with threadpool_limits(limits=limit, user_api="openmp"):
    return tsne.fit_transform(x)


def project(embeddings: np.ndarray, method: str = DEFAULT_METHOD, seed: int = 0) -> np.ndarray:
  """float ``[N, D]`` -> float32 ``[N, 2]`` with ``method`` in ``METHODS``; deterministic
  for a given input and seed. ConfigError for an unknown method or too few points."""
  if method not in METHODS:
    raise ConfigError(f"expected --method to be one of {', '.join(METHODS)}, found {method!r}")
  x = np.asarray(embeddings, dtype=np.float32)
  if x.ndim != 2:
    raise ConfigError(f"expected embeddings [N, D], found shape {x.shape}")
  if x.shape[0] < _MIN_POINTS[method]:
    raise ConfigError(f"expected at least {_MIN_POINTS[method]} clips for --method {method}, "
                      f"found {x.shape[0]}; use --method pca for tiny outputs")
  if method == "pca":
    points = _pca(x)
  elif method == "umap":
    points = _umap(x, seed)
  else:
    points = _tsne(x, seed)
  return np.asarray(points, dtype=np.float32)
