"""``ASTBundle``: the Audio Spectrogram Transformer for the generic pipeline (``--model ast``).

What it is for: AudioSet-trained audio event embeddings (and, with a classification
checkpoint such as MIT/ast-finetuned-audioset-10-10-0.4593, 527 AudioSet scores) for
every 10.24 s of every file, not only a file's first 10.24 s as one-file-at-a-time tools
compute.

* input: 16 kHz mono (``common.resampler``, exact resampy kaiser_best by default);
* front end: Kaldi fbank windows of 1024 x 128, hop ``ast_hop_seconds``
  (``models.ast.frontend``); window ``i`` starts at ``i * hop`` s and covers 10.255 s
  (its end is clipped to the file's duration for the last, padded window);
* model: ``models.ast.model`` (``embedding`` = ``ast_embedding``: ``pooler`` or
  ``mean_tokens``; ``scores`` = sigmoid of the logits for classification checkpoints);
* outputs: frames ``embedding`` float32[H] (+ ``scores`` float32[C]); clips the pooled
  ``embedding`` (``common.pooling`` mean/max, ``common.normalize``), and for
  classification checkpoints ``mean_scores`` float32[C] and ``top_labels`` (the 5
  highest mean scores, with the checkpoint's ``id2label`` names).

Sizes (H = 768, C = 527 for MIT's checkpoints) and the normalisation constants come from
the checkpoint folder, read in ``resolve_assets``; the instance keeps them, so pickle it
after ``resolve_assets`` (a local checkpoint is also read on first use). Importing this
module imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping

import numpy as np

from audiobeam import assets as asset_lib
from audiobeam.bundle import (Asset, Common, FrontEnd, ModelBundle, Option, Postprocessor,
                              check_choice, pool_embedding, window_times)
from audiobeam.errors import AssetError, ConfigError
from models.ast.checkpoint import (CHECKPOINT_FILES, HOW_TO_FIX, ASTLayout,
                                   validate_checkpoint_dir)
from models.ast.frontend import ASTFrontEnd
from models.ast.model import EMBEDDINGS  # no torch at import: model.py imports it lazily
from models.ast.params import DEFAULT_HOP_SECONDS, ASTParams

__all__ = ["ASTBundle", "ASTPostprocessor", "TOP_LABELS", "CLASS_NAMES_KEY"]

TOP_LABELS = 5
CLASS_NAMES_KEY = "audiobeam.ast.class_names"
"""Parquet schema metadata key: the checkpoint's class names (JSON list, by index)."""


def _top_labels_type():
  import pyarrow as pa

  return pa.list_(pa.struct([pa.field("index", pa.int32()),
                             pa.field("display_name", pa.string()),
                             pa.field("score", pa.float32())]))


class ASTPostprocessor(Postprocessor):
  """Frame columns as the model gives them; clip columns pooled (+ scores, top labels)."""

  def __init__(self, layout: ASTLayout):
    self.layout = layout

  def frame_columns(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    columns = {"embedding": np.asarray(outputs["embedding"], dtype=np.float32)}
    if self.layout.classification:
      columns["scores"] = np.asarray(outputs["scores"], dtype=np.float32)
    return columns

  def clip_columns(self, frames: Mapping[str, np.ndarray], common: Common) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "embedding": pool_embedding(frames["embedding"], common.pooling, common.normalize)}
    if self.layout.classification:
      mean_scores = np.asarray(frames["scores"], dtype=np.float64).mean(axis=0)
      order = np.argsort(-mean_scores, kind="stable")[:TOP_LABELS]
      columns["mean_scores"] = mean_scores.astype(np.float32)
      columns["top_labels"] = [
          {"index": int(i), "display_name": self.layout.labels[i],
           "score": float(np.float32(mean_scores[i]))} for i in order]
    return columns


