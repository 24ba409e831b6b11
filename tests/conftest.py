"""Shared pytest fixtures: deterministic TEST weights, built once per session.

``test_weights`` is a random-weight VGGish checkpoint in the published TF1 V1 format plus
a PCA file, written by ``vggish.testing.write_test_weights`` (seed 0). They are not
Google's weights; tests that need the real ones do not exist (no network in tests).
"""

from __future__ import annotations

import collections

import pytest

WeightPaths = collections.namedtuple("WeightPaths", ["checkpoint", "pca_params"])


@pytest.fixture(scope="session")
def test_weights(tmp_path_factory) -> WeightPaths:
  """WeightPaths(checkpoint=".../vggish_model.ckpt" (V1), pca_params=".../vggish_pca_params.npz")."""
  from vggish.testing import write_test_weights

  directory = tmp_path_factory.mktemp("vggish_test_weights")
  return WeightPaths(*write_test_weights(str(directory), seed=0, checkpoint_format="V1"))


@pytest.fixture(scope="session")
def test_vggish_model(test_weights):
  """A ``VGGishModel`` restored from ``test_weights`` (shared; calling it is thread-safe)."""
  from vggish.model import VGGishModel

  return VGGishModel.from_checkpoint(test_weights.checkpoint)


@pytest.fixture(scope="session")
def test_pca_params(test_weights):
  """``PCAParams`` loaded from ``test_weights.pca_params``."""
  from vggish.postprocess import PCAParams

  return PCAParams.load(test_weights.pca_params)
