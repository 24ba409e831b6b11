"""The VGGish network in TensorFlow 2, restored from Google's TF1 checkpoint by name.

The architecture follows Google's published VGGish (tensorflow/models,
research/audioset/vggish/vggish_slim.py) as described there: a VGG-like stack of
3x3 stride-1 SAME convolutions with ReLU, 2x2 stride-2 SAME max pools, a flatten of
the NHWC feature map, two 4096-unit ReLU layers and a linear 128-unit ``fc2``. The
embedding is ``fc2`` *before* any activation. The code is our own: the network is
the table ``VGGISH_LAYERS`` below, and layer names are the checkpoint's variable
scopes (``vggish/<name>/weights``, ``vggish/<name>/biases``).

Importing this module does not import TensorFlow; ``VGGishModel`` does, when built.

Shapes: ``N`` patches, each [96 frames, 64 mel bands].
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Mapping

import numpy as np

from audiobeam.errors import InputError
from vggish.params import DEFAULT_PARAMS, Params

__all__ = [
    "Layer",
    "VGGISH_LAYERS",
    "VARIABLE_SCOPE",
    "variable_shapes",
    "flops_per_patch",
    "VGGishModel",
]

VARIABLE_SCOPE = "vggish"


@dataclasses.dataclass(frozen=True)
class Layer:
  """One row of the network table.

  kind: "conv" (3x3, stride 1, SAME, + bias), "pool" (2x2 max, stride 2, SAME),
    "flatten" (NHWC -> [N, H*W*C]) or "dense" (matmul + bias).
  name: the checkpoint scope under ``vggish/`` ("" for layers without variables).
  width: output channels (conv) or units (dense); 0 otherwise.
  relu: whether ReLU follows (conv and dense only).
  """

  kind: str
  name: str = ""
  width: int = 0
  relu: bool = False


def _conv(name: str, width: int) -> Layer:
  return Layer("conv", name, width, relu=True)


def _pool() -> Layer:
  return Layer("pool")


VGGISH_LAYERS: tuple[Layer, ...] = (
    _conv("conv1", 64), _pool(),
    _conv("conv2", 128), _pool(),
    _conv("conv3/conv3_1", 256), _conv("conv3/conv3_2", 256), _pool(),
    _conv("conv4/conv4_1", 512), _conv("conv4/conv4_2", 512), _pool(),
    Layer("flatten"),
    Layer("dense", "fc1/fc1_1", 4096, relu=True),
    Layer("dense", "fc1/fc1_2", 4096, relu=True),
    Layer("dense", "fc2", 128, relu=False),  # The embedding: no activation.
)
"""The VGGish network, input to output. Names are checkpoint scopes."""

_KERNEL = 3
_POOL = 2


def _walk(params: Params):
  """Yields (layer, in_shape, out_shape, weight_shape|None) through the table.

  Shapes exclude the batch: conv/pool maps are (H, W, C), dense vectors are (D,).
  """
  shape: tuple[int, ...] = (params.patch_frames, params.patch_bands, 1)
  for layer in VGGISH_LAYERS:
    if layer.kind == "conv":
      h, w, c = shape
      out, weights = (h, w, layer.width), (_KERNEL, _KERNEL, c, layer.width)
    elif layer.kind == "pool":
      h, w, c = shape
      out, weights = (math.ceil(h / _POOL), math.ceil(w / _POOL), c), None
    elif layer.kind == "flatten":
      out, weights = (int(np.prod(shape)),), None
    elif layer.kind == "dense":
      out, weights = (layer.width,), (shape[0], layer.width)
    else:  # pragma: no cover - the table is a constant
      raise ValueError(f"unknown layer kind {layer.kind!r}")
    yield layer, shape, out, weights
    shape = out


def variable_shapes(params: Params = DEFAULT_PARAMS) -> dict[str, tuple[int, ...]]:
  """Checkpoint variable name -> shape, in network order (18 entries by default).

  ``vggish/conv1/weights`` (3, 3, 1, 64), ``vggish/conv1/biases`` (64,), ...,
  ``vggish/fc2/biases`` (128,).
  """
  shapes: dict[str, tuple[int, ...]] = {}
  for layer, _, out, weights in _walk(params):
    if weights is not None:
      shapes[f"{VARIABLE_SCOPE}/{layer.name}/weights"] = weights
      shapes[f"{VARIABLE_SCOPE}/{layer.name}/biases"] = (weights[-1],)
  return shapes


def flops_per_patch(params: Params = DEFAULT_PARAMS) -> int:
  """Floating point operations for one patch, a multiply-add counted as 2.

  Counts convolutions and dense layers (biases, ReLU and pooling are negligible):
  about 1.73e9 for the default params.
  """
  total = 0
  for layer, _, out, weights in _walk(params):
    if layer.kind == "conv":
      total += 2 * out[0] * out[1] * int(np.prod(weights))
    elif layer.kind == "dense":
      total += 2 * int(np.prod(weights))
  return total


_GPU_SETUP_LOCK = threading.Lock()
_GPU_SETUP_DONE = False


def _enable_gpu_memory_growth(tf) -> None:
  """Lets TF grow GPU memory on demand (so several workers can share a GPU)."""
  global _GPU_SETUP_DONE
  with _GPU_SETUP_LOCK:
    if _GPU_SETUP_DONE:
      return
    for gpu in tf.config.list_physical_devices("GPU"):
      try:
        tf.config.experimental.set_memory_growth(gpu, True)
      except RuntimeError:
        pass  # The runtime is already initialised; its setting stands.
    _GPU_SETUP_DONE = True


class VGGishModel:
  """VGGish as a TF2 function: patches float32 [N, 96, 64] -> raw float32 [N, 128].

  Build with ``VGGishModel.from_checkpoint(path)`` or from a ``{name: array}`` dict
  as returned by ``vggish.checkpoint.read_checkpoint``. Calling it is thread-safe;
  it works for N = 0. The output is ``fc2`` before any activation (what the
  reference calls the embedding, before PCA and quantisation).
  """

  def __init__(self, weights: Mapping[str, np.ndarray], params: Params = DEFAULT_PARAMS):
    from vggish.checkpoint import check_variables  # Local: avoids an import cycle.

    check_variables({k: (tuple(np.shape(v)), np.asarray(v).dtype) for k, v in weights.items()},
                    params, source="weights passed to VGGishModel")
    import tensorflow as tf  # Lazy: importing vggish must not import TensorFlow.

    _enable_gpu_memory_growth(tf)
    self.params = params
    self._tf = tf
    module = tf.Module(name=VARIABLE_SCOPE)
    self._variables: dict[str, object] = {}
    for name in variable_shapes(params):
      self._variables[name] = tf.Variable(
          np.asarray(weights[name], dtype=np.float32), trainable=False,
          name=name.replace("/", "_"))
    module.variables_by_name = self._variables
    self.module = module
    self._layers = VGGISH_LAYERS
    self._forward = tf.function(
        self._graph,
        input_signature=[tf.TensorSpec([None, params.patch_frames, params.patch_bands], tf.float32)],
        reduce_retracing=True)

  @classmethod
  def from_checkpoint(cls, path: str, params: Params = DEFAULT_PARAMS) -> "VGGishModel":
    """Restores the 18 ``vggish/...`` variables from a TF1 V1 or V2 checkpoint."""
    from vggish.checkpoint import read_checkpoint

    return cls(read_checkpoint(path, params), params)

  @property
  def flops_per_patch(self) -> int:
    """About 1.73e9 FLOP per patch (multiply-add = 2)."""
    return flops_per_patch(self.params)

  def _graph(self, patches):
    tf = self._tf
    net = patches[..., tf.newaxis]                                 # [N, 96, 64, 1]
    for layer in self._layers:
      if layer.kind == "conv":
        kernel = self._variables[f"{VARIABLE_SCOPE}/{layer.name}/weights"]
        bias = self._variables[f"{VARIABLE_SCOPE}/{layer.name}/biases"]
        net = tf.nn.bias_add(tf.nn.conv2d(net, kernel, strides=1, padding="SAME"), bias)
      elif layer.kind == "pool":
        net = tf.nn.max_pool2d(net, ksize=_POOL, strides=_POOL, padding="SAME")
      elif layer.kind == "flatten":
        net = tf.reshape(net, [tf.shape(net)[0], -1])              # [N, 12288], NHWC order
      elif layer.kind == "dense":
        kernel = self._variables[f"{VARIABLE_SCOPE}/{layer.name}/weights"]
        bias = self._variables[f"{VARIABLE_SCOPE}/{layer.name}/biases"]
        net = tf.nn.bias_add(tf.matmul(net, kernel), bias)
      if layer.relu:
        net = tf.nn.relu(net)
    return net                                                     # [N, 128]

  def __call__(self, patches: np.ndarray) -> np.ndarray:
    """patches [N, 96, 64] (any float dtype; cast to float32) -> raw float32 [N, 128]."""
    patches = np.asarray(patches, dtype=np.float32)
    expected = (self.params.patch_frames, self.params.patch_bands)
    if patches.ndim != 3 or patches.shape[1:] != expected:
      raise InputError(
          f"expected log-mel patches of shape [N, {expected[0]}, {expected[1]}], got "
          f"{patches.shape}; build them with vggish.features.frame_patches (a single patch "
          "needs a leading batch axis: patches[None]).", error_type="bad_patch_shape")
    if patches.shape[0] == 0:
      return np.zeros((0, self.params.embedding_size), np.float32)
    return self._forward(self._tf.constant(patches)).numpy()
