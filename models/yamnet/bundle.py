"""YAMNet as an ``audiobeam.bundle.ModelBundle``: what the generic pipeline needs.

- input: mono 16 kHz (resampled with ``--resampler``, default ``kaiser_best``, equal to
  resampy's default that the reference demo uses), cut by ``YAMNetFrontEnd`` into
  96x64 log-mel patches every 0.48 s; every file gives at least one patch (the reference
  pads), frame ``i`` covers [0.48 i, 0.48 i + 0.975) s;
- model: ``YAMNetModel`` (TensorFlow, ``--backend tf``, default) or ``YAMNetTorch``
  (``--backend torch``), both restored by layer name from Google's ``yamnet.h5``;
  outputs ``embedding`` [N, 1024] and ``scores`` [N, 521];
- frames: ``embedding``, ``scores``; clips: the pooled ``embedding``, ``mean_scores``,
  ``max_scores`` and the ``top_labels`` (5 best by mean score, with class names);
- assets: Google's ``yamnet.h5`` and ``yamnet_class_map.csv``, downloaded once into
  ``<cache>/yamnet/`` or given with ``--yamnet_weights`` / ``--yamnet_class_map`` (local,
  ``gs://``, ``s3://``, ``https://``); ``$AUDIOBEAM_YAMNET_BASE_URL`` names a mirror that
  holds both. Never other weights.

Importing this module imports neither TensorFlow nor torch nor pyarrow.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping

import numpy as np

from audiobeam import assets as cache
from audiobeam.bundle import Asset, Common, ModelBundle, Option, Postprocessor, pool_embedding
from audiobeam.errors import AssetError
from models.yamnet.params import DEFAULT_PARAMS, Params
from models.yamnet.stream import YAMNetFrontEnd
from models.yamnet.weights import (CLASS_MAP_FILENAME, WEIGHTS_FILENAME, ClassMap,
                                   read_class_map, validate_weights)

__all__ = [
    "OFFICIAL_WEIGHTS_URL",
    "OFFICIAL_CLASS_MAP_URL",
    "BASE_URL_ENV",
    "CACHE_SUBDIR",
    "CLASS_NAMES_METADATA_KEY",
    "TOP_LABELS",
    "official_urls",
    "YAMNetPostprocessor",
    "YAMNetBundle",
]

OFFICIAL_WEIGHTS_URL = "https://storage.googleapis.com/audioset/yamnet.h5"
OFFICIAL_CLASS_MAP_URL = ("https://raw.githubusercontent.com/tensorflow/models/master/research/"
                          "audioset/yamnet/yamnet_class_map.csv")
BASE_URL_ENV = "AUDIOBEAM_YAMNET_BASE_URL"
"""A mirror (``https://``, ``gs://``, ``s3://`` or a local folder) holding ``yamnet.h5`` and
``yamnet_class_map.csv``; replaces both official URLs."""
CACHE_SUBDIR = "yamnet"
CLASS_NAMES_METADATA_KEY = "audiobeam.yamnet.class_names"
TOP_LABELS = 5


def official_urls() -> tuple[str, str]:
  """(weights URI, class map URI): under ``$AUDIOBEAM_YAMNET_BASE_URL`` if set, else Google's."""
  base = os.environ.get(BASE_URL_ENV)
  if not base:
    return OFFICIAL_WEIGHTS_URL, OFFICIAL_CLASS_MAP_URL
  base = base if base.endswith("/") else base + "/"
  return base + WEIGHTS_FILENAME, base + CLASS_MAP_FILENAME


def _how_to_pass() -> str:
  return (
      "audiobeam needs Google's YAMNet weights and class map and never substitutes others. "
      f"Either allow access to {OFFICIAL_WEIGHTS_URL} and {OFFICIAL_CLASS_MAP_URL} (they are "
      f"then cached in '<cache>/{CACHE_SUBDIR}/', cache = --cache_dir or "
      f"${cache.CACHE_DIR_ENV} or {cache.default_cache_dir()!r}), or fetch both files elsewhere "
      "and pass them: --yamnet_weights PATH/yamnet.h5 --yamnet_class_map "
      "PATH/yamnet_class_map.csv, where PATH is a local directory, gs://bucket/dir, "
      f"s3://bucket/dir or https://host/dir (or set ${BASE_URL_ENV} to such a folder).")


def _validate_class_map(path: str) -> None:
  read_class_map(path)


class YAMNetPostprocessor(Postprocessor):
  """Frame columns ``embedding``/``scores``; clip columns pooled ``embedding``,
  ``mean_scores``, ``max_scores``, ``top_labels``. Holds the class map (loaded once)."""

  def __init__(self, class_map: ClassMap, params: Params = DEFAULT_PARAMS,
               top_labels: int = TOP_LABELS):
    if len(class_map) != params.num_classes:
      raise AssetError(f"expected a class map of {params.num_classes} classes, found "
                       f"{len(class_map)}.")
    self.class_map = class_map
    self.params = params
    self.top_labels = int(top_labels)

  def frame_columns(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"embedding": [N, 1024], "scores": [N, 521]}`` -> the same, float32, checked."""
    columns = {}
    for name, width in (("embedding", self.params.embedding_size),
                        ("scores", self.params.num_classes)):
      value = np.asarray(outputs[name], dtype=np.float32)
      if value.ndim != 2 or value.shape[1] != width:
        raise ValueError(f"expected YAMNet {name} of shape [N, {width}], got {value.shape}")
      columns[name] = value
    if columns["embedding"].shape[0] != columns["scores"].shape[0]:
      raise ValueError(f"expected as many embeddings as score rows, got "
                       f"{columns['embedding'].shape[0]} and {columns['scores'].shape[0]}")
    return columns

  def clip_columns(self, frames: Mapping[str, np.ndarray], common: Common) -> dict[str, Any]:
    """One clip's frame columns -> pooled ``embedding`` float32 [1024] (``--pooling``,
    ``--normalize``), ``mean_scores`` and ``max_scores`` float32 [521] over frames, and
    ``top_labels``: the ``TOP_LABELS`` classes with the highest mean score (ties: lower
    index first) as ``{"index", "display_name", "score"}`` dicts."""
    scores = np.asarray(frames["scores"], dtype=np.float32)                      # [N, 521]
    if scores.ndim != 2 or scores.shape[0] == 0:
      raise ValueError(f"expected scores [N>0, {self.params.num_classes}], got {scores.shape}")
    mean_scores = scores.astype(np.float64).mean(axis=0).astype(np.float32)      # [521]
    order = np.argsort(-mean_scores, kind="stable")[:self.top_labels]
    return {
        "embedding": pool_embedding(frames["embedding"], common.pooling, common.normalize),
        "mean_scores": mean_scores,
        "max_scores": scores.max(axis=0),
        "top_labels": [{"index": int(i), "display_name": self.class_map.display_names[i],
                        "score": float(mean_scores[i])} for i in order],
    }


class YAMNetBundle(ModelBundle):
  """Google's YAMNet: 1024-d embeddings and 521 AudioSet class scores every 0.48 s."""

  name = "yamnet"
  description = ("YAMNet (Google, AudioSet): 1024-d embeddings and 521 class scores for "
                 "0.975 s windows every 0.48 s; exact to the published reference.")
  options = (
      Option("yamnet_weights", "Google's yamnet.h5 (local, gs://, s3:// or https://); default: "
             f"downloaded once from {OFFICIAL_WEIGHTS_URL}", kind="path", metavar="PATH"),
      Option("yamnet_class_map", "yamnet_class_map.csv (local, gs://, s3:// or https://); "
             "default: downloaded once from tensorflow/models", kind="path", metavar="PATH"),
  )
  default_batch_size = 64

  def __init__(self, values: Mapping[str, Any], common: Common,
               params: Params = DEFAULT_PARAMS):
    super().__init__(values, common)
    self.params = params

  @property
  def sample_rate_hz(self) -> int:
    return self.params.sample_rate_hz

  # --- launcher -------------------------------------------------------------------------

  def _resolve(self, name: str, given, default_uri: str, official_uri: str, what: str,
               validate: Callable[[str], None], local_runner: bool) -> Asset:
    uri = os.fspath(given) if given else default_uri
    path, sha256 = cache.localize_validated(
        uri, self.common.cache_dir, what=what, validate=validate,
        official_subdir=CACHE_SUBDIR if uri == official_uri else None,
        how_to_fix=_how_to_pass())
    return Asset(name=name, uri=uri, local_path=path,
                 worker_uri=path if local_runner else uri, sha256=sha256)

  def resolve_assets(self, *, local_runner: bool) -> dict[str, Asset]:
    """``{"weights": Asset, "class_map": Asset}``, validated and hashed. AssetError
    (CheckpointError for bad weights) saying how to pass ``--yamnet_weights`` and
    ``--yamnet_class_map``."""
    weights_uri, class_map_uri = official_urls()
    return {
        "weights": self._resolve(
            "weights", self.values["yamnet_weights"], weights_uri, OFFICIAL_WEIGHTS_URL,
            "YAMNet weights", lambda p: validate_weights(p, self.params), local_runner),
        "class_map": self._resolve(
            "class_map", self.values["yamnet_class_map"], class_map_uri,
            OFFICIAL_CLASS_MAP_URL, "YAMNet class map", _validate_class_map, local_runner),
    }

  def settings(self, assets: Mapping[str, Asset]) -> dict[str, Any]:
    return {
        "model": self.name,
        "weights_sha256": assets["weights"].sha256,
        "class_map_sha256": assets["class_map"].sha256,
        "params": self.params.as_dict(),
        "resampler": self.resampler,
        "pooling": self.common.pooling,
        "normalize": self.common.normalize,
    }

  # --- worker: front end ----------------------------------------------------------------

  def frontend(self) -> YAMNetFrontEnd:
    return YAMNetFrontEnd(self.params)

  def frame_times(self, frame_index: np.ndarray, duration_seconds: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """start = 0.48 i s (``i * 7680 / 16000``, rounded once), end = start + 0.975 s."""
    del duration_seconds  # Padded frames keep their nominal span, as in the reference.
    index = np.asarray(frame_index, dtype=np.int64)
    start = index * self.params.patch_hop_samples / self.params.sample_rate_hz
    return start, start + self.params.patch_span_seconds

  # --- worker: model and postprocessing ---------------------------------------------------

  def load_model(self, local_assets: Mapping[str, str], device: str
                 ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The network for ``common.backend`` on ``device`` (auto/cpu/gpu): patches float32
    [N, 96, 64] -> ``{"embedding": [N, 1024], "scores": [N, 521]}``. Thread-safe."""
    path = local_assets["weights"]
    if self.common.backend == "torch":
      from audiobeam.devices import torch_device  # pylint: disable=import-outside-toplevel
      from models.yamnet.torch_model import YAMNetTorch

      return YAMNetTorch.from_h5(path, self.params, device=torch_device(device),
                                 allow_tf32=self.common.allow_tf32)
    from audiobeam.devices import tensorflow_device  # pylint: disable=import-outside-toplevel
    from models.yamnet.model import YAMNetModel

    return YAMNetModel.from_h5(path, self.params, device=tensorflow_device(device),
                               allow_tf32=self.common.allow_tf32)

  def load_postprocessor(self, local_assets: Mapping[str, str]) -> YAMNetPostprocessor:
    return YAMNetPostprocessor(read_class_map(local_assets["class_map"], self.params.num_classes),
                               self.params)

  # --- outputs ----------------------------------------------------------------------------

  def frame_fields(self) -> list:
    import pyarrow as pa

    return [pa.field("embedding", pa.list_(pa.float32(), self.params.embedding_size)),
            pa.field("scores", pa.list_(pa.float32(), self.params.num_classes))]

  def clip_fields(self) -> list:
    import pyarrow as pa

    label = pa.struct([("index", pa.int32()), ("display_name", pa.string()),
                       ("score", pa.float32())])
    return [pa.field("embedding", pa.list_(pa.float32(), self.params.embedding_size)),
            pa.field("mean_scores", pa.list_(pa.float32(), self.params.num_classes)),
            pa.field("max_scores", pa.list_(pa.float32(), self.params.num_classes)),
            pa.field("top_labels", pa.list_(label))]

  def schema_metadata(self, assets: Mapping[str, Asset]) -> dict[str, str]:
    """The 521 display names, as a JSON list, under ``audiobeam.yamnet.class_names``."""
    class_map = read_class_map(assets["class_map"].local_path, self.params.num_classes)
    return {CLASS_NAMES_METADATA_KEY: json.dumps(list(class_map.display_names))}
