"""CLMR's SampleCNN encoder as a table of layers, and its torch module.

The network (SampleCNN as used by CLMR; Lee et al. 2018, Spijkervet and Burgoyne 2021)
maps 59049 raw samples to a 512-d representation with eleven blocks, each
``Conv1d -> BatchNorm1d -> ReLU`` and most followed by ``MaxPool1d(3)``:

==== ============ ======== ====== ======= ========= ============ =================
idx  channels     kernel   stride padding max-pool  length out   role
==== ============ ======== ====== ======= ========= ============ =================
0    1 -> 128     3        3      0       --        19683        strided "frame" conv
1-2  128 -> 128   3        1      1       3         6561, 2187   sample-level blocks
3    128 -> 256   3        1      1       3         729
4-8  256 -> 256   3        1      1       3         243 ... 3
9    256 -> 512   3        1      1       3         1
10   512 -> 512   3        1      1       --        1            last conv
==== ============ ======== ====== ======= ========= ============ =================

The output [512, 1] is flattened to 512 values: this is the **embedding** -- the
encoder representation ``h`` of SimCLR, before CLMR's projection head (``projector``:
Linear 512->512, ReLU, Linear 512->64, used only by the contrastive loss) and without the
SampleCNN's ``fc`` classifier, which CLMR replaces by the identity during pre-training.
Towhee's ``audio_embedding.clmr`` operator returns the same 512-d vector per 59049-sample
window.

Parameter names follow the published checkpoints (``torch.nn.Sequential`` numbering):
``sequential.<idx>.0.{weight,bias}`` (the conv, weight [out, in, kernel]) and
``sequential.<idx>.1.{weight,bias,running_mean,running_var,num_batches_tracked}`` (the
batch norm, eps 1e-5, evaluated with its running statistics). Written for this project
from the paper and the repository's description; torch is imported only by
``build_encoder``.
"""

from __future__ import annotations

import dataclasses

from models.clmr.params import DEFAULT_PARAMS, CLMRParams

__all__ = ["Block", "SAMPLECNN_BLOCKS", "CONV", "NORM", "parameter_shapes", "OPTIONAL_PARAMETERS",
           "build_encoder"]

CONV = 0
"""Index of the conv inside a block (``sequential.<idx>.0``)."""
NORM = 1
"""Index of the batch norm inside a block (``sequential.<idx>.1``)."""


@dataclasses.dataclass(frozen=True)
class Block:
  """One ``Conv1d -> BatchNorm1d -> ReLU [-> MaxPool1d]`` block."""

  in_channels: int
  out_channels: int
  kernel: int
  stride: int
  padding: int
  pool: int  # 1: no pooling


def _blocks() -> tuple[Block, ...]:
  blocks = [Block(1, 128, 3, 3, 0, 1)]
  channels = [128, 128, 128, 256, 256, 256, 256, 256, 256, 512]
  blocks += [Block(a, b, 3, 1, 1, 3) for a, b in zip(channels[:-1], channels[1:])]
  blocks.append(Block(512, 512, 3, 1, 1, 1))
  return tuple(blocks)


SAMPLECNN_BLOCKS: tuple[Block, ...] = _blocks()

OPTIONAL_PARAMETERS = ("num_batches_tracked",)
"""Batch-norm counters: kept by torch >= 0.4, absent from older state dicts, never used."""


def parameter_shapes(params: CLMRParams = DEFAULT_PARAMS) -> dict[str, tuple[int, ...]]:
  """Encoder parameter name -> shape, in checkpoint order (``num_batches_tracked``: [])."""
  del params  # The layout is fixed by the published architecture.
  out: dict[str, tuple[int, ...]] = {}
  for i, block in enumerate(SAMPLECNN_BLOCKS):
    conv, norm = f"sequential.{i}.{CONV}", f"sequential.{i}.{NORM}"
    out[f"{conv}.weight"] = (block.out_channels, block.in_channels, block.kernel)
    out[f"{conv}.bias"] = (block.out_channels,)
    for name in ("weight", "bias", "running_mean", "running_var"):
      out[f"{norm}.{name}"] = (block.out_channels,)
    out[f"{norm}.num_batches_tracked"] = ()
  return out


def build_encoder(params: CLMRParams = DEFAULT_PARAMS):
  """The encoder as a ``torch.nn.Module`` (random init; load weights with load_state_dict).

  ``forward(x float32 [N, 59049]) -> [N, 512]``.
  """
  import torch
  from torch import nn

  class SampleCNNEncoder(nn.Module):
    """SampleCNN without its classifier: raw samples [N, L] -> [N, 512]."""

    def __init__(self):
      super().__init__()
      layers = []
      for block in SAMPLECNN_BLOCKS:
        parts = [nn.Conv1d(block.in_channels, block.out_channels, block.kernel, block.stride,
                           block.padding),
                 nn.BatchNorm1d(block.out_channels, eps=params.batch_norm_epsilon),
                 nn.ReLU()]
        if block.pool > 1:
          parts.append(nn.MaxPool1d(block.pool, stride=block.pool))
        layers.append(nn.Sequential(*parts))
      self.sequential = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
      out = self.sequential(x.unsqueeze(1))                   # [N, 512, 1]
      return out.reshape(x.shape[0], -1)                      # [N, 512]

  return SampleCNNEncoder()
