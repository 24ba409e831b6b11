"""``CLMRBundle``: CLMR's music representation for the generic pipeline (``--model clmr``).

What it is for: self-supervised music embeddings (CLMR, Spijkervet and Burgoyne 2021:
a SampleCNN pre-trained contrastively on MagnaTagATune) for every 2.68 s of every file,
in batches across files, instead of one file at a time.

* input: 22050 Hz mono (``common.resampler``; by default ``kaiser_best``, exactly
  resampy's filter -- CLMR itself resampled with ffmpeg, Towhee with resampy);
* front end: raw 59049-sample windows, hop ``clmr_hop_seconds`` (default: one window,
  non-overlapping), trailing partial window dropped, short files per ``short_clips``
  (``models.clmr.frontend``); window ``i`` starts at ``i * hop`` and ends 2.678 s later
  (clipped to the file for a padded short file);
* model: the SampleCNN encoder, 512-d representation before CLMR's projection head
  (``models.clmr.network``);
* outputs: frames ``embedding`` float32[512]; clips the pooled ``embedding``
  (``common.pooling`` mean/max, ``common.normalize``).

Importing this module imports no torch; ``resolve_assets`` (validation) and
``load_model`` do.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import numpy as np

from audiobeam import assets as asset_lib
from audiobeam.bundle import (Asset, Common, FrontEnd, ModelBundle, Option, Postprocessor,
                              pool_embedding, window_times)
from audiobeam.errors import AssetError
from models.clmr.checkpoint import HOW_TO_FIX, validate_checkpoint
from models.clmr.frontend import CLMRFrontEnd
from models.clmr.params import CLMRParams

__all__ = ["CLMRBundle", "CLMRPostprocessor"]


class CLMRPostprocessor(Postprocessor):
  """Frame embeddings as the encoder gives them; the clip embedding pooled."""

  def frame_columns(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"embedding": np.asarray(outputs["embedding"], dtype=np.float32)}

  def clip_columns(self, frames: Mapping[str, np.ndarray], common: Common) -> dict[str, Any]:
    return {"embedding": pool_embedding(frames["embedding"], common.pooling, common.normalize)}


class CLMRBundle(ModelBundle):
  """CLMR's SampleCNN encoder on whole files. See the module docstring."""

  name = "clmr"
  description = ("CLMR (SampleCNN pre-trained on MagnaTagATune, clmr_checkpoint_10000.pt): "
                 "512-d music embeddings per 59049-sample window at 22.05 kHz")
  options = (
      Option("clmr_checkpoint", "CLMR checkpoint: clmr_checkpoint_10000.pt or a Lightning "
             ".ckpt (local, gs://, s3:// or https://)", kind="path", metavar="PATH"),
      Option("clmr_hop_seconds", "seconds between CLMR windows (default: one window, "
             "59049/22050 = 2.678 s, non-overlapping)", kind="float", default=None),
  )
  default_batch_size = 32

  def __init__(self, values: Mapping[str, Any], common: Common):
    super().__init__(values, common)
    self.params = CLMRParams.from_hop_seconds(self.values["clmr_hop_seconds"])

  # --- identity ---------------------------------------------------------------------
  @property
  def sample_rate_hz(self) -> int:
    return self.params.sample_rate_hz

  # --- launcher ---------------------------------------------------------------------
  def resolve_assets(self, *, local_runner: bool) -> dict[str, Asset]:
    uri = self.values["clmr_checkpoint"]
    if not uri:
      raise AssetError(f"--model clmr needs its weights and never substitutes others: pass "
                       f"--clmr_checkpoint PATH. {HOW_TO_FIX}")
    uri = os.fspath(uri)
    local, sha256 = asset_lib.localize_validated(uri, self.common.cache_dir,
                                                 what="CLMR checkpoint",
                                                 validate=validate_checkpoint,
                                                 how_to_fix=HOW_TO_FIX)
    return {"checkpoint": Asset(name="checkpoint", uri=uri, local_path=local,
                                worker_uri=local if local_runner else uri, sha256=sha256)}

  def settings(self, assets: Mapping[str, Asset]) -> dict[str, Any]:
    return {
        "model": self.name,
        "checkpoint_sha256": assets["checkpoint"].sha256,
        "sample_rate_hz": self.sample_rate_hz,
        "resampler": self.resampler,
        "window_samples": self.params.window_samples,
        "hop_samples": self.params.hop,
        "embedding": "encoder (512-d, before the projection head)",
        "short_clips": self.common.short_clips,
        "pooling": self.common.pooling,
        "normalize": self.common.normalize,
        "allow_tf32": self.common.allow_tf32,
    }

  # --- worker: front end ------------------------------------------------------------
  def frontend(self) -> FrontEnd:
    return CLMRFrontEnd(self.params, self.common.short_clips)

  def frame_times(self, frame_index: np.ndarray, duration_seconds: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    return window_times(frame_index, self.params.hop, self.params.sample_rate_hz,
                        self.params.window_seconds, duration_seconds)

  # --- worker: model and postprocessing ---------------------------------------------
  def load_model(self, local_assets: Mapping[str, str], device: str
                 ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    from audiobeam import devices  # pylint: disable=import-outside-toplevel
    from models.clmr.model import load_clmr

    torch_device = devices.torch_device(device)
    devices.set_torch_tf32(self.common.allow_tf32)
    return load_clmr(local_assets["checkpoint"], torch_device, self.params)

  def load_postprocessor(self, local_assets: Mapping[str, str]) -> Postprocessor:
    del local_assets
    return CLMRPostprocessor()

  # --- outputs ----------------------------------------------------------------------
  def frame_fields(self) -> list:
    import pyarrow as pa

    return [pa.field("embedding", pa.list_(pa.float32(), self.params.embedding_size))]

  def clip_fields(self) -> list:
    import pyarrow as pa

    return [pa.field("embedding", pa.list_(pa.float32(), self.params.embedding_size))]
