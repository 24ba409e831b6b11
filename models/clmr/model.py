"""CLMR's encoder on a device: float32 windows [N, 59049] -> 512-d embeddings.

Loads a checkpoint with ``models.clmr.checkpoint.read_checkpoint`` (validated,
``torch.load(weights_only=True)``) into ``models.clmr.network.build_encoder`` with
``strict=True``, in eval mode (batch norm with its running statistics), and runs it
under ``torch.inference_mode()``. torch is imported here only when loading.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from models.clmr.checkpoint import read_checkpoint
from models.clmr.params import DEFAULT_PARAMS, CLMRParams

__all__ = ["CLMRRunner", "load_clmr"]


class CLMRRunner:
  """Thread-safe callable: float32 [N, 59049] -> {"embedding": float32 [N, 512]}."""

  def __init__(self, encoder, device: str, params: CLMRParams):
    self.encoder = encoder
    self.device = device
    self.params = params

  def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.shape[1] != self.params.window_samples:
      raise ValueError(f"expected CLMR inputs float32 [N, {self.params.window_samples}], got "
                       f"shape {inputs.shape}")
    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(self.device)
    with torch.inference_mode():
      embedding = self.encoder(x)
    return {"embedding": embedding.float().cpu().numpy()}


def load_clmr(path: str, device: str = "cpu", params: CLMRParams = DEFAULT_PARAMS
              ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """The encoder of the checkpoint at ``path`` on ``device`` ("cpu" or "cuda")."""
  import torch

  from models.clmr.network import build_encoder

  weights, _ = read_checkpoint(path)
  encoder = build_encoder(params)
  state = {name: torch.from_numpy(value) for name, value in weights.items()}
  # num_batches_tracked only counts training steps; keep the module's own.
  state.update({k: v for k, v in encoder.state_dict().items() if k.endswith("num_batches_tracked")})
  encoder.load_state_dict(state, strict=True)
  encoder.eval().to(device)
  return CLMRRunner(encoder, device, params)
