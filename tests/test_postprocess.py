"""PCA + quantisation against the hand formula, PCA file validation, pooling."""

from __future__ import annotations

import numpy as np
import pytest

from audiobeam.errors import AssetError, ConfigError
from vggish.params import DEFAULT_PARAMS as P
from vggish.postprocess import PCAParams, pool, postprocess

IDENTITY = PCAParams(np.eye(128), np.zeros(128))


def _raw_with_first(values):
  raw = np.zeros((len(values), 128), np.float32)
  raw[:, 0] = values
  return raw


@pytest.mark.parametrize("value, expected", [
    (-3.0, 0), (-2.0, 0), (0.0, 127), (2.0, 255), (5.0, 255),
    (-2.0 + 4.0 / 255 * 1.001, 1), (-2.0 + 4.0 / 255 * 0.999, 0),  # Truncation edges:
    (0.0079, 128), (0.0078, 127),  # 127.5 + 0.0078 * 63.75 = 127.997 -> 127, not 128.
])
def test_clip_and_truncate(value, expected):
  q = postprocess(_raw_with_first([value]), IDENTITY, P)
  assert q.dtype == np.uint8 and q.shape == (1, 128)
  assert q[0, 0] == expected
  assert np.all(q[0, 1:] == 127)  # 0 maps to 127.5, truncated, not rounded to 128.


def test_matches_hand_formula_with_real_projection():
  rng = np.random.default_rng(7)
  eigen_vectors = rng.standard_normal((128, 128))
  means = rng.standard_normal((128, 1))
  raw = rng.standard_normal((20, 128)).astype(np.float32)
  expected = np.empty((20, 128), np.uint8)
  for n in range(20):
    for k in range(128):
      c = sum(eigen_vectors[k, j] * (float(raw[n, j]) - means[j, 0]) for j in range(128))
      c = min(max(c, -2.0), 2.0)
      expected[n, k] = int((c + 2.0) * 255.0 / 4.0)
  got = postprocess(raw, PCAParams(eigen_vectors, means), P)
  # Values within float rounding of an integer edge may differ; none here.
  assert (got == expected).mean() >= 0.999


def test_pca_file_with_column_means(tmp_path):
  rng = np.random.default_rng(1)
  e, m = rng.standard_normal((128, 128)), rng.standard_normal(128)
  for means in (m, m.reshape(128, 1)):
    np.savez(tmp_path / "pca.npz", pca_eigen_vectors=e, pca_means=means)
    loaded = PCAParams.load(str(tmp_path / "pca.npz"))
    assert loaded.means.shape == (128,) and loaded.eigen_vectors.dtype == np.float64
    np.testing.assert_array_equal(loaded.means, m)


def test_test_pca_file_spreads_quantised_values(test_vggish_model, test_pca_params):
  from vggish.testing import calibration_patches

  q = postprocess(test_vggish_model(calibration_patches()), test_pca_params, P)
  assert q.min() == 0 and q.max() == 255
  assert len(np.unique(q)) > 200


@pytest.mark.parametrize("arrays, message", [
    ({"pca_eigen_vectors": np.eye(128)}, "lacks pca_means"),
    ({"pca_eigen_vectors": np.eye(64), "pca_means": np.zeros(128)},
     r"pca_eigen_vectors: expected shape \(128, 128\), found \(64, 64\)"),
    ({"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros((2, 64))},
     r"pca_means: expected shape \(128,\) or \(128, 1\)"),
    ({"pca_eigen_vectors": np.eye(128), "pca_means": np.array([object()] * 128)},
     "not a readable .npz"),
])
def test_bad_pca_files_say_what_is_wrong(tmp_path, arrays, message):
  path = tmp_path / "pca.npz"
  np.savez(path, **arrays)
  with pytest.raises(AssetError, match=message) as info:
    PCAParams.load(str(path))
  assert "--pca_params" in str(info.value)


def test_missing_pca_file(tmp_path):
  with pytest.raises(AssetError, match="no PCA parameters file"):
    PCAParams.load(str(tmp_path / "missing.npz"))


def test_pool_mean_and_max():
  raw = np.array([[1.0, -2.0], [3.0, 0.0]], np.float32)
  np.testing.assert_array_equal(pool(raw, "mean"), [2.0, -1.0])
  np.testing.assert_array_equal(pool(raw, "max"), [3.0, 0.0])
  assert pool(raw, "mean").dtype == np.float32
  with pytest.raises(ConfigError, match="pooling must be one of"):
    pool(raw, "median")
  with pytest.raises(ValueError):
    pool(np.zeros((0, 128), np.float32))
