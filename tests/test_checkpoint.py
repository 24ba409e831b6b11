"""Reading the TF1 checkpoint by name: V1 and V2 layouts, and errors that list every problem."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vggish import checkpoint
from audiobeam.errors import CheckpointError
from vggish.network import flops_per_patch
from vggish.testing import write_checkpoint

PUBLISHED_SHAPES = {
    "conv1": [3, 3, 1, 64], "conv2": [3, 3, 64, 128],
    "conv3/conv3_1": [3, 3, 128, 256], "conv3/conv3_2": [3, 3, 256, 256],
    "conv4/conv4_1": [3, 3, 256, 512], "conv4/conv4_2": [3, 3, 512, 512],
    "fc1/fc1_1": [12288, 4096], "fc1/fc1_2": [4096, 4096], "fc2": [4096, 128],
}


def test_variable_table_is_the_published_checkpoint():
  expected = {}
  for scope, shape in PUBLISHED_SHAPES.items():
    expected[f"vggish/{scope}/weights"] = tuple(shape)
    expected[f"vggish/{scope}/biases"] = (shape[-1],)
  assert checkpoint.VGGISH_VARIABLES == expected
  total = sum(int(np.prod(s)) for s in expected.values())
  assert total * 4 == pytest.approx(288e6, rel=0.01)  # ~288 MB of float32, as published.


def test_flops_per_patch_counts_multiply_adds_twice():
  assert flops_per_patch() == 1_727_791_104


def test_reads_the_v1_single_file(test_weights):
  assert os.path.basename(test_weights.checkpoint) == "vggish_model.ckpt"
  assert sorted(os.listdir(os.path.dirname(test_weights.checkpoint))) == [
      "vggish_model.ckpt", "vggish_pca_params.npz"]  # One file, no state file, no meta graph.
  weights = checkpoint.read_checkpoint(test_weights.checkpoint)
  assert list(weights) == list(checkpoint.VGGISH_VARIABLES)
  for name, value in weights.items():
    assert value.dtype == np.float32 and value.shape == checkpoint.VGGISH_VARIABLES[name]


def _small_variables(**overrides):
  """The conv1/conv2 variables (small) plus overrides; None deletes a name."""
  rng = np.random.default_rng(0)
  out = {name: rng.standard_normal(shape).astype(np.float32)
         for name, shape in checkpoint.VGGISH_VARIABLES.items()
         if name.startswith(("vggish/conv1/", "vggish/conv2/"))}
  for name, value in overrides.items():
    name = name.replace("__", "/")
    if value is None:
      out.pop(name)
    else:
      out[name] = value
  return out


def test_error_names_every_missing_unexpected_and_misshapen_variable(tmp_path):
  variables = _small_variables(**{
      "vggish__conv1__weights": np.zeros((3, 3, 1, 32), np.float32),
      "vggish__conv2__biases": None,
      "vggish__conv5__weights": np.zeros((3, 3, 1, 1), np.float32),
  })
  path = write_checkpoint(variables, str(tmp_path / "bad.ckpt"))
  with pytest.raises(CheckpointError) as info:
    checkpoint.read_checkpoint(path)
  message = str(info.value)
  missing = [n for n in checkpoint.VGGISH_VARIABLES
             if not n.startswith(("vggish/conv1/", "vggish/conv2/weights"))]
  assert f"missing ({len(missing)})" in message
  for name in missing:
    assert name in message
  assert "unexpected (1): vggish/conv5/weights" in message
  assert "vggish/conv1/weights: expected shape [3, 3, 1, 64], found [3, 3, 1, 32]" in message
  assert "--checkpoint" in message


def test_tolerates_non_vggish_and_optimizer_slot_variables():
  found = {n: (s, np.float32) for n, s in checkpoint.VGGISH_VARIABLES.items()}
  found["global_step"] = ((), np.int64)
  found["vggish/conv1/weights/Adam"] = ((3, 3, 1, 64), np.float32)
  checkpoint.check_variables(found)  # No error.


def test_rejects_non_float32_variables():
  found = {n: (s, np.float32) for n, s in checkpoint.VGGISH_VARIABLES.items()}
  found["vggish/fc2/biases"] = ((128,), np.float64)
  with pytest.raises(CheckpointError, match="vggish/fc2/biases: expected float32, found float64"):
    checkpoint.check_variables(found)


def test_missing_file_and_garbage_file_raise_checkpoint_error(tmp_path):
  with pytest.raises(CheckpointError, match="no checkpoint at"):
    checkpoint.read_checkpoint(str(tmp_path / "nope.ckpt"))
  garbage = tmp_path / "garbage.ckpt"
  garbage.write_bytes(b"this is not a checkpoint" * 100)
  with pytest.raises(CheckpointError, match="not a readable TensorFlow checkpoint"):
    checkpoint.read_checkpoint(str(garbage))


def test_v2_layout_from_the_cli_equals_the_v1_fixture(test_weights, tmp_path, capsys):
  """Reads V2 by prefix, .index or .data; same seed gives the same weights in both formats."""
  from vggish import testing

  assert testing.main([str(tmp_path), "--format", "V2", "--seed", "0"]) == 0
  assert "TEST weights" in capsys.readouterr().out
  assert sorted(os.listdir(tmp_path)) == ["vggish_model.ckpt.data-00000-of-00001",
                                          "vggish_model.ckpt.index", "vggish_pca_params.npz"]
  prefix = str(tmp_path / "vggish_model.ckpt")
  for path in (prefix + ".index", prefix + ".data-00000-of-00001"):
    checkpoint.validate_checkpoint(path)
  again = checkpoint.read_checkpoint(prefix)
  first = checkpoint.read_checkpoint(test_weights.checkpoint)
  for name in first:
    np.testing.assert_array_equal(again[name], first[name])
  with open(tmp_path / "vggish_pca_params.npz", "rb") as a, open(test_weights.pca_params, "rb") as b:
    assert a.read() == b.read()


def _inspect_with_tensorflow(path):
  reader = checkpoint._open_reader(path)
  shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
  return {n: (tuple(shapes[n]), np.dtype(dtypes[n].as_numpy_dtype)) for n in sorted(shapes)}


def test_inspect_reads_the_table_like_tensorflow_does(test_weights, tmp_path):
  """The TF-free metadata parse agrees with TensorFlow's reader, V1 and V2, odd dtypes too."""
  odd = _small_variables(vggish__conv5__weights=np.zeros((2, 1, 7), np.int64))
  odd["global_step"] = np.array(7, np.int64)
  odd["scalar_f64"] = np.array(1.5, np.float64)
  paths = [test_weights.checkpoint,
           write_checkpoint(odd, str(tmp_path / "odd.ckpt")),
           write_checkpoint(odd, str(tmp_path / "v2" / "odd.ckpt"), checkpoint_format="V2")]
  for path in paths:
    fast = checkpoint._inspect_without_tensorflow(checkpoint.checkpoint_prefix(path))
    assert dict(sorted(fast.items())) == _inspect_with_tensorflow(path), path
    assert checkpoint.inspect_checkpoint(path) == _inspect_with_tensorflow(path)


