"""The VGGish network in PyTorch, built from the same table as the TensorFlow model.

``VGGishTorchModel`` runs ``vggish.network.VGGISH_LAYERS`` (Google's published VGGish,
vggish_slim.py, as described there; the code is our own) with ``torch.nn.functional``
ops, restored from the same TF1 checkpoint through ``vggish.checkpoint.read_checkpoint``
(which needs no TensorFlow), so a GPU machine with PyTorch and without TensorFlow can
run it. Same call contract as ``vggish.model.VGGishModel``: patches float32
[N, 96, 64] -> raw float32 [N, 128] (``fc2`` before any activation), thread-safe,
N = 0 allowed.

Layout: PyTorch convolves NCHW with OIHW kernels; the checkpoint's kernels are HWIO,
so they are transposed once at load. The reference flattens the last NHWC feature map;
instead of permuting activations on every call, the rows of the first dense kernel are
reordered once from (H, W, C) to (C, H, W) order. Both are exact (no arithmetic);
outputs differ from the TensorFlow model only by float32 summation order (~1e-6).

TF32: PyTorch may run float32 convolutions (cuDNN: on by default) and matmuls in TF32
on Ampere+ GPUs, ~1e-3 away from the reference. Unless ``allow_tf32=True`` the
model turns both off (``torch.backends.cuda.matmul.allow_tf32 = False``,
``torch.backends.cudnn.allow_tf32 = False``,
``torch.set_float32_matmul_precision("highest")``, and the newer per-backend
``fp32_precision = "ieee"`` where this torch has it). These switches are
*process-wide*: the last model built decides for every torch computation in the
process. On CPU they change nothing.

Importing this module does not import torch; building a model does.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from audiobeam.devices import set_torch_tf32, torch_device
from vggish.network import POOL_SIZE, check_patches, walk
from vggish.network import flops_per_patch as _flops_per_patch
from vggish.params import DEFAULT_PARAMS, Params

__all__ = ["VGGishTorchModel"]


class VGGishTorchModel:
  """VGGish in PyTorch: patches float32 [N, 96, 64] -> raw float32 [N, 128].

  Build with ``VGGishTorchModel.from_checkpoint(path, device=...)`` or from a
  ``{name: array}`` dict as returned by ``vggish.checkpoint.read_checkpoint``.

  ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when torch sees a
  GPU, else CPU). ``allow_tf32``: False (default) turns TF32 off process-wide (see the
  module docstring). Calls run under ``torch.inference_mode()``; calling from several
  threads at once is safe (no state changes after construction). ``self.device`` is
  the resolved ``torch.device``; ``self.tf32_state`` the switches set at construction.
  """

  backend = "torch"

  def __init__(self, weights: Mapping[str, np.ndarray], params: Params = DEFAULT_PARAMS,
               *, device: str = "auto", allow_tf32: bool = False):
    from vggish.checkpoint import check_variables

    check_variables({k: (tuple(np.shape(v)), np.asarray(v).dtype) for k, v in weights.items()},
                    params, source="weights passed to VGGishTorchModel")
    import torch  # Lazy: importing vggish must not import torch.

    self._torch = torch
    self._functional = torch.nn.functional
    self.params = params
    self.device = torch.device(torch_device(device))
    self.tf32_state = set_torch_tf32(allow_tf32)
    self._steps: list[tuple] = []  # (kind, kernel tensor | None, bias tensor | None, relu)
    feature_map = None             # (H, W, C) of the last conv/pool output
    for layer, in_shape, _, weight_shape in walk(params):
      kernel = bias = None
      if layer.kind == "conv":
        hwio = np.asarray(weights[layer.weights_name], np.float32)       # [3, 3, C_in, C_out]
        kernel = np.transpose(hwio, (3, 2, 0, 1))                        # [C_out, C_in, 3, 3]
      elif layer.kind == "dense":
        kernel = np.asarray(weights[layer.weights_name], np.float32)     # [D_in, D_out]
        if feature_map is not None:  # First dense after flatten: rows (H, W, C) -> (C, H, W).
          h, w, c = feature_map
          kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
          feature_map = None
      elif layer.kind == "flatten":
        feature_map = in_shape
      if weight_shape is not None:
        bias = self._tensor(weights[layer.biases_name])
        kernel = self._tensor(kernel)
      self._steps.append((layer.kind, kernel, bias, layer.relu))

  def _tensor(self, array: np.ndarray):
    return self._torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(self.device)

  @classmethod
  def from_checkpoint(cls, path: str, params: Params = DEFAULT_PARAMS, *,
                      device: str = "auto", allow_tf32: bool = False) -> "VGGishTorchModel":
    """Restores the 18 ``vggish/...`` variables from a TF1 V1 or V2 checkpoint (no TF)."""
    from vggish.checkpoint import read_checkpoint

    return cls(read_checkpoint(path, params), params, device=device, allow_tf32=allow_tf32)

  @property
  def flops_per_patch(self) -> int:
    """About 1.73e9 FLOP per patch (multiply-add = 2)."""
    return _flops_per_patch(self.params)

  def forward(self, patches):
    """The network on a torch tensor: float32 [N, 96, 64] on ``self.device`` -> [N, 128]."""
    torch, functional = self._torch, self._functional
    net = patches.unsqueeze(1)                                      # [N, 1, 96, 64] NCHW
    for kind, kernel, bias, relu in self._steps:
      if kind == "conv":
        net = functional.conv2d(net, kernel, bias, stride=1, padding=kernel.shape[-1] // 2)
      elif kind == "pool":
        # Stride = size with ceil_mode: TF's SAME pooling (padding only at the end).
        net = functional.max_pool2d(net, POOL_SIZE, POOL_SIZE, ceil_mode=True)
      elif kind == "flatten":
        net = torch.flatten(net, 1)                                 # [N, 12288], CHW order
      elif kind == "dense":
        net = torch.addmm(bias, net, kernel)                        # [N, D_out]
      if relu:
        net = functional.relu(net)
    return net                                                      # [N, 128]

  def __call__(self, patches: np.ndarray) -> np.ndarray:
    """patches [N, 96, 64] (any float dtype; cast to float32) -> raw float32 [N, 128]."""
    patches = check_patches(patches, self.params)
    if patches.shape[0] == 0:
      return np.zeros((0, self.params.embedding_size), np.float32)
    torch = self._torch
    with torch.inference_mode():
      inputs = torch.from_numpy(np.ascontiguousarray(patches)).to(self.device)
      return self.forward(inputs).cpu().numpy()
