"""PCA + uint8 quantisation of raw VGGish embeddings, and per-clip pooling.

Follows Google's published VGGish postprocessor (tensorflow/models,
research/audioset/vggish/vggish_postprocess.py) as described there: project the raw
fc2 output with the released PCA matrix after subtracting the PCA means
(``E · (x − μ)``), clip to [quantize_min, quantize_max] = [-2, 2], map linearly to
[0, 255] and cast to uint8 by truncation (not rounding). This is the format of the
AudioSet release embeddings. The code is our own; arithmetic is float64 like the
reference.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from audiobeam.errors import AssetError
from vggish.params import DEFAULT_PARAMS, Params

__all__ = ["PCAParams", "postprocess", "pool", "POOLING_METHODS"]

POOLING_METHODS = ("mean", "max")

_HOW_TO_FIX = (
    "Pass Google's vggish_pca_params.npz (from "
    "https://storage.googleapis.com/audioset/vggish_pca_params.npz) with --pca_params.")


@dataclasses.dataclass(frozen=True, eq=False)
class PCAParams:
  """eigen_vectors float64 [128, 128] (rows are components); means float64 [128]."""

  eigen_vectors: np.ndarray
  means: np.ndarray

  def __post_init__(self):
    eigen_vectors = np.asarray(self.eigen_vectors, dtype=np.float64)
    means = np.asarray(self.means, dtype=np.float64)
    if means.ndim == 2 and means.shape[1] == 1:
      means = means[:, 0]  # The released file stores (128, 1).
    if (eigen_vectors.ndim != 2 or eigen_vectors.shape[0] != eigen_vectors.shape[1]
        or means.shape != eigen_vectors.shape[:1]):
      raise AssetError(
          f"PCA parameters must be eigen vectors [D, D] and means [D] or [D, 1]; found "
          f"eigen vectors {np.shape(self.eigen_vectors)} and means {np.shape(self.means)}. "
          + _HOW_TO_FIX)
    if not (np.all(np.isfinite(eigen_vectors)) and np.all(np.isfinite(means))):
      raise AssetError("PCA parameters contain NaN or inf. " + _HOW_TO_FIX)
    eigen_vectors.setflags(write=False)
    means.setflags(write=False)
    object.__setattr__(self, "eigen_vectors", eigen_vectors)
    object.__setattr__(self, "means", means)

  @classmethod
  def load(cls, path: str, params: Params = DEFAULT_PARAMS) -> "PCAParams":
    """Reads a local .npz with keys ``pca_eigen_vectors`` [128, 128] and ``pca_means``.

    ``allow_pickle=False``; ``pca_means`` may be (128,) or (128, 1). Raises AssetError
    naming what is missing or misshapen.
    """
    size = params.embedding_size
    if not os.path.isfile(path):
      raise AssetError(f"no PCA parameters file at {path!r}. " + _HOW_TO_FIX)
    keys = (params.pca_eigen_vectors_key, params.pca_means_key)
    try:
      with np.load(path, allow_pickle=False) as data:
        missing = [k for k in keys if k not in data.files]
        if missing:
          raise AssetError(
              f"{path!r} lacks {', '.join(missing)}: expected keys {list(keys)}, found "
              f"{sorted(data.files)}. " + _HOW_TO_FIX)
        eigen_vectors, means = data[keys[0]], data[keys[1]]
    except AssetError:
      raise
    except Exception as e:  # Not a zip / not npy / pickled object arrays.
      raise AssetError(f"{path!r} is not a readable .npz of arrays ({type(e).__name__}: {e}). "
                       + _HOW_TO_FIX) from e
    problems = []
    if eigen_vectors.shape != (size, size):
      problems.append(f"{keys[0]}: expected shape ({size}, {size}), found {eigen_vectors.shape}")
    if means.shape not in ((size,), (size, 1)):
      problems.append(f"{keys[1]}: expected shape ({size},) or ({size}, 1), found {means.shape}")
    for key, value in zip(keys, (eigen_vectors, means)):
      if not np.issubdtype(value.dtype, np.floating):
        problems.append(f"{key}: expected a float array, found dtype {value.dtype}")
    if problems:
      raise AssetError(f"bad PCA parameters in {path!r}: " + "; ".join(problems) + ". "
                       + _HOW_TO_FIX)
    return cls(eigen_vectors, means)


def postprocess(raw: np.ndarray, pca: PCAParams, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """Raw embeddings [N, 128] -> quantised uint8 [N, 128].

  ``c = clip(E · (x − μ), min, max)``; ``q = uint8(trunc((c − min) · 255 / (max − min)))``,
  computed in float64.
  """
  raw = np.asarray(raw, dtype=np.float64)
  size = pca.means.shape[0]
  if raw.ndim != 2 or raw.shape[1] != size:
    raise ValueError(f"expected raw embeddings of shape [N, {size}], got {raw.shape}.")
  # E · (x − μ) with x as columns, the reference's order of operations.
  projected = (pca.eigen_vectors @ (raw.T - pca.means[:, None])).T              # [N, 128]
  clipped = np.clip(projected, params.quantize_min, params.quantize_max)
  scaled = (clipped - params.quantize_min) * (
      255.0 / (params.quantize_max - params.quantize_min))                      # [0, 255]
  return scaled.astype(np.uint8)


def pool(raw: np.ndarray, method: str = "mean") -> np.ndarray:
  """Per-clip embedding: raw [N, 128] (N >= 1) -> float32 [128] by ``mean`` or ``max``."""
  if method not in POOLING_METHODS:
    from audiobeam.errors import ConfigError

    raise ConfigError(f"pooling must be one of {POOLING_METHODS}, got {method!r}.")
  raw = np.asarray(raw)
  if raw.ndim != 2 or raw.shape[0] == 0:
    raise ValueError(f"expected raw embeddings of shape [N >= 1, D], got {raw.shape}.")
  from audiobeam.bundle import pool_embedding  # the pipeline's pooling, for every model
  return pool_embedding(raw, method, "none")
