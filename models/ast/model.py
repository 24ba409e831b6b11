"""The AST network: transformers' ``ASTModel`` / ``ASTForAudioClassification``, loaded safely.

Loaded from a validated checkpoint folder (``models.ast.checkpoint``) with
``from_pretrained(dir, local_files_only=True, use_safetensors=True,
trust_remote_code=False)``; transformers' own loading report is checked as well, so a
checkpoint whose tensors do not all land in the network is an error naming them, never a
partly random model.

Outputs per 1024 x 128 input window:

* ``embedding`` float32 [hidden_size] (768 for MIT's checkpoints), chosen by
  ``ast_embedding``: ``"pooler"`` (default) -- the model's pooled output, the mean of the
  CLS and distillation tokens after the final layer norm (what the classifier reads) --
  or ``"mean_tokens"`` -- the mean of all tokens of the last hidden state (CLS,
  distillation and the 1212 patch tokens; "token embeddings, mean-pooled").
* ``scores`` float32 [num_labels] (527 for AudioSet checkpoints): ``sigmoid(logits)``,
  AudioSet being multi-label; only for ``ASTForAudioClassification`` checkpoints.

torch and transformers are imported here, lazily (``load_ast``), never by the bundle.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from audiobeam.errors import CheckpointError
from models.ast.checkpoint import HOW_TO_FIX, ASTLayout

__all__ = ["EMBEDDINGS", "ASTRunner", "load_ast"]

EMBEDDINGS = ("pooler", "mean_tokens")


class ASTRunner:
  """Thread-safe callable: float32 [N, 1024, 128] -> {"embedding": [N, H], "scores": [N, C]}."""

  def __init__(self, model, layout: ASTLayout, embedding: str, device: str, max_length: int,
               num_mel_bins: int):
    if embedding not in EMBEDDINGS:
      raise ValueError(f"expected ast_embedding in {EMBEDDINGS}, found {embedding!r}")
    self.model = model
    self.layout = layout
    self.embedding = embedding
    self.device = device
    self.input_shape = (max_length, num_mel_bins)

  def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[1:] != self.input_shape:
      raise ValueError(f"expected AST inputs float32 [N, {self.input_shape[0]}, "
                       f"{self.input_shape[1]}], got shape {inputs.shape}")
    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(self.device)
    with torch.inference_mode():
      base = (self.model.audio_spectrogram_transformer if self.layout.classification
              else self.model)
      hidden = base(input_values=x)
      if self.embedding == "pooler":
        embedding = hidden.pooler_output
      else:
        embedding = hidden.last_hidden_state.mean(dim=1)
      out = {"embedding": embedding.float().cpu().numpy()}
      if self.layout.classification:
        logits = self.model.classifier(hidden.pooler_output)
        out["scores"] = torch.sigmoid(logits).float().cpu().numpy()
    return out


def load_ast(checkpoint_dir: str, layout: ASTLayout, embedding: str, device: str,
             max_length: int, num_mel_bins: int) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """The network of ``checkpoint_dir`` (validated) on ``device``, in eval mode."""
  import torch
  import transformers

  cls = (transformers.ASTForAudioClassification if layout.classification
         else transformers.ASTModel)
  try:
    from audiobeam.quiet import quiet_transformers  # pylint: disable=import-outside-toplevel
    quiet_transformers()
    model, info = cls.from_pretrained(
        checkpoint_dir, local_files_only=True, use_safetensors=True, trust_remote_code=False,
        output_loading_info=True, dtype=torch.float32)
  except (OSError, ValueError, RuntimeError) as error:
    raise CheckpointError(f"transformers could not load the AST checkpoint {checkpoint_dir!r}: "
                          f"{type(error).__name__}: {error}. {HOW_TO_FIX}") from error
  problems = [f"{key.replace('_', ' ')}: {', '.join(sorted(map(str, info[key])))}"
              for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")
              if info.get(key)]
  if problems:
    raise CheckpointError(f"the AST checkpoint {checkpoint_dir!r} does not fit "
                          f"{cls.__name__}: {'; '.join(problems)}. {HOW_TO_FIX}")
  model.eval().to(device)
  return ASTRunner(model, layout, embedding, device, max_length, num_mel_bins)
