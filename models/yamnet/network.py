"""The YAMNet network as a table: MobileNet v1 body, average pooling, 521 sigmoid scores.

The architecture follows Google's published YAMNet (tensorflow/models,
research/audioset/yamnet/yamnet.py), written here from its description:

- the patch [96, 64] becomes a one-channel image [96, 64, 1];
- ``layer1``: 3x3 convolution, stride 2, 32 filters, no bias; batch norm; ReLU;
- ``layer2`` ... ``layer14``: separable convolutions: a 3x3 depthwise convolution
  (stride 1 or 2, depth multiplier 1, no bias), batch norm, ReLU, then a 1x1 pointwise
  convolution (no bias), batch norm, ReLU; widths 64, 128, 128, 256, 256, 512 x 6,
  1024, 1024 (``YAMNET_LAYERS``);
- every convolution pads "SAME" (TensorFlow's rule: for stride 2 on an even size the
  extra row/column of zeros goes after, see ``same_padding``);
- batch norm (inference): ``(x - moving_mean) / sqrt(moving_variance + 1e-4) + beta``
  (centre, no scale);
- global average pooling over the 3 x 2 map -> the 1024-d embedding;
- the classifier ``logits``: dense 1024 -> 521 with bias, then a sigmoid -> scores.

Names are the Keras layer names of the published ``yamnet.h5``: ``layer1/conv``,
``layer1/conv/bn``, ``layerN/depthwise_conv``, ``layerN/depthwise_conv/bn``,
``layerN/pointwise_conv``, ``layerN/pointwise_conv/bn`` and ``logits`` (the file
stores the classifier under ``logits``, although the current published code names its
Dense layer ``dense``; Keras 2 loads the file by position, so it never noticed). A weight
is keyed ``<layer name>/<weight name>`` (``layer1/conv/kernel``, ``logits/bias``) with
Keras's shapes: conv kernels [kh, kw, in, out], depthwise kernels [kh, kw, in, 1],
the dense kernel [1024, 521].

Importing this module does not import TensorFlow or torch.
"""

from __future__ import annotations

import dataclasses
import math

from models.yamnet.params import DEFAULT_PARAMS, Params

__all__ = [
    "Layer",
    "YAMNET_LAYERS",
    "CLASSIFIER",
    "BATCHNORM_WEIGHTS",
    "keras_layers",
    "weight_shapes",
    "same_padding",
    "feature_map_shapes",
    "flops_per_patch",
]


@dataclasses.dataclass(frozen=True)
class Layer:
  """One row of the network table.

  kind: ``"conv"`` (full convolution) or ``"separable"`` (depthwise then pointwise);
  name: the Keras name prefix (``layer1`` ...); kernel: spatial size (3);
  stride: of the 3x3 convolution (1 or 2); filters: output channels.
  Every convolution is followed by batch norm and ReLU.
  """

  kind: str
  name: str
  kernel: int
  stride: int
  filters: int


def _separable(index: int, stride: int, filters: int) -> Layer:
  return Layer("separable", f"layer{index}", 3, stride, filters)


YAMNET_LAYERS: tuple[Layer, ...] = (
    Layer("conv", "layer1", 3, 2, 32),
    _separable(2, 1, 64),
    _separable(3, 2, 128),
    _separable(4, 1, 128),
    _separable(5, 2, 256),
    _separable(6, 1, 256),
    _separable(7, 2, 512),
    _separable(8, 1, 512),
    _separable(9, 1, 512),
    _separable(10, 1, 512),
    _separable(11, 1, 512),
    _separable(12, 1, 512),
    _separable(13, 2, 1024),
    _separable(14, 1, 1024),
)
"""The MobileNet v1 body of YAMNet, input to output."""

CLASSIFIER = "logits"
"""Keras name of the dense classifier layer in the published yamnet.h5."""

BATCHNORM_WEIGHTS = ("beta", "moving_mean", "moving_variance")
"""A batch norm layer's weights, in Keras order (center=True, scale=False: no gamma)."""


def keras_layers(params: Params = DEFAULT_PARAMS) -> dict[str, tuple[tuple[str, tuple[int, ...]], ...]]:
  """Keras layer name -> ((weight name, shape), ...) for every layer with weights, in
  network order (55 layers, 110 weights), as ``model.save_weights`` lists them."""
  out: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}

  def batchnorm(name: str, width: int) -> None:
    out[name] = tuple((w, (width,)) for w in BATCHNORM_WEIGHTS)

  channels = 1
  for layer in YAMNET_LAYERS:
    k = layer.kernel
    if layer.kind == "conv":
      out[f"{layer.name}/conv"] = (("kernel", (k, k, channels, layer.filters)),)
      batchnorm(f"{layer.name}/conv/bn", layer.filters)
    elif layer.kind == "separable":
      out[f"{layer.name}/depthwise_conv"] = (("depthwise_kernel", (k, k, channels, 1)),)
      batchnorm(f"{layer.name}/depthwise_conv/bn", channels)
      out[f"{layer.name}/pointwise_conv"] = (("kernel", (1, 1, channels, layer.filters)),)
      batchnorm(f"{layer.name}/pointwise_conv/bn", layer.filters)
    else:  # pragma: no cover - the table is a constant
      raise ValueError(f"unknown layer kind {layer.kind!r}")
    channels = layer.filters
  if channels != params.embedding_size:  # pragma: no cover - the table is a constant
    raise ValueError(f"the table ends with {channels} channels, params say {params.embedding_size}")
  out[CLASSIFIER] = (("kernel", (params.embedding_size, params.num_classes)),
                     ("bias", (params.num_classes,)))
  return out


def weight_shapes(params: Params = DEFAULT_PARAMS) -> dict[str, tuple[int, ...]]:
  """``<layer>/<weight>`` -> shape, in network order: ``layer1/conv/kernel`` (3, 3, 1, 32),
  ``layer1/conv/bn/beta`` (32,), ..., ``logits/kernel`` (1024, 521), ``logits/bias`` (521,)."""
  return {f"{layer}/{weight}": shape
          for layer, weights in keras_layers(params).items() for weight, shape in weights}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow "SAME" padding of one axis: (before, after); the odd one goes after.

  Output size is ``ceil(size / stride)``; e.g. size 96, kernel 3, stride 2 -> (0, 1);
  stride 1 -> (1, 1).
  """
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def feature_map_shapes(params: Params = DEFAULT_PARAMS) -> list[tuple[str, tuple[int, int, int]]]:
  """(layer name, output [H, W, C]) through the body: layer1 (48, 32, 32) ... layer14 (3, 2, 1024)."""
  h, w = params.patch_frames, params.patch_bands
  shapes = []
  for layer in YAMNET_LAYERS:
    h, w = math.ceil(h / layer.stride), math.ceil(w / layer.stride)
    shapes.append((layer.name, (h, w, layer.filters)))
  return shapes


def flops_per_patch(params: Params = DEFAULT_PARAMS) -> int:
  """Floating point operations for one patch (a multiply-add counts 2): about 1.4e8.

  Counts the convolutions and the classifier; batch norm, ReLU and pooling are negligible.
  """
  total, channels = 0, 1
  for layer, (_, (h, w, c)) in zip(YAMNET_LAYERS, feature_map_shapes(params)):
    k2 = layer.kernel * layer.kernel
    if layer.kind == "conv":
      total += 2 * h * w * c * k2 * channels
    else:
      total += 2 * h * w * channels * k2 + 2 * h * w * channels * c
    channels = c
  return total + 2 * params.embedding_size * params.num_classes
