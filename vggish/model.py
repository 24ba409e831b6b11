"""The VGGish network in TensorFlow 2, restored from Google's TF1 checkpoint by name.

The network is the table ``vggish.network.VGGISH_LAYERS`` (Google's published VGGish,
vggish_slim.py, as described there; the code is our own): each row becomes TF ops,
and layer names are the checkpoint's variable scopes (``vggish/<name>/weights``,
``vggish/<name>/biases``). ``vggish.torch_model`` builds the same table in PyTorch.

TF32: on NVIDIA GPUs from Ampere on, TensorFlow runs float32 matmuls and convolutions
in TF32 (10-bit mantissa) unless told otherwise, which breaks the numerical contract
(raw outputs ~1e-3 away from the reference instead of ~1e-6). ``VGGishModel`` turns
TF32 off unless ``allow_tf32=True``. TensorFlow's switch
(``tf.config.experimental.enable_tensor_float_32_execution``) is *process-wide*: it
applies to every TF model in the process, and the last ``VGGishModel`` built decides.
Without a GPU it changes nothing.

Importing this module does not import TensorFlow; ``VGGishModel`` does, when built.

Shapes: ``N`` patches, each [96 frames, 64 mel bands].
"""

from __future__ import annotations

import contextlib
from typing import Mapping

import numpy as np

from audiobeam import devices
from vggish.network import POOL_SIZE, VARIABLE_SCOPE, VGGISH_LAYERS, check_patches
from vggish.network import flops_per_patch as _flops_per_patch
from vggish.network import variable_shapes
from vggish.params import DEFAULT_PARAMS, Params

__all__ = ["VGGishModel"]

class VGGishModel:
  """VGGish as a TF2 function: patches float32 [N, 96, 64] -> raw float32 [N, 128].

  Build with ``VGGishModel.from_checkpoint(path)`` or from a ``{name: array}`` dict
  as returned by ``vggish.checkpoint.read_checkpoint``. Calling it is thread-safe;
  it works for N = 0. The output is ``fc2`` before any activation (what the
  reference calls the embedding, before PCA and quantisation).

  ``allow_tf32``: False (default) turns TensorFlow's TF32 off for the whole process
  (see the module docstring); True turns it on (faster on Ampere+ GPUs, outside the
  numerical contract). ``self.tf32_enabled`` is the state set at construction.
  """

  backend = "tf"

  def __init__(self, weights: Mapping[str, np.ndarray], params: Params = DEFAULT_PARAMS,
               *, allow_tf32: bool = False, device: str | None = None):
    from vggish.checkpoint import check_variables

    check_variables({k: (tuple(np.shape(v)), np.asarray(v).dtype) for k, v in weights.items()},
                    params, source="weights passed to VGGishModel")
    from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
    tf = import_tensorflow()  # Lazy: importing vggish must not import TensorFlow.

    self.tf32_enabled = devices.set_tensorflow_tf32(allow_tf32)
    devices.enable_tensorflow_memory_growth()
    self.params = params
    self.device = device  # a tf.device name (audiobeam.devices.tensorflow_device) or None
    self._tf = tf
    module = tf.Module(name=VARIABLE_SCOPE)
    self._variables: dict[str, object] = {}
    with self._placement():
      for name in variable_shapes(params):
        self._variables[name] = tf.Variable(
            np.asarray(weights[name], dtype=np.float32), trainable=False,
            name=name.replace("/", "_"))
    module.variables_by_name = self._variables
    self.module = module
    self._forward = tf.function(
        self._graph,
        input_signature=[tf.TensorSpec([None, params.patch_frames, params.patch_bands], tf.float32)],
        reduce_retracing=True)

  @classmethod
  def from_checkpoint(cls, path: str, params: Params = DEFAULT_PARAMS, *,
                      allow_tf32: bool = False, device: str | None = None) -> "VGGishModel":
    """Restores the 18 ``vggish/...`` variables from a TF1 V1 or V2 checkpoint."""
    from vggish.checkpoint import read_checkpoint

    return cls(read_checkpoint(path, params), params, allow_tf32=allow_tf32, device=device)

  def _placement(self):
    return self._tf.device(self.device) if self.device else contextlib.nullcontext()

  @property
  def flops_per_patch(self) -> int:
    """About 1.73e9 FLOP per patch (multiply-add = 2)."""
    return _flops_per_patch(self.params)

  def _graph(self, patches):
    tf = self._tf
    net = patches[..., tf.newaxis]                                 # [N, 96, 64, 1]
    for layer in VGGISH_LAYERS:
      if layer.kind == "conv":
        kernel = self._variables[layer.weights_name]               # [3, 3, C_in, C_out]
        bias = self._variables[layer.biases_name]
        net = tf.nn.bias_add(tf.nn.conv2d(net, kernel, strides=1, padding="SAME"), bias)
      elif layer.kind == "pool":
        net = tf.nn.max_pool2d(net, ksize=POOL_SIZE, strides=POOL_SIZE, padding="SAME")
      elif layer.kind == "flatten":
        net = tf.reshape(net, [tf.shape(net)[0], -1])              # [N, 12288], NHWC order
      elif layer.kind == "dense":
        kernel = self._variables[layer.weights_name]               # [D_in, D_out]
        bias = self._variables[layer.biases_name]
        net = tf.nn.bias_add(tf.matmul(net, kernel), bias)
      if layer.relu:
        net = tf.nn.relu(net)
    return net                                                     # [N, 128]

  def __call__(self, patches: np.ndarray) -> np.ndarray:
    """patches [N, 96, 64] (any float dtype; cast to float32) -> raw float32 [N, 128]."""
    patches = check_patches(patches, self.params)
    if patches.shape[0] == 0:
      return np.zeros((0, self.params.embedding_size), np.float32)
    with self._placement():
      return self._forward(self._tf.constant(patches)).numpy()
