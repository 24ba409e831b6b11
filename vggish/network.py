"""The VGGish network as a table of layers, shared by every backend; no framework.

The architecture follows Google's published VGGish (tensorflow/models,
research/audioset/vggish/vggish_slim.py) as described there: a VGG-like stack of
3x3 stride-1 SAME convolutions with ReLU, 2x2 stride-2 SAME max pools, a flatten of
the NHWC feature map, two 4096-unit ReLU layers and a linear 128-unit ``fc2``. The
embedding is ``fc2`` *before* any activation. The code is our own.

Layer names are the checkpoint's variable scopes (``vggish/<name>/weights``,
``vggish/<name>/biases``). ``vggish.checkpoint`` (reading and validating),
``vggish.model`` (TensorFlow) and ``vggish.torch_model`` (PyTorch) all build on this
table, so it imports neither TensorFlow nor torch.

Shapes: ``N`` patches, each [96 frames, 64 mel bands].
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vggish.params import DEFAULT_PARAMS, Params

__all__ = [
    "Layer",
    "VGGISH_LAYERS",
    "VARIABLE_SCOPE",
    "KERNEL_SIZE",
    "POOL_SIZE",
    "walk",
    "variable_shapes",
    "flops_per_patch",
    "check_patches",
]

VARIABLE_SCOPE = "vggish"
KERNEL_SIZE = 3
"""Convolution kernels are KERNEL_SIZE x KERNEL_SIZE, stride 1, SAME padding."""
POOL_SIZE = 2
"""Max pools are POOL_SIZE x POOL_SIZE, stride POOL_SIZE, SAME padding."""


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

  @property
  def weights_name(self) -> str:
    """Checkpoint name of the kernel, e.g. ``vggish/conv1/weights``."""
    return f"{VARIABLE_SCOPE}/{self.name}/weights"

  @property
  def biases_name(self) -> str:
    """Checkpoint name of the bias, e.g. ``vggish/conv1/biases``."""
    return f"{VARIABLE_SCOPE}/{self.name}/biases"


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


def walk(params: Params = DEFAULT_PARAMS):
  """Yields (layer, in_shape, out_shape, weight_shape|None) through the table.

  Shapes exclude the batch: conv/pool maps are (H, W, C), dense vectors are (D,).
  Weight shapes are the checkpoint's: conv (3, 3, C_in, C_out) (HWIO), dense
  (D_in, D_out).
  """
  shape: tuple[int, ...] = (params.patch_frames, params.patch_bands, 1)
  for layer in VGGISH_LAYERS:
    if layer.kind == "conv":
      h, w, c = shape
      out, weights = (h, w, layer.width), (KERNEL_SIZE, KERNEL_SIZE, c, layer.width)
    elif layer.kind == "pool":
      h, w, c = shape
      out, weights = (math.ceil(h / POOL_SIZE), math.ceil(w / POOL_SIZE), c), None
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
  for layer, _, _, weights in walk(params):
    if weights is not None:
      shapes[layer.weights_name] = weights
      shapes[layer.biases_name] = (weights[-1],)
  return shapes


def flops_per_patch(params: Params = DEFAULT_PARAMS) -> int:
  """Floating point operations for one patch, a multiply-add counted as 2.

  Counts convolutions and dense layers (biases, ReLU and pooling are negligible):
  1,727,791,104 (about 1.73e9) for the default params.
  """
  total = 0
  for layer, _, out, weights in walk(params):
    if layer.kind == "conv":
      total += 2 * out[0] * out[1] * int(np.prod(weights))
    elif layer.kind == "dense":
      total += 2 * int(np.prod(weights))
  return total


def check_patches(patches, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """The models' input contract: patches [N, 96, 64] (any real dtype) -> float32 array.

  Raises ``InputError('bad_patch_shape')`` for any other shape (N = 0 is allowed).
  """
  from audiobeam.errors import InputError

  patches = np.asarray(patches, dtype=np.float32)
  expected = (params.patch_frames, params.patch_bands)
  if patches.ndim != 3 or patches.shape[1:] != expected:
    raise InputError(
        f"expected log-mel patches of shape [N, {expected[0]}, {expected[1]}], got "
        f"{patches.shape}; build them with vggish.features.frame_patches (a single patch "
        "needs a leading batch axis: patches[None]).", error_type="bad_patch_shape")
  return patches
