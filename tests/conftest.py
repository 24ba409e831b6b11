"""Shared pytest fixtures: deterministic TEST weights, built once per session.

``model_weights``: every model's flags pointing at test weights written by the model's
own tool in its published layout (VGGish, YAMNet, CLAP, AST, CLMR).

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


@pytest.fixture(scope="session")
def model_weights(test_weights, tmp_path_factory) -> dict[str, dict[str, str]]:
  """Every model's flags pointing at test weights written by the model's own tool."""
  from models.ast.testing import write_test_checkpoints as write_ast
  from models.clap.testing import write_test_checkpoint as write_clap
  from models.clmr.testing import write_test_checkpoints as write_clmr
  from models.yamnet.testing import write_test_weights as write_yamnet
  root = tmp_path_factory.mktemp("model_weights")
  yamnet_weights, yamnet_class_map = write_yamnet(str(root / "yamnet"), seed=0)
  ast_classification, _ = write_ast(str(root / "ast"))
  clmr_pt, _ = write_clmr(str(root / "clmr"))
  return {
      "vggish": {"checkpoint": test_weights.checkpoint, "pca_params": test_weights.pca_params},
      "yamnet": {"yamnet_weights": yamnet_weights, "yamnet_class_map": yamnet_class_map},
      "clap": {"clap_checkpoint": write_clap(str(root / "clap")),
               "clap_labels": ["speech", "music", "noise, hiss"]},
      "ast": {"ast_checkpoint": ast_classification},
      "clmr": {"clmr_checkpoint": clmr_pt},
  }
