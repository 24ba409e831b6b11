"""A loaded CLAP model: 10 s windows -> audio embeddings, texts -> text embeddings.

Runs transformers' ``ClapModel`` itself (``get_audio_features`` /
``get_text_features``: projections L2-normalised as the model returns them). The input
features of a batch of windows are computed on the model's device by
``models.clap.features`` (equal to ``ClapFeatureExtractor`` on each window alone), with
``is_longer`` per window, so a window's embedding does not depend on its batch.

Imports torch: build one with ``models.clap.loading.load_clap``.
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np
import torch

from models.clap.features import MelSettings, is_longer_flags, log_mel_features
from models.clap.params import ClapParams

__all__ = ["ClapRunner"]

_TEXTS_PER_BATCH = 64


class ClapRunner:
  """CLAP on one device, in inference mode. Thread-safe (no state changes after init).

  ``runner(windows)`` is the bundle's model callable: float32 ``[N, 480000]`` ->
  ``{"embedding": float32 [N, 512]}``.
  """

  def __init__(self, model, extractor, tokenizer, device: str, params: ClapParams):
    self.model = model
    self.extractor = extractor
    self.tokenizer = tokenizer
    self.device = device
    self.params = params
    self.mel = MelSettings.from_extractor(extractor)
    self._text_lock = threading.Lock()  # tokenizers' Rust objects are not reentrant.

  @property
  def logit_scale_audio(self) -> float:
    """``exp(logit_scale_a)``: ClapModel's scale of ``logits_per_audio``."""
    return float(self.model.logit_scale_a.detach().exp().cpu())

  @property
  def fusion(self) -> bool:
    """True for fused checkpoints (``truncation`` "fusion")."""
    return self.mel.fusion

  def embed_windows(self, windows: np.ndarray) -> np.ndarray:
    """float32 ``[N, 480000]`` at 48 kHz -> float32 ``[N, 512]``, unit L2 norm."""
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    if not windows.flags.writeable:
      windows = windows.copy()  # torch.from_numpy wants a writable buffer.
    if windows.ndim != 2 or windows.shape[1] != self.params.window_samples:
      raise ValueError(f"expected CLAP windows float32 [N, {self.params.window_samples}], "
                       f"got shape {windows.shape}")
    if windows.shape[0] == 0:
      return np.zeros((0, self.params.embedding_size), dtype=np.float32)
    with torch.inference_mode():
      x = torch.from_numpy(windows).to(self.device)
      features = log_mel_features(x, self.mel)
      is_longer = is_longer_flags(x.shape[0], self.mel, device=self.device)
      out = self.model.get_audio_features(input_features=features, is_longer=is_longer)
      return out.pooler_output.float().cpu().numpy()

  def __call__(self, windows: np.ndarray) -> dict[str, np.ndarray]:
    return {"embedding": self.embed_windows(windows)}

  def embed_text(self, texts: Sequence[str]) -> np.ndarray:
    """``L`` strings -> float32 ``[L, 512]``, unit L2 norm (``get_text_features``).

    Tokenised as the zero-shot pipeline does (``padding=True``); texts longer than the
    tokenizer's ``model_max_length`` (512 tokens) are truncated.
    """
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
      raise TypeError("expected a sequence of strings")
    if not texts:
      return np.zeros((0, self.params.embedding_size), dtype=np.float32)
    parts = []
    for i in range(0, len(texts), _TEXTS_PER_BATCH):
      with self._text_lock:
        tokens = self.tokenizer(texts[i:i + _TEXTS_PER_BATCH], padding=True, truncation=True,
                                return_tensors="pt")
      with torch.inference_mode():
        out = self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                           attention_mask=tokens["attention_mask"].to(self.device))
        parts.append(out.pooler_output.float().cpu().numpy())
    return np.concatenate(parts, axis=0)
