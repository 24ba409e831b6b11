"""The TF2 VGGish model against an independent float64 numpy formulation.

The oracle below is written from the published description of VGGish (vggish_slim):
3x3 stride-1 SAME convolutions + bias + ReLU, 2x2 stride-2 SAME max pools, flatten in
NHWC order, fc1_1/fc1_2 with ReLU, fc2 linear. It shares no code with vggish.model.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vggish.checkpoint import read_checkpoint
from audiobeam.errors import InputError
from vggish.testing import calibration_patches


def _conv3x3_same(x, kernel, bias):
  """x [N, H, W, C] f64, kernel [3, 3, C, K] -> relu(conv + bias) [N, H, W, K]."""
  n, h, w, c = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  columns = np.stack([padded[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)],
                     axis=3)                                         # [N, H, W, 9, C]
  out = columns.reshape(n * h * w, 9 * c) @ kernel.reshape(9 * c, -1) + bias
  return np.maximum(out, 0.0).reshape(n, h, w, -1)


def _maxpool2x2(x):
  n, h, w, c = x.shape  # Even sizes here, so SAME adds no padding.
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def numpy_vggish(weights, patches):
  """patches [N, 96, 64] -> fc2 output [N, 128], all in float64."""
  w = {k: v.astype(np.float64) for k, v in weights.items()}
  net = patches.astype(np.float64)[..., None]
  for block in (["conv1"], ["conv2"], ["conv3/conv3_1", "conv3/conv3_2"],
                ["conv4/conv4_1", "conv4/conv4_2"]):
    for name in block:
      net = _conv3x3_same(net, w[f"vggish/{name}/weights"], w[f"vggish/{name}/biases"])
    net = _maxpool2x2(net)
  net = net.reshape(net.shape[0], -1)                                # [N, 12288]
  for name in ("fc1/fc1_1", "fc1/fc1_2"):
    net = np.maximum(net @ w[f"vggish/{name}/weights"] + w[f"vggish/{name}/biases"], 0.0)
  return net @ w["vggish/fc2/weights"] + w["vggish/fc2/biases"]


@pytest.fixture(scope="module")
def varied_patches():
  """Five patches of different signals (silence, noise, tone, chirp, clicks)."""
  return calibration_patches()[[0, 3, 6, 9, 11]]


def test_matches_independent_numpy_formulation(test_weights, test_vggish_model, varied_patches):
  ours = test_vggish_model(varied_patches)
  expected = numpy_vggish(read_checkpoint(test_weights.checkpoint), varied_patches)
  assert ours.dtype == np.float32 and ours.shape == (5, 128)
  assert np.max(np.abs(ours - expected)) <= 1e-4
  # The test is only meaningful if embeddings differ between inputs, and are not clipped
  # by a ReLU (fc2 is linear, so negative values must appear).
  assert np.std(ours, axis=0).mean() > 0.05
  assert (ours < 0).mean() > 0.2


def test_clip_alone_equals_clip_inside_a_batch(test_vggish_model, varied_patches):
  batch = test_vggish_model(varied_patches)
  for i in (0, 2, 4):
    alone = test_vggish_model(varied_patches[i:i + 1])
    np.testing.assert_allclose(alone[0], batch[i], rtol=0, atol=1e-5)
  np.testing.assert_array_equal(test_vggish_model(varied_patches), batch)  # Repeatable.


def test_empty_batch_and_dtypes(test_vggish_model, varied_patches):
  empty = test_vggish_model(np.zeros((0, 96, 64), np.float32))
  assert empty.shape == (0, 128) and empty.dtype == np.float32
  as_f64 = test_vggish_model(varied_patches[:2].astype(np.float64))
  np.testing.assert_array_equal(as_f64, test_vggish_model(varied_patches[:2]))


@pytest.mark.parametrize("shape", [(96, 64), (1, 64, 96), (2, 96, 64, 1)])
def test_wrong_patch_shape_is_an_input_error(test_vggish_model, shape):
  with pytest.raises(InputError, match=r"\[N, 96, 64\]") as info:
    test_vggish_model(np.zeros(shape, np.float32))
  assert info.value.error_type == "bad_patch_shape"


def test_flops_per_patch(test_vggish_model):
  assert test_vggish_model.flops_per_patch == pytest.approx(1.73e9, rel=0.01)


def test_importing_vggish_does_not_import_tensorflow_torch_or_beam():
  code = ("import sys, vggish, vggish.model, vggish.torch_model, vggish.checkpoint, "
          "vggish.assets, vggish.api; "
          "print(sorted(m for m in ('tensorflow', 'torch', 'apache_beam') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_network_table_and_checkpoint_need_no_model_module():
  """No import cycle: the table and the checkpoint reader stand without either backend."""
  code = ("import sys, vggish.checkpoint, vggish.network; "
          "print(sorted(m for m in ('vggish.model', 'vggish.torch_model') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_tf32_is_off_unless_asked(test_vggish_model):
  """TensorFlow's TF32 switch is process-wide: building the model turns it off."""
  import tensorflow as tf

  from audiobeam.devices import set_tensorflow_tf32

  assert test_vggish_model.tf32_enabled is False
  assert test_vggish_model.backend == "tf"
  try:
    assert set_tensorflow_tf32(True) is True
    assert tf.config.experimental.tensor_float_32_execution_enabled()
  finally:
    assert set_tensorflow_tf32(False) is False
  assert not tf.config.experimental.tensor_float_32_execution_enabled()
