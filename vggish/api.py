"""VGGish as a library: waveform (or file) in, embeddings out, no Beam.

One "bundle" object holds what an embedding needs -- params, model, PCA file,
resampler -- and says where its weights came from::

    from vggish import VGGish
    model = VGGish.load()                      # official weights, downloaded once
    out = model.embed(waveform, sample_rate_hz=44100)
    out.raw        # float32 [N, 128]  fc2 output before any activation
    out.quantized  # uint8   [N, 128]  PCA + clip + quantise (AudioSet format)
    out.start_seconds  # float64 [N]   patch i starts at i * 0.96 s

The chain is the reference one: mono = mean of channels, resample to 16 kHz
(resampy's kaiser_best by default), float64 log-mel, 96x64 patches, VGGish, PCA,
uint8 -- see ``vggish.features``, ``vggish.model`` and ``vggish.postprocess``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vggish.assets import Assets, resolve_assets
from vggish.params import DEFAULT_PARAMS, Params
from vggish.postprocess import PCAParams, postprocess
from audiobeam.resample import DEFAULT_RESAMPLER, _check_method
from vggish.stream import SHORT_CLIP_POLICIES, iter_patches, waveform_to_patches

__all__ = ["Embeddings", "VGGish", "SHORT_CLIP_POLICIES"]


@dataclasses.dataclass(frozen=True, eq=False)
class Embeddings:
  """Per-patch outputs: raw float32 [N, 128], quantized uint8 [N, 128], start_seconds f64 [N]."""

  raw: np.ndarray
  quantized: np.ndarray
  start_seconds: np.ndarray

  def __len__(self) -> int:
    return self.raw.shape[0]


class VGGish:
  """The VGGish bundle. Build with ``VGGish.load``; ``embed`` and ``embed_file`` are pure."""

  def __init__(self, model, pca: PCAParams, params: Params = DEFAULT_PARAMS,
               resampler: str = DEFAULT_RESAMPLER, assets: Assets | None = None):
    _check_method(resampler)
    self.model = model
    self.pca = pca
    self.params = params
    self.resampler = resampler
    self.assets = assets

  @classmethod
  def load(cls, checkpoint: str | None = None, pca_params: str | None = None,
           params: Params = DEFAULT_PARAMS, resampler: str = DEFAULT_RESAMPLER,
           cache_dir: str | None = None) -> "VGGish":
    """Resolves the weights (local, gs://, s3://, http(s) or the official download) and loads.

    ``None`` for ``checkpoint``/``pca_params`` means Google's published file, downloaded
    once into the cache (see ``vggish.assets``). Raises AssetError when they cannot be
    had -- there is never a fallback to other weights.
    """
    from vggish.model import VGGishModel

    assets = resolve_assets(checkpoint, pca_params, cache_dir=cache_dir, params=params)
    model = VGGishModel.from_checkpoint(assets.checkpoint_path, params)
    return cls(model, PCAParams.load(assets.pca_params_path, params), params, resampler, assets)

  @property
  def sample_rate_hz(self) -> int:
    """The model's input rate (16000); other rates are resampled."""
    return self.params.sample_rate_hz

  def patches(self, waveform: np.ndarray, sample_rate_hz: int,
              short_clips: str = "reference") -> np.ndarray:
    """Waveform [n] or [n, channels] (floats in [-1, 1]) at any rate -> patches float32
    [N, 96, 64], through the same front end as the pipeline (``vggish.stream``)."""
    return waveform_to_patches(waveform, sample_rate_hz, self.params, self.resampler, short_clips)

  def embed_patches(self, patches: np.ndarray) -> Embeddings:
    """Log-mel patches [N, 96, 64] -> Embeddings (works for N = 0)."""
    raw = self.model(patches)                                         # [N, 128] f32
    quantized = postprocess(raw, self.pca, self.params)               # [N, 128] u8
    start_seconds = np.arange(raw.shape[0], dtype=np.float64) * self.params.patch_hop_seconds
    return Embeddings(raw, quantized, start_seconds)

  def embed(self, waveform: np.ndarray, sample_rate_hz: int,
            short_clips: str = "reference") -> Embeddings:
    """Waveform [n] or [n, channels] (floats in [-1, 1]) at ``sample_rate_hz`` -> Embeddings.

    Under ``short_clips="reference"`` audio shorter than 0.975 s raises TooShortError
    (the reference yields nothing); ``"pad"`` zero-pads it to one patch.
    """
    return self.embed_patches(self.patches(waveform, sample_rate_hz, short_clips))

  def embed_file(self, path, short_clips: str = "reference") -> Embeddings:
    """Decodes an audio file (path, URI or binary file object) and embeds it.

    Decoding is streamed (``vggish.stream.iter_patches``): memory holds the patches, not
    the decoded audio, so multi-hour files are fine.
    """
    from audiobeam.audio import open_audio

    with open_audio(path) as stream:
      blocks = [block.patches for block in iter_patches(
          stream, self.params, self.resampler, short_clips=short_clips)]
    return self.embed_patches(np.concatenate(blocks, axis=0))
