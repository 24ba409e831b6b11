"""VGGish as a model bundle (``audiobeam.bundle.ModelBundle``) for the generic pipeline.

Flags (historical names, kept): ``--checkpoint``, ``--pca_params``, ``--hop_seconds``.
Outputs under ``<output>/vggish/``: ``frames/`` (``raw_embedding`` float32[128], the fc2
output before any activation; ``audio_embedding`` uint8[128], PCA + clip + quantize in
the AudioSet format), ``clips/`` (``embedding``: the frames' ``raw_embedding`` pooled)
and ``tfrecord/`` (AudioSet SequenceExamples, ``--format tfrecord``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from audiobeam.bundle import Asset, Common, Extra, ModelBundle, Option, Postprocessor, pool_embedding
from audiobeam.errors import ConfigError
from vggish.params import DEFAULT_PARAMS, Params

__all__ = ["VGGishBundle"]


def _float_hop(value) -> float:
  return DEFAULT_PARAMS.patch_hop_seconds if value is None else float(value)


class _VGGishPostprocessor(Postprocessor):

  def __init__(self, pca, params: Params):
    self._pca = pca
    self._params = params

  def frame_columns(self, outputs):
    from vggish.postprocess import postprocess  # pylint: disable=import-outside-toplevel
    raw = np.asarray(outputs["raw_embedding"], dtype=np.float32)          # [N, 128]
    return {"raw_embedding": raw, "audio_embedding": postprocess(raw, self._pca, self._params)}

  def clip_columns(self, frames, common: Common):
    return {"embedding": pool_embedding(frames["raw_embedding"], common.pooling, common.normalize)}


class VGGishBundle(ModelBundle):
  """Google's VGGish: 0.96 s log-mel patches -> 128-d embeddings (raw and AudioSet uint8)."""

  name = "vggish"
  description = ("Google's VGGish (AudioSet): a 128-d embedding per 0.96 s, raw and PCA + "
                 "uint8 quantized as in the AudioSet release")
  options = (
      Option("checkpoint", "VGGish checkpoint (vggish_model.ckpt; TF1 V1 or V2); default: "
             "download Google's", kind="path", metavar="PATH"),
      Option("pca_params", "PCA parameters (vggish_pca_params.npz); default: download "
             "Google's", kind="path", metavar="PATH"),
      Option("hop_seconds", "VGGish: seconds between frame starts, a multiple of 0.01 "
             f"(default: {DEFAULT_PARAMS.patch_hop_seconds}, the reference's non-overlapping "
             "patches)", kind="float", default=DEFAULT_PARAMS.patch_hop_seconds, metavar="S"),
  )
  default_batch_size = 64

  def __init__(self, values: Mapping[str, Any], common: Common):
    super().__init__(values, common)
    hop_seconds = _float_hop(self.values.get("hop_seconds"))
    try:
      self.params = dataclasses.replace(DEFAULT_PARAMS, patch_hop_seconds=hop_seconds)
    except ConfigError as error:
      raise ConfigError(f"--hop_seconds {hop_seconds!r}: {error}") from error

  @property
  def sample_rate_hz(self) -> int:
    return self.params.sample_rate_hz

  # --- launcher ---

  def resolve_assets(self, *, local_runner: bool) -> dict[str, Asset]:
    from vggish import assets  # pylint: disable=import-outside-toplevel
    resolved = assets.resolve_assets(self.values.get("checkpoint"), self.values.get("pca_params"),
                                     cache_dir=self.common.cache_dir, params=self.params)
    return {
        "checkpoint": Asset("checkpoint", resolved.checkpoint_uri, resolved.checkpoint_path,
                            resolved.checkpoint_path if local_runner else resolved.checkpoint_uri,
                            resolved.checkpoint_sha256),
        "pca_params": Asset("pca_params", resolved.pca_params_uri, resolved.pca_params_path,
                            resolved.pca_params_path if local_runner else resolved.pca_params_uri,
                            resolved.pca_params_sha256),
    }

  def settings(self, assets: Mapping[str, Asset]) -> dict[str, Any]:
    return {
        "model": self.name,
        "checkpoint_sha256": assets["checkpoint"].sha256,
        "pca_params_sha256": assets["pca_params"].sha256,
        "params": self.params.as_dict(),
        "resampler": self.common.resampler,
        "short_clips": self.common.short_clips,
        "pooling": self.common.pooling,
        "normalize": self.common.normalize,
    }

  def localize(self, asset: Asset) -> str:
    """The checkpoint may be a V2 prefix (several files): VGGish's own asset reader."""
    from vggish import assets  # pylint: disable=import-outside-toplevel
    from audiobeam.errors import AssetError  # pylint: disable=import-outside-toplevel
    path = assets.localize(asset.worker_uri, cache_dir=self.common.cache_dir, kind=asset.name,
                           params=self.params)
    found = assets.sha256_of(path, checkpoint=asset.name == "checkpoint")
    if found != asset.sha256:
      raise AssetError(
          f"expected the VGGish {asset.name} at {path} to have sha256 {asset.sha256} (what the "
          f"launcher resolved), found {found}; the file changed during the run: re-run.")
    return path

  # --- worker ---

  def frontend(self):
    from vggish.stream import VGGishFrontEnd  # pylint: disable=import-outside-toplevel
    return VGGishFrontEnd(self.params, self.common.short_clips)

  def frame_times(self, frame_index: np.ndarray, duration_seconds: float):
    start = np.asarray(frame_index, dtype=np.float64) * self.params.patch_hop_seconds
    return start, start + self.params.patch_span_seconds

  def load_model(self, local_assets: Mapping[str, str], device: str):
    """``--backend tf`` (default): the TensorFlow network; ``torch``: the PyTorch one (on
    ``cuda`` when ``--device`` says so or ``auto`` finds a GPU). TF32 off unless
    ``--allow_tf32``."""
    allow_tf32 = self.common.allow_tf32
    if self.common.backend == "torch":
      from vggish.torch_model import VGGishTorchModel  # pylint: disable=import-outside-toplevel
      model = VGGishTorchModel.from_checkpoint(local_assets["checkpoint"], self.params,
                                               device=device, allow_tf32=allow_tf32)
    else:
      from audiobeam.devices import tensorflow_device  # pylint: disable=import-outside-toplevel
      from vggish.model import VGGishModel  # pylint: disable=import-outside-toplevel
      model = VGGishModel.from_checkpoint(local_assets["checkpoint"], self.params,
                                          allow_tf32=allow_tf32, device=tensorflow_device(device))

    def call(patches: np.ndarray) -> dict[str, np.ndarray]:
      return {"raw_embedding": model(patches)}

    return call

  def load_postprocessor(self, local_assets: Mapping[str, str]) -> Postprocessor:
    from vggish.postprocess import PCAParams  # pylint: disable=import-outside-toplevel
    return _VGGishPostprocessor(PCAParams.load(local_assets["pca_params"], self.params),
                                self.params)

  # --- outputs ---

  def frame_fields(self) -> list:
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    width = self.params.embedding_size
    return [pa.field("raw_embedding", pa.list_(pa.float32(), width), nullable=False),
            pa.field("audio_embedding", pa.list_(pa.uint8(), width), nullable=False)]

  def clip_fields(self) -> list:
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    return [pa.field("embedding", pa.list_(pa.float32(), self.params.embedding_size),
                     nullable=False)]

  def extras(self, formats: Sequence[str]) -> list[Extra]:
    if "tfrecord" not in formats:
      return []
    from vggish.audioset import sequence_example  # pylint: disable=import-outside-toplevel
    return [Extra("tfrecord", "tfrecord", to_record=sequence_example)]

  def embedding_column(self) -> str:
    return "raw_embedding"