class ASTBundle(ModelBundle):
  """AST (Gong et al. 2021) through transformers, on whole files. See the module docstring."""

  name = "ast"
  description = ("Audio Spectrogram Transformer (Hugging Face checkpoint folder, e.g. "
                 "MIT/ast-finetuned-audioset-10-10-0.4593): 768-d embeddings and AudioSet "
                 "scores per 10.24 s window of the whole file")
  options = (
      Option("ast_checkpoint", "AST checkpoint folder (local, gs:// or s3://) with config.json, "
             "preprocessor_config.json and model.safetensors", kind="path", metavar="DIR"),
      Option("ast_hop_seconds", "seconds between AST windows (a multiple of 0.01; default "
             f"{DEFAULT_HOP_SECONDS}: consecutive 1024-frame windows)", kind="float",
             default=DEFAULT_HOP_SECONDS),
      Option("ast_embedding", "which AST output is the embedding: pooler (mean of the CLS and "
             "distillation tokens, default) or mean_tokens (mean of all output tokens)",
             kind="choice", default="pooler", choices=EMBEDDINGS),
  )
  default_batch_size = 8

  def __init__(self, values: Mapping[str, Any], common: Common):
    super().__init__(values, common)
    check_choice("--ast_embedding", self.values["ast_embedding"], EMBEDDINGS)
    hop = self.values["ast_hop_seconds"]
    if isinstance(hop, bool) or not isinstance(hop, (int, float)):
      raise ConfigError(f"expected --ast_hop_seconds to be a number of seconds, found {hop!r}")
    self.hop_seconds = float(hop)
    ASTParams(hop_seconds=self.hop_seconds)      # validates the hop (ConfigError)
    self._params: ASTParams | None = None
    self._layout: ASTLayout | None = None

  # --- identity ---------------------------------------------------------------------
  @property
  def sample_rate_hz(self) -> int:
    return 16000

  # --- launcher ---------------------------------------------------------------------
  def resolve_assets(self, *, local_runner: bool) -> dict[str, Asset]:
    uri = self.values["ast_checkpoint"]
    if not uri:
      raise AssetError(f"--model ast needs its weights and never substitutes others: pass "
                       f"--ast_checkpoint DIR. {HOW_TO_FIX}")
    uri = os.fspath(uri)
    if asset_lib.is_remote(uri):
      local = asset_lib.localize_directory(
          uri, self.common.cache_dir, what="AST checkpoint folder", required=CHECKPOINT_FILES,
          validate=lambda folder: validate_checkpoint_dir(folder, self.hop_seconds),
          how_to_fix=HOW_TO_FIX)
    else:
      local = asset_lib.local_path(uri)
    self._params, self._layout = validate_checkpoint_dir(local, self.hop_seconds)
    sha256 = asset_lib.sha256_of_directory(local, CHECKPOINT_FILES)
    return {"checkpoint": Asset(name="checkpoint", uri=uri, local_path=local,
                                worker_uri=local if local_runner else uri, sha256=sha256,
                                kind="directory")}

  def _resolved(self, local_path: str | None = None) -> tuple[ASTParams, ASTLayout]:
    """The checkpoint's front-end params and layout (read once; see the module docstring)."""
    if self._layout is None:
      path = local_path
      uri = self.values["ast_checkpoint"]
      if path is None and uri and not asset_lib.is_remote(os.fspath(uri)):
        path = asset_lib.local_path(os.fspath(uri))
      if path is None:
        raise ConfigError("ASTBundle: the checkpoint's sizes and normalisation are read in "
                          "resolve_assets(); call it before frontend()/frame_fields()/"
                          "clip_fields() (and pickle the bundle after it).")
      self._params, self._layout = validate_checkpoint_dir(path, self.hop_seconds)
    return self._params, self._layout

  def settings(self, assets: Mapping[str, Asset]) -> dict[str, Any]:
    params, layout = self._resolved(assets["checkpoint"].local_path)
    return {
        "model": self.name,
        "checkpoint_sha256": assets["checkpoint"].sha256,
        "architecture": layout.architecture,
        "sample_rate_hz": self.sample_rate_hz,
        "resampler": self.resampler,
        "front_end": {"fbank": "kaldi (models.ast.fbank, float64)", **params.as_dict()},
        "embedding": self.values["ast_embedding"],
        "short_clips": self.common.short_clips,
        "pooling": self.common.pooling,
        "normalize": self.common.normalize,
        "allow_tf32": self.common.allow_tf32,
    }

  # --- worker: front end ------------------------------------------------------------
  def frontend(self) -> FrontEnd:
    params, _ = self._resolved()
    return ASTFrontEnd(params, self.common.short_clips)

  def frame_times(self, frame_index: np.ndarray, duration_seconds: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    params = self._params or ASTParams(hop_seconds=self.hop_seconds)
    return window_times(frame_index, params.hop_samples, params.sample_rate_hz,
                        params.window_span_seconds, duration_seconds)

  # --- worker: model and postprocessing ---------------------------------------------
  def load_model(self, local_assets: Mapping[str, str], device: str
                 ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    from audiobeam import devices  # pylint: disable=import-outside-toplevel
    from models.ast.model import load_ast

    params, layout = validate_checkpoint_dir(local_assets["checkpoint"], self.hop_seconds)
    if self._layout is not None and layout != self._layout:
      raise AssetError(f"the AST checkpoint at {local_assets['checkpoint']!r} is not the one "
                       f"resolved by the launcher ({layout} vs {self._layout}). {HOW_TO_FIX}")
    self._params, self._layout = params, layout
    torch_device = devices.torch_device(device)
    devices.set_torch_tf32(self.common.allow_tf32)
    return load_ast(local_assets["checkpoint"], layout, self.values["ast_embedding"],
                    torch_device, params.max_length_frames, params.num_mel_bins)

  def load_postprocessor(self, local_assets: Mapping[str, str]) -> Postprocessor:
    _, layout = validate_checkpoint_dir(local_assets["checkpoint"], self.hop_seconds)
    return ASTPostprocessor(layout)

  # --- outputs ----------------------------------------------------------------------
  def frame_fields(self) -> list:
    import pyarrow as pa

    _, layout = self._resolved()
    fields = [pa.field("embedding", pa.list_(pa.float32(), layout.hidden_size))]
    if layout.classification:
      fields.append(pa.field("scores", pa.list_(pa.float32(), layout.num_labels)))
    return fields

  def clip_fields(self) -> list:
    import pyarrow as pa

    _, layout = self._resolved()
    fields = [pa.field("embedding", pa.list_(pa.float32(), layout.hidden_size))]
    if layout.classification:
      fields.append(pa.field("mean_scores", pa.list_(pa.float32(), layout.num_labels)))
      fields.append(pa.field("top_labels", _top_labels_type()))
    return fields

  def schema_metadata(self, assets: Mapping[str, Asset]) -> dict[str, str]:
    _, layout = self._resolved(assets["checkpoint"].local_path)
    if not layout.classification:
      return {}
    return {CLASS_NAMES_KEY: json.dumps(list(layout.labels), ensure_ascii=False)}
