"""Any model as a library: a file (or waveform) in, the pipeline's rows out, no Beam.

``Embedder`` runs one model's bundle exactly as the pipeline does -- the same streaming
driver, front end, model call and postprocessing -- one file at a time::

    from audiobeam.api import Embedder
    yamnet = Embedder("yamnet", yamnet_weights="yamnet.h5", yamnet_class_map="map.csv")
    out = yamnet.embed_file("dog.wav")
    out.frame_columns["scores"]     # float32 [N, 521]
    out.clip_columns["top_labels"]  # [{index, display_name, score}, ...]
    out.start_seconds               # float64 [N]

Values are the model's flags without ``--`` (``checkpoint``, ``yamnet_weights``,
``clap_checkpoint``, ``labels``, ...); shared settings (``pooling``, ``resampler``,
``short_clips``, ``device``, ...) go in ``common``. Search embeds a query with the
settings an output was made with through ``explore.search.bundle_from_provenance`` and
``Embedder(bundle)``. VGGish also has its own library, ``vggish.VGGish``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from audiobeam import registry
from audiobeam.bundle import Common, ModelBundle

__all__ = ["Embedder", "FileEmbedding"]


@dataclasses.dataclass(frozen=True, eq=False)
class FileEmbedding:
  """One file through one model: what its ``frames/`` and ``clips/`` rows hold.

  ``frame_columns``: the model's frame columns, each [N, ...]; ``clip_columns``: its clip
  columns; ``start_seconds``/``end_seconds`` float64 [N]; ``duration_seconds`` of the
  decoded source; ``padded`` as in ``clips/``.
  """

  frame_columns: dict[str, np.ndarray]
  clip_columns: dict[str, Any]
  start_seconds: np.ndarray
  end_seconds: np.ndarray
  duration_seconds: float
  padded: bool

  def __len__(self) -> int:
    return int(self.start_seconds.shape[0])


class Embedder:
  """One model, loaded once; ``embed_file`` is the pipeline's computation for one file."""

  def __init__(self, model: str | ModelBundle, common: Common | None = None, *,
               batch_size: int | None = None, **values: Any):
    if isinstance(model, ModelBundle):
      bundle = model
    else:
      bundle_class = registry.bundle_class(model)
      names = [option.name for option in bundle_class.options]
      unknown = sorted(set(values) - set(names))
      if unknown:
        from audiobeam.errors import ConfigError  # pylint: disable=import-outside-toplevel
        raise ConfigError(f"expected options of {model} ({', '.join(names)}), found "
                          f"{', '.join(unknown)}")
      bundle = bundle_class(values, common or Common())
    self.bundle = bundle
    self.assets = bundle.resolve_assets(local_runner=True)
    local = {name: asset.local_path for name, asset in self.assets.items()}
    self._model = bundle.load_model(local, bundle.common.device)
    self._postprocessor = bundle.load_postprocessor(local)
    self.batch_size = batch_size or bundle.default_batch_size

  def settings_sha256(self) -> str:
    """The settings hash this embedder's rows would carry (compare with an output's)."""
    from transforms.provenance import settings_sha256  # pylint: disable=import-outside-toplevel
    return settings_sha256(self.bundle.settings(self.assets))

  def _call(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(inputs), self.batch_size):
      batch = np.stack(inputs[start:start + self.batch_size]).astype(np.float32, copy=False)
      for name, value in self._model(batch).items():
        outputs.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(parts) for name, parts in outputs.items()}

  def embed_file(self, source) -> FileEmbedding:
    """A path, URI or binary file object -> the rows the pipeline would write for it.

    Raises the pipeline's ``InputError``s (too short, corrupt, ...) instead of an errors
    row.
    """
    from audiobeam.audio import open_audio  # pylint: disable=import-outside-toplevel
    from audiobeam.stream import Feed, StreamResult, stream_inputs  # pylint: disable=import-outside-toplevel

    bundle = self.bundle
    feed = Feed.for_bundle(bundle)
    feeds = {bundle.name: feed}
    result = StreamResult()
    inputs: list[np.ndarray] = []
    with open_audio(source) as stream:
      for _, block in stream_inputs(stream, feeds, result):
        inputs.extend(block.inputs)
    if bundle.name in result.errors:
      raise result.errors[bundle.name]
    frame_columns, clip_columns, start, end = bundle.file_rows(
        self._postprocessor, self._call(inputs), len(inputs), result.duration_seconds)
    return FileEmbedding(frame_columns, clip_columns, start, end, result.duration_seconds,
                         feed.frontend.padded)