def test_validating_a_checkpoint_does_not_import_tensorflow(test_weights):
  """A launcher that only validates the weights never pays TensorFlow's import."""
  import subprocess
  import sys

  code = ("import sys; from vggish import checkpoint; "
          f"checkpoint.validate_checkpoint({test_weights.checkpoint!r}); "
          "print('tensorflow' in sys.modules)")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == "False"


def _read_with_tensorflow(path):
  reader = checkpoint._open_reader(path)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def test_values_read_without_tensorflow_are_tensorflows_bits(test_weights, tmp_path):
  """The TF-free value reader gives TF's reader's exact bits, V1 and V2, float64 too."""
  full = checkpoint.read_checkpoint(test_weights.checkpoint)
  by_tf = _read_with_tensorflow(test_weights.checkpoint)
  for name, value in full.items():
    assert value.flags.writeable and value.dtype == np.float32
    np.testing.assert_array_equal(value.view(np.uint32), by_tf[name].view(np.uint32))
  odd = _small_variables(scalar_f64=np.array(1.5, np.float64),
                         vggish__conv5__weights=np.arange(14, dtype=np.float64).reshape(2, 1, 7))
  odd["global_step"] = np.array(7, np.int64)  # Not read (not float), skipped.
  for fmt in ("V1", "V2"):
    path = write_checkpoint(odd, str(tmp_path / fmt / "odd.ckpt"), checkpoint_format=fmt)
    prefix = checkpoint.checkpoint_prefix(path)
    found = checkpoint._inspect_without_tensorflow(prefix)
    wanted = {n: found[n] for n in odd if n != "global_step"}
    values = checkpoint._read_without_tensorflow(prefix, wanted)
    by_tf = _read_with_tensorflow(path)
    assert set(values) == set(wanted)
    for name, value in values.items():
      assert value.dtype == by_tf[name].dtype and value.shape == by_tf[name].shape, name
      np.testing.assert_array_equal(value, by_tf[name])


def test_reading_where_tensorflow_cannot_be_imported(test_weights, tmp_path):
  """The GPU machines have no TensorFlow: reading works, and garbage is still a clear error."""
  import subprocess
  import sys

  garbage = tmp_path / "garbage.ckpt"
  garbage.write_bytes(b"not a checkpoint" * 100)
  code = (
      "import sys; sys.modules['tensorflow'] = None\n"
      "from vggish import checkpoint\n"
      "from audiobeam.errors import CheckpointError\n"
      f"weights = checkpoint.read_checkpoint({test_weights.checkpoint!r})\n"
      "print(len(weights), float(sum(abs(float(v.sum())) for v in weights.values())))\n"
      "try:\n"
      f"  checkpoint.read_checkpoint({str(garbage)!r})\n"
      "except CheckpointError as e:\n"
      "  print(str(e).splitlines()[0])\n")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-3000:]
  counts, error = out.stdout.strip().splitlines()
  count, total = counts.split()
  weights = checkpoint.read_checkpoint(test_weights.checkpoint)
  assert int(count) == 18
  assert float(total) == float(sum(abs(float(v.sum())) for v in weights.values()))
  assert "is not a readable TensorFlow checkpoint (read without TensorFlow: no table magic" in error
  assert "TensorFlow, which reads every layout, is not installed" in error
