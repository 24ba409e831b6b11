"""The YAMNet network in PyTorch (the GPU path), from the same ``yamnet.h5``.

The same table (``models.yamnet.network``) and the same weights, read by our own h5py
reader (``models.yamnet.weights.read_weights``; no Keras, no pickle). TensorFlow's layout
is converted once: conv kernels [kh, kw, in, out] -> [out, in, kh, kw], depthwise
kernels [kh, kw, C, 1] -> [C, 1, kh, kw] (``groups=C``), the dense kernel [1024, 521]
-> [521, 1024]; activations are NCHW. TensorFlow's "SAME" padding is asymmetric for
stride 2 on even sizes (the extra zero row/column goes after), so each convolution pads
explicitly with ``network.same_padding`` instead of torch's symmetric ``padding=``.
Batch norm is inference-mode ``F.batch_norm`` with the moving statistics, beta and no
scale, epsilon 1e-4.

TF32 is off unless asked (``allow_tf32``): on Ampere+ GPUs it would silently round
matmul/conv inputs to 10-bit mantissas and break the numerical contract. Calls run
under ``torch.inference_mode()``.

Importing this module does not import torch; building ``YAMNetTorch`` does.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from audiobeam.devices import set_torch_tf32, torch_device
from models.yamnet.model import check_patches
from models.yamnet.network import CLASSIFIER, YAMNET_LAYERS, same_padding
from models.yamnet.params import DEFAULT_PARAMS, Params

__all__ = ["YAMNetTorch"]


class YAMNetTorch:
  """YAMNet in PyTorch: patches float32 [N, 96, 64] ->
  ``{"embedding": float32 [N, 1024], "scores": float32 [N, 521]}`` (numpy, on the host).

  Build with ``YAMNetTorch.from_h5(path, device=...)`` or from the dict of
  ``read_weights``. Thread-safe; any N >= 0. ``num_weights_loaded`` counts the arrays
  restored (110).
  """

  def __init__(self, weights: Mapping[str, np.ndarray], params: Params = DEFAULT_PARAMS,
               device: str = "cpu", allow_tf32: bool = False):
    from models.yamnet.weights import check_weights

    check_weights({k: (tuple(np.shape(v)), np.asarray(v).dtype) for k, v in weights.items()},
                  params, source="weights passed to YAMNetTorch")
    import torch  # Lazy: importing models.yamnet must not import torch.

    set_torch_tf32(allow_tf32)
    self.params = params
    self.device = torch.device(torch_device(device))  # audiobeam.devices
    self._torch = torch

    def tensor(key: str, axes: tuple[int, ...] | None = None):
      value = np.asarray(weights[key], dtype=np.float32)
      if axes is not None:
        value = value.transpose(axes)
      return torch.from_numpy(np.ascontiguousarray(value)).to(self.device)

    conv_axes, depthwise_axes = (3, 2, 0, 1), (2, 3, 0, 1)
    self._tensors: dict[str, object] = {}
    for layer in YAMNET_LAYERS:
      if layer.kind == "conv":
        parts = [(f"{layer.name}/conv", "kernel", conv_axes)]
      else:
        parts = [(f"{layer.name}/depthwise_conv", "depthwise_kernel", depthwise_axes),
                 (f"{layer.name}/pointwise_conv", "kernel", conv_axes)]
      for prefix, kernel, axes in parts:
        self._tensors[f"{prefix}/{kernel}"] = tensor(f"{prefix}/{kernel}", axes)
        for stat in ("beta", "moving_mean", "moving_variance"):
          self._tensors[f"{prefix}/bn/{stat}"] = tensor(f"{prefix}/bn/{stat}")
    self._tensors[f"{CLASSIFIER}/kernel"] = tensor(f"{CLASSIFIER}/kernel", (1, 0))
    self._tensors[f"{CLASSIFIER}/bias"] = tensor(f"{CLASSIFIER}/bias")
    self.num_weights_loaded = len(self._tensors)

  @classmethod
  def from_h5(cls, path: str, params: Params = DEFAULT_PARAMS, device: str = "cpu",
              allow_tf32: bool = False) -> "YAMNetTorch":
    """Restores all 110 weights of a ``yamnet.h5`` by layer name."""
    from models.yamnet.weights import read_weights

    return cls(read_weights(path, params), params, device, allow_tf32)

  def _conv_bn_relu(self, net, prefix: str, kernel: str, stride: int, groups: int = 1):
    functional = self._torch.nn.functional
    t = self._tensors
    weight = t[f"{prefix}/{kernel}"]                                  # [out, in/groups, kh, kw]
    top, bottom = same_padding(net.shape[2], weight.shape[2], stride)
    left, right = same_padding(net.shape[3], weight.shape[3], stride)
    if top or bottom or left or right:
      net = functional.pad(net, (left, right, top, bottom))
    net = functional.conv2d(net, weight, stride=stride, groups=groups)
    net = functional.batch_norm(net, t[f"{prefix}/bn/moving_mean"],
                                t[f"{prefix}/bn/moving_variance"], weight=None,
                                bias=t[f"{prefix}/bn/beta"], training=False,
                                eps=self.params.batchnorm_epsilon)
    return functional.relu(net)

  def forward(self, patches):
    """torch float32 [N, 96, 64] on ``device`` -> (embedding [N, 1024], scores [N, 521])."""
    torch = self._torch
    net = patches[:, None, :, :]                                      # [N, 1, 96, 64]
    for layer in YAMNET_LAYERS:
      if layer.kind == "conv":
        net = self._conv_bn_relu(net, f"{layer.name}/conv", "kernel", layer.stride)
      else:
        net = self._conv_bn_relu(net, f"{layer.name}/depthwise_conv", "depthwise_kernel",
                                 layer.stride, groups=net.shape[1])
        net = self._conv_bn_relu(net, f"{layer.name}/pointwise_conv", "kernel", 1)
    embedding = net.mean(dim=(2, 3))                                  # [N, 1024]
    logits = torch.nn.functional.linear(embedding, self._tensors[f"{CLASSIFIER}/kernel"],
                                        self._tensors[f"{CLASSIFIER}/bias"])
    return embedding, torch.sigmoid(logits)                           # [N, 521]

  def __call__(self, patches: np.ndarray) -> dict[str, np.ndarray]:
    """patches [N, 96, 64] (any float dtype; cast to float32) -> embedding, scores."""
    patches = check_patches(patches, self.params)
    if patches.shape[0] == 0:
      return {"embedding": np.zeros((0, self.params.embedding_size), np.float32),
              "scores": np.zeros((0, self.params.num_classes), np.float32)}
    torch = self._torch
    with torch.inference_mode():
      embedding, scores = self.forward(torch.from_numpy(patches).to(self.device))
      return {"embedding": embedding.cpu().numpy(), "scores": scores.cpu().numpy()}
