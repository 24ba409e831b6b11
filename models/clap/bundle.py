"""CLAP (LAION HTSAT, as Hugging Face transformers ships it) as an audiobeam model bundle.

Audio and text in one 512-d space: per-window and per-file audio embeddings,
optional zero-shot labels (``--clap_labels``), and text embeddings for text -> audio search
(``models.clap.loading.load_clap(...).embed_text``).

* Input: 48 kHz mono, resampled with "soxr_hq" and librosa's output length
  (``resample_length_rule`` "librosa"), as CLAP's reference loading
  ``librosa.load(path, sr=48000)`` does. ``--resampler`` does not apply to CLAP.
* Windows: 10 s every ``--clap_hop_seconds`` (default 10), the last partial one
  repeat-padded as the feature extractor pads; a file under 10 s is one window
  (``models.clap.frontend``). ``frame_times``: ``start = i * hop``,
  ``end = min(start + 10, duration)`` (the audio the window holds; a padded window's
  repeats are not counted).
* Model: transformers' ``ClapModel.get_audio_features`` on features equal to
  ``ClapFeatureExtractor``'s for that window alone (``models.clap.model``):
  ``{"embedding": float32 [N, 512]}``, each row unit-norm as the model returns it.
* Clip embedding: the windows pooled with ``--pooling`` (mean by default) and then
  always L2-normalised (CLAP compares by cosine; the pooled vector is put back on the
  unit sphere), whatever ``--normalize`` says.
* Labels: ``--clap_labels a,b,c`` or ``--clap_labels_file FILE`` (one per line) with
  ``--clap_label_template`` (default "This is a sound of {}.", the zero-shot pipeline's).
  Per clip: ``score = softmax(exp(logit_scale_a) * cos(clip, text(label)))``; clips get
  ``top_label`` and ``top_label_score``; the ``labels`` extra
  (``<output>/clap/labels/``) has one row per (uri, label).

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from audiobeam import assets as asset_store
from audiobeam.bundle import (Asset, Common, Extra, FrontEnd, ModelBundle, Option,
                              Postprocessor, pool_embedding)
from audiobeam.errors import AssetError, AudiobeamError, ConfigError
from models.clap import labels as label_tools
from models.clap.frontend import ClapFrontEnd, hop_samples_for
from models.clap.params import DEFAULT_PARAMS

__all__ = ["ClapBundle", "ClapPostprocessor", "LABEL_COLUMNS"]

LABEL_COLUMNS = ("uri", "label", "score", "cosine_similarity", "rank")
"""Columns of the ``labels`` extra, one row per (clip, label)."""

# One loaded model per (checkpoint folder, device) per process: load_model and
# load_postprocessor (label text embeddings) share it.
_RUNNERS: dict[tuple[str, str, bool], Any] = {}
_RUNNERS_LOCK = threading.Lock()


def _shared_runner(path: str, device: str, allow_tf32: bool):
  from audiobeam.devices import torch_device
  from models.clap.loading import load_clap

  key = (path, torch_device(device), bool(allow_tf32))
  with _RUNNERS_LOCK:
    if key not in _RUNNERS:
      _RUNNERS[key] = load_clap(path, key[1], allow_tf32=allow_tf32)
    return _RUNNERS[key]


def _clip_value(clip: Any, key: str) -> Any:
  """A clip column (or ``uri``) from a clip object: a mapping, or an object with ``uri``
  and ``clip_columns`` (the dict ``ClapPostprocessor.clip_columns`` returned)."""
  if isinstance(clip, Mapping):
    return clip[key]
  if key == "uri":
    return clip.uri
  return clip.clip_columns[key]


class ClapPostprocessor(Postprocessor):
  """Per worker: frame embeddings -> clip embedding, and zero-shot labels when asked.

  ``label_embeddings``: float32 [L, 512] of ``template.format(label)`` (None without
  labels); ``logit_scale``: ``exp(logit_scale_a)`` of the checkpoint.
  """

  def __init__(self, labels: Sequence[str] = (), label_embeddings: np.ndarray | None = None,
               logit_scale: float | None = None):
    self.labels = tuple(labels)
    self.label_embeddings = label_embeddings
    self.logit_scale = logit_scale

  def frame_columns(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    embedding = np.asarray(outputs["embedding"], dtype=np.float32)
    if embedding.ndim != 2 or embedding.shape[1] != DEFAULT_PARAMS.embedding_size:
      raise ValueError(f"expected CLAP embeddings [N, {DEFAULT_PARAMS.embedding_size}], got "
                       f"shape {embedding.shape}")
    return {"embedding": embedding}

  def clip_columns(self, frames: Mapping[str, np.ndarray], common: Common) -> dict[str, Any]:
    """Clip ``embedding`` float32 [512] (pooled, then L2-normalised); with labels also
    ``top_label`` str, ``top_label_score`` float32 and, for the ``labels`` extra (not
    clip columns), ``label_scores`` / ``label_cosine_similarities`` float32 [L] and
    ``label_ranks`` int32 [L] in label order."""
    embedding = pool_embedding(frames["embedding"], common.pooling, "l2")
    columns: dict[str, Any] = {"embedding": embedding, "normalize": "l2"}
    if self.labels:
      scores, cosines, ranks = label_tools.zero_shot(embedding, self.label_embeddings,
                                                     self.logit_scale)
      best = int(np.argmin(ranks))
      columns.update(top_label=self.labels[best], top_label_score=np.float32(scores[best]),
                     label_scores=scores, label_cosine_similarities=cosines, label_ranks=ranks)
    return columns


class ClapBundle(ModelBundle):
  """CLAP, configured (see the module docstring)."""

  name = "clap"
  description = ("CLAP (LAION HTSAT via Hugging Face transformers): 512-d audio embeddings in "
                 "a space shared with text; zero-shot labels with --clap_labels.")
  default_batch_size = 16
  options = (
      Option("clap_checkpoint", "Hugging Face CLAP checkpoint folder (local, gs://, s3://, "
             "https://): config.json, model.safetensors, preprocessor_config.json and the "
             "tokenizer files, e.g. from `hf download laion/clap-htsat-unfused --local-dir DIR`.",
             kind="path", metavar="DIR"),
      Option("clap_hop_seconds", "seconds between the starts of CLAP's 10 s windows, in "
             "(0, 10] (default 10: side by side).", kind="float",
             default=DEFAULT_PARAMS.default_hop_seconds, metavar="SECONDS"),
      Option("clap_labels", "zero-shot labels for CLAP, comma-separated (or a YAML list).",
             kind="list", metavar="LABEL,LABEL,..."),
      Option("clap_labels_file", "file of zero-shot labels for CLAP, one per line (UTF-8).",
             kind="path", metavar="FILE"),
      Option("clap_label_template", "text the CLAP text encoder sees for a label; '{}' is "
             f"replaced by the label (default {DEFAULT_PARAMS.default_label_template!r}).",
             default=DEFAULT_PARAMS.default_label_template, metavar="TEMPLATE"),
  )

  def __init__(self, values: Mapping[str, Any], common: Common):
    super().__init__(values, common)
    self.params = DEFAULT_PARAMS
    hop = self.values.get("clap_hop_seconds")
    self.hop_samples = hop_samples_for(DEFAULT_PARAMS.default_hop_seconds if hop is None else hop)
    self.hop_seconds = self.hop_samples / self.params.sample_rate_hz
    template = self.values.get("clap_label_template")
    self.label_template = label_tools.check_template(
        DEFAULT_PARAMS.default_label_template if template is None else template)
    self.labels = self._read_labels()

  def _read_labels(self) -> tuple[str, ...]:
    """The label list from --clap_labels or --clap_labels_file (read here, in the launcher)."""
    given, path = self.values.get("clap_labels"), self.values.get("clap_labels_file")
    if given is not None and path is not None:
      raise ConfigError("expected either --clap_labels or --clap_labels_file, found both; pass one.")
    if given is not None:
      return label_tools.parse_labels(given)
    if path is None:
      return ()
    try:
      local = asset_store.localize(str(path), self.common.cache_dir, what="labels file",
                                   how_to_fix="Pass --clap_labels_file a UTF-8 text file, one label "
                                              "per line.")
      with open(local, encoding="utf-8") as f:
        text = f.read()
    except (AudiobeamError, OSError, UnicodeDecodeError) as error:
      raise ConfigError(f"expected --clap_labels_file to name a readable UTF-8 text file, found "
                        f"{path!r}: {error}") from None
    return label_tools.parse_labels_text(text, where=f"--clap_labels_file {path}")

  # --- identity -----------------------------------------------------------------------
  @property
  def sample_rate_hz(self) -> int:
    return self.params.sample_rate_hz

  @property
  def resampler(self) -> str:
    """Always "soxr_hq" (CLAP's reference loading); ``--resampler`` does not apply."""
    return self.params.resampler

  @property
  def resample_length_rule(self) -> str:
    """``audiobeam.resample`` ``length_rule`` for this model: "librosa" (see the module
    docstring). The generic chain should pass it to ``StreamingResampler``."""
    return self.params.resample_length_rule

  # --- launcher -----------------------------------------------------------------------
  def resolve_assets(self, *, local_runner: bool) -> dict[str, Asset]:
    from models.clap.loading import HOW_TO_FIX, checkpoint_sha256, localize_checkpoint

    uri = self.values.get("clap_checkpoint")
    if not uri:
      raise AssetError(f"expected --clap_checkpoint for --model clap, found none. {HOW_TO_FIX}")
    path = localize_checkpoint(str(uri), self.common.cache_dir)
    return {"checkpoint": Asset(name="checkpoint", uri=str(uri), local_path=path,
                                worker_uri=path if local_runner else str(uri),
                                sha256=checkpoint_sha256(path), kind="directory")}

  def settings(self, assets: Mapping[str, Asset]) -> dict[str, Any]:
    out = {
        "model": self.name,
        "checkpoint_sha256": assets["checkpoint"].sha256,
        "sample_rate_hz": self.params.sample_rate_hz,
        "resampler": self.resampler,
        "resample_length_rule": self.resample_length_rule,
        "window_seconds": self.params.window_seconds,
        "hop_seconds": self.hop_seconds,
        "padding": "repeatpad",
        "pooling": self.common.pooling,
        "clip_normalize": "l2",
    }
    if self.labels:
      out.update(labels=list(self.labels), label_template=self.label_template)
    return out

  # --- worker: front end ----------------------------------------------------------------
  def frontend(self) -> FrontEnd:
    return ClapFrontEnd(self.hop_samples, self.params)

  def frame_times(self, frame_index: np.ndarray, duration_seconds: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    index = np.asarray(frame_index, dtype=np.int64)
    start = index * self.hop_samples / float(self.params.sample_rate_hz)
    end = np.minimum(start + self.params.window_seconds, float(duration_seconds))
    return start.astype(np.float64), end.astype(np.float64)

  # --- worker: model and postprocessing ---------------------------------------------------
  def load_model(self, local_assets: Mapping[str, str], device: str
                 ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    return _shared_runner(local_assets["checkpoint"], device, self.common.allow_tf32)

  def load_postprocessor(self, local_assets: Mapping[str, str]) -> Postprocessor:
    if not self.labels:
      return ClapPostprocessor()
    runner = _shared_runner(local_assets["checkpoint"], self.common.device, self.common.allow_tf32)
    texts = label_tools.label_texts(self.labels, self.label_template)
    return ClapPostprocessor(self.labels, runner.embed_text(texts), runner.logit_scale_audio)

  def text_embedder(self, local_assets: Mapping[str, str], device: str
                    ) -> Callable[[Sequence[str]], np.ndarray]:
    """For text -> audio search: texts -> float32 [L, 512], unit L2 norm, in the space of
    this bundle's clip embeddings (the checkpoint's text tower and projection)."""
    return _shared_runner(local_assets["checkpoint"], device, self.common.allow_tf32).embed_text

  # --- outputs --------------------------------------------------------------------------
  def frame_fields(self) -> list:
    import pyarrow as pa

    return [pa.field("embedding", pa.list_(pa.float32(), self.params.embedding_size))]

  def clip_fields(self) -> list:
    import pyarrow as pa

    fields = [pa.field("embedding", pa.list_(pa.float32(), self.params.embedding_size))]
    if self.labels:
      fields += [pa.field("top_label", pa.string()), pa.field("top_label_score", pa.float32())]
    return fields

  def extras(self, formats: Sequence[str]) -> list[Extra]:
    """The ``labels`` Parquet extra whenever labels are given (whatever ``--format``)."""
    del formats
    if not self.labels:
      return []
    return [Extra(name="labels", kind="parquet", to_table=self.labels_table,
                  fields=self.labels_fields)]

  def labels_fields(self) -> list:
    """Fields of the ``labels`` extra: uri, label, score, cosine_similarity, rank."""
    import pyarrow as pa

    return [pa.field("uri", pa.string()), pa.field("label", pa.string()),
            pa.field("score", pa.float32()), pa.field("cosine_similarity", pa.float32()),
            pa.field("rank", pa.int32())]

  def labels_table(self, clips: Sequence[Any], schema=None):
    """Clips -> ``pa.Table`` of the ``labels`` extra, one row per (clip, label) in label
    order. A clip is a mapping or an object with ``uri`` and ``clip_columns`` (see
    ``ClapPostprocessor.clip_columns``)."""
    import pyarrow as pa

    uris, names, scores, cosines, ranks = [], [], [], [], []
    for clip in clips:
      uri = _clip_value(clip, "uri")
      uris.extend([uri] * len(self.labels))
      names.extend(self.labels)
      scores.append(np.asarray(_clip_value(clip, "label_scores"), dtype=np.float32))
      cosines.append(np.asarray(_clip_value(clip, "label_cosine_similarities"), dtype=np.float32))
      ranks.append(np.asarray(_clip_value(clip, "label_ranks"), dtype=np.int32))
    schema = schema if schema is not None else pa.schema(self.labels_fields())
    empty32 = np.zeros(0, np.float32)
    return pa.Table.from_pydict({
        "uri": uris, "label": names,
        "score": np.concatenate(scores) if scores else empty32,
        "cosine_similarity": np.concatenate(cosines) if cosines else empty32,
        "rank": np.concatenate(ranks) if ranks else np.zeros(0, np.int32),
    }, schema=schema)
