"""The PyTorch VGGish backend against the TF model and the independent float64 oracle.

Same weights (the session's TEST checkpoint), same patches. Contract: raw outputs within
1e-5 of ``vggish.model.VGGishModel``; same call contract (N = 0, dtypes, shape errors,
threads); TF32 off unless asked; loads from the checkpoint with TensorFlow unimportable.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys

import numpy as np
import pytest

from audiobeam.errors import ConfigError, InputError
from test_model import numpy_vggish
from vggish.checkpoint import read_checkpoint
from vggish.testing import calibration_patches

torch = pytest.importorskip("torch")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def weights(test_weights):
  return read_checkpoint(test_weights.checkpoint)


@pytest.fixture(scope="module")
def torch_model(weights):
  from vggish.torch_model import VGGishTorchModel

  return VGGishTorchModel(weights, device="cpu")


@pytest.fixture(scope="module")
def patches():
  """Six patches of different signals (silence, noise, tones, chirp, clicks, onset)."""
  return calibration_patches()[[0, 3, 6, 9, 11, 15]]


@pytest.fixture(scope="module")
def tf_raw(test_vggish_model, patches):
  return test_vggish_model(patches)


def test_equals_the_tensorflow_model_and_the_float64_oracle(torch_model, weights, patches,
                                                            tf_raw):
  ours = torch_model(patches)
  assert ours.dtype == np.float32 and ours.shape == (6, 128)
  assert np.max(np.abs(ours - tf_raw)) <= 1e-5
  oracle = numpy_vggish(weights, patches)
  assert np.max(np.abs(ours - oracle)) <= 1e-5
  assert np.std(ours, axis=0).mean() > 0.05 and (ours < 0).mean() > 0.2  # Not degenerate.


def test_call_contract(torch_model, patches, tf_raw):
  empty = torch_model(np.zeros((0, 96, 64), np.float32))
  assert empty.shape == (0, 128) and empty.dtype == np.float32
  np.testing.assert_array_equal(torch_model(patches[:2].astype(np.float64)),
                                torch_model(patches[:2]))
  for i in (0, 3):  # A patch alone equals the same patch inside a batch.
    np.testing.assert_allclose(torch_model(patches[i:i + 1])[0], tf_raw[i], rtol=0, atol=1e-5)
  for shape in [(96, 64), (1, 64, 96), (2, 96, 64, 1)]:
    with pytest.raises(InputError, match=r"\[N, 96, 64\]") as info:
      torch_model(np.zeros(shape, np.float32))
    assert info.value.error_type == "bad_patch_shape"
  assert torch_model.flops_per_patch == 1_727_791_104
  assert str(torch_model.device) == "cpu" and torch_model.backend == "torch"


def test_calls_from_several_threads_at_once(torch_model, patches):
  expected = [torch_model(patches[i:i + 2]) for i in range(0, 6, 2)]
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    results = list(pool.map(lambda i: torch_model(patches[i:i + 2]), [0, 2, 4] * 2))
  for got, want in zip(results, expected * 2):
    np.testing.assert_array_equal(got, want)


def test_tf32_is_off_by_default_and_on_only_when_asked(weights):
  from audiobeam.devices import set_torch_tf32, torch_tf32_state
  from vggish.torch_model import VGGishTorchModel

  try:
    set_torch_tf32(True)  # Whatever was set before, building a model turns TF32 off.
    model = VGGishTorchModel(weights, device="cpu")
    for state in (model.tf32_state, torch_tf32_state()):
      assert state["cuda.matmul.allow_tf32"] is False and state["cudnn.allow_tf32"] is False
      assert state["float32_matmul_precision"] == "highest"
    assert torch.backends.cudnn.allow_tf32 is False  # cuDNN's own default is True.
    on = VGGishTorchModel(weights, device="cpu", allow_tf32=True).tf32_state
    assert on["cuda.matmul.allow_tf32"] and on["cudnn.allow_tf32"]
  finally:
    set_torch_tf32(False)


def test_unknown_or_unavailable_device_is_a_config_error(weights):
  from vggish.torch_model import VGGishTorchModel

  for device in ("meta", "gpu0"):
    with pytest.raises(ConfigError, match="one of auto, cpu, gpu"):
      VGGishTorchModel(weights, device=device)
  if not torch.cuda.is_available():
    for device in ("cuda", "gpu"):
      with pytest.raises(ConfigError, match="found none visible to torch"):
        VGGishTorchModel(weights, device=device)
    assert str(VGGishTorchModel(weights, device="auto").device) == "cpu"


def test_loads_from_the_checkpoint_where_tensorflow_cannot_be_imported(test_weights, patches,
                                                                        tf_raw, tmp_path):
  """The GPU machines have torch but no TensorFlow: checkpoint reading must not need it."""
  np.save(tmp_path / "patches.npy", patches)
  code = (
      "import sys; sys.modules['tensorflow'] = None\n"
      "import numpy as np\n"
      "from vggish.torch_model import VGGishTorchModel\n"
      f"model = VGGishTorchModel.from_checkpoint({test_weights.checkpoint!r}, device='cpu')\n"
      f"np.save({str(tmp_path / 'raw.npy')!r}, model(np.load({str(tmp_path / 'patches.npy')!r})))\n")
  run = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, capture_output=True, text=True,
                       timeout=120)
  assert run.returncode == 0, run.stderr[-3000:]
  assert np.max(np.abs(np.load(tmp_path / "raw.npy") - tf_raw)) <= 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_equals_cpu_with_tf32_off(weights, torch_model, patches):
  """GPU only: the CUDA model keeps the contract (TF32 off) and TF32 is measurably different."""
  from vggish.torch_model import VGGishTorchModel, set_torch_tf32

  cpu = torch_model(patches)
  gpu = VGGishTorchModel(weights, device="cuda")
  assert np.max(np.abs(gpu(patches) - cpu)) <= 1e-5
  try:
    tf32 = VGGishTorchModel(weights, device="cuda", allow_tf32=True)(patches)
  finally:
    set_torch_tf32(False)
  assert np.max(np.abs(tf32 - cpu)) > 1e-5  # Otherwise this test would not see TF32.
