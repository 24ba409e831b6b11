"""The model interface: one ``ModelBundle`` per model; the pipeline talks only to it.

In the spirit of torchaudio's pipeline bundles, a model package provides one small
class that says everything the generic pipeline needs:

* who it is: ``name`` (the ``--model`` value and the output folder ``<output>/<name>/``),
  ``sample_rate_hz`` and ``resampler`` (its input rate and how to reach it);
* its flags: ``options`` (``Option`` rows; every flag of a model is named
  ``--<name>_...``, except VGGish's historical ``--checkpoint``/``--pca_params``/
  ``--hop_seconds`` and CLAP's ``--labels``...), validated in ``__init__``;
* its assets: ``resolve_assets`` (launcher: find/download, validate, sha256, never a
  fallback to other weights) -> ``{name: Asset}``;
* what determines its numbers: ``settings`` (hashed into ``settings_sha256``, recorded
  in the provenance);
* its streaming front end: ``frontend()`` -> a fresh ``FrontEnd`` per file, fed mono
  float64 samples at ``sample_rate_hz``, giving ``InputBlock``s of model inputs;
  ``frame_times`` gives each input's start/end seconds;
* its model: ``load_model(local_assets, device)`` -> a callable ``[N, ...] float32 ->
  {output name: [N, ...]}`` used by the one generic ModelHandler (cross-file batching,
  per-item failure isolation, finite checks in and out: ``transforms.embed``);
* its postprocessing: ``load_postprocessor(local_assets)`` -> ``Postprocessor`` that turns
  one clip's stacked model outputs into frame and clip columns;
* its outputs: ``frame_fields`` / ``clip_fields`` (Arrow fields of its own columns; the
  generic columns -- uri, frame_index, times, durations, ids -- are added around them by
  ``transforms.records``) and ``extras`` (further formats: VGGish's AudioSet TFRecord,
  CLAP's zero-shot labels).

A bundle instance is configured (its option values are fixed at construction), is
pickled to the workers, and must be cheap to import and to construct: no TensorFlow or
torch import, no file access, no download until ``resolve_assets``/``load_model``.
Adding a model is its own package plus one line in ``audiobeam.registry``.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from audiobeam.errors import ConfigError
from audiobeam.resample import RESAMPLERS

__all__ = [
    "Option",
    "Common",
    "Asset",
    "InputBlock",
    "FrontEnd",
    "HopBuffer",
    "Extra",
    "Postprocessor",
    "ModelBundle",
    "DEVICES",
    "BACKENDS",
    "pool_embedding",
    "POOLINGS",
    "NORMALIZATIONS",
    "SHORT_CLIP_POLICIES",
    "check_choice",
    "window_times",
]

DEVICES = ("auto", "cpu", "gpu")
BACKENDS = ("tf", "torch")
"""``--backend``: for models with both implementations (VGGish, YAMNet); torch-only
models (CLAP, AST, CLMR) ignore it."""
POOLINGS = ("mean", "max")
NORMALIZATIONS = ("none", "l2")
SHORT_CLIP_POLICIES = ("reference", "pad")


def window_times(frame_index: np.ndarray, hop_samples: int, sample_rate_hz: int,
                 span_seconds: float, duration_seconds: float) -> tuple[np.ndarray, np.ndarray]:
  """Start and end seconds (float64) of windows ``hop_samples`` apart, each
  ``span_seconds`` long and cut at the end of the file (a padded window ends there)."""
  start = np.asarray(frame_index, dtype=np.int64) * hop_samples / sample_rate_hz
  end = np.maximum(np.minimum(start + span_seconds, duration_seconds), start)
  return start.astype(np.float64), end.astype(np.float64)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> Any:
  """``value`` if it is one of ``choices``, else a ``ConfigError`` naming them all."""
  if value not in choices:
    raise ConfigError(f"expected {name} to be one of {', '.join(choices)}, found {value!r}.")
  return value


@dataclasses.dataclass(frozen=True)
class Option:
  """One model-specific flag / config key.

  ``name`` is the flag without ``--`` and the YAML key; ``kind`` is one of ``str``,
  ``path`` (a local path or URI: redacted in records, must be remote for remote runners),
  ``float``, ``int``, ``bool``, ``choice`` (one of ``choices``) or ``list`` (a
  comma-separated string or a YAML list of strings). ``default`` is the value when the
  flag is absent (``None``: not given). Conversion and type errors are reported by the
  generic parser; range and cross-option checks belong to the bundle's ``__init__``.
  """

  name: str
  help: str
  kind: str = "str"
  default: Any = None
  choices: tuple[str, ...] = ()
  metavar: str | None = None


@dataclasses.dataclass(frozen=True)
class Common:
  """Settings every model sees (flags shared by all models)."""

  resampler: str = "kaiser_best"
  short_clips: str = "reference"
  pooling: str = "mean"
  normalize: str = "none"
  device: str = "auto"
  backend: str = "tf"
  cache_dir: str | None = None
  allow_tf32: bool = False

  def __post_init__(self):
    for name, choices in (("resampler", RESAMPLERS), ("short_clips", SHORT_CLIP_POLICIES),
                          ("pooling", POOLINGS), ("normalize", NORMALIZATIONS),
                          ("device", DEVICES), ("backend", BACKENDS)):
      check_choice(f"--{name}", getattr(self, name), choices)


@dataclasses.dataclass(frozen=True)
class Asset:
  """One resolved asset.

  ``uri``: what the user gave (or the official URL); ``local_path``: the launcher's
  validated local copy; ``worker_uri``: where workers load it from (``local_path`` for
  local runners, ``uri`` for remote ones, which localize it into their own cache);
  ``sha256``: of its bytes (a folder: see ``audiobeam.assets.sha256_of_directory``),
  checked again by every worker; ``kind``: ``file`` or ``directory``; ``files``: for a
  directory, the file names that make up the asset (and that its sha256 covers).
  """

  name: str
  uri: str
  local_path: str
  worker_uri: str
  sha256: str
  kind: str = "file"
  files: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class InputBlock:
  """Consecutive model inputs of one file: ``inputs[j]`` is frame ``start_index + j``.

  ``inputs``: float32 ``[k, *input_shape]`` (e.g. VGGish log-mel patches [k, 96, 64],
  CLAP 10 s windows [k, 480000]).
  """

  start_index: int
  inputs: np.ndarray


class HopBuffer:
  """The part of a streamed signal that front ends still need, for frames cut every
  ``hop`` samples: ``samples`` starts at the next frame's first sample. ``append`` adds
  what arrives; ``consume(n)`` drops the first ``n`` samples once frames were cut from
  them (when ``n`` passes the end, as with a hop longer than a frame, the next ``n - len``
  samples to arrive are dropped too). Memory stays bounded by one frame plus one block."""

  def __init__(self, dtype=np.float64):
    self._dtype = dtype
    self.samples = np.zeros(0, dtype=dtype)
    self._skip = 0

  def append(self, samples: np.ndarray) -> None:
    if self._skip:
      dropped = min(self._skip, samples.shape[0])
      samples, self._skip = samples[dropped:], self._skip - dropped
    if samples.shape[0]:
      self.samples = np.concatenate([self.samples, samples]) if self.samples.size else samples

  def consume(self, count: int) -> None:
    if count >= self.samples.shape[0]:
      self._skip = count - self.samples.shape[0]
      self.samples = np.zeros(0, dtype=self._dtype)
    else:
      self.samples = self.samples[count:].copy()


class FrontEnd(abc.ABC):
  """Turns one file's mono samples at the model rate into model inputs, incrementally.

  ``push`` may be called many times (blocks of any length, in order); ``finish`` once at
  the end of the file. The concatenated inputs must equal those of the whole-file
  computation. Errors are ``audiobeam.errors.InputError``s (they become errors rows of
  this model only).
  """

  num_frames: int = 0
  padded: bool = False

  @abc.abstractmethod
  def push(self, samples: np.ndarray) -> Iterator[InputBlock]:
    """samples: float64 [k] mono at the bundle's rate -> the inputs completed by them."""

  @abc.abstractmethod
  def finish(self, duration_seconds: float) -> Iterator[InputBlock]:
    """End of file (``duration_seconds`` of decoded source audio): the remaining inputs
    (padded ones, per the model's policy), or ``TooShortError`` when the file gives none."""


@dataclasses.dataclass(frozen=True)
class Extra:
  """A further output of a model, under ``<output>/<model>/<name>/``.

  ``kind``: ``"tfrecord"`` (``to_record(clip) -> bytes`` per clip, written as
  uncompressed TFRecord) or ``"parquet"`` (``to_table(clips, schema) -> pa.Table`` for a
  batch of clips, with ``fields`` giving the schema's columns).
  """

  name: str
  kind: str
  to_record: Callable[[Any], bytes] | None = None
  to_table: Callable[[Sequence[Any], Any], Any] | None = None
  fields: Callable[[], list] | None = None


class Postprocessor(abc.ABC):
  """Per worker: one clip's stacked model outputs -> its frame and clip columns.

  Loaded once per worker (``ModelBundle.load_postprocessor``): PCA parameters, class
  names, label text embeddings...
  """

  @abc.abstractmethod
  def frame_columns(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """outputs: ``{name: [N, ...]}`` of one clip in frame order -> ``{column: [N, ...]}``
    for every field of ``frame_fields()``."""

  @abc.abstractmethod
  def clip_columns(self, frames: Mapping[str, np.ndarray], common: Common) -> dict[str, Any]:
    """frame columns of one clip -> ``{column: value}`` for every field of
    ``clip_fields()`` (the pooled ``embedding`` among them; see ``pool_embedding``). A
    model that pools its own way (CLAP: mean, then L2 always) also returns ``pooling``
    and ``normalize`` to say what it did; otherwise ``common``'s values are recorded."""


class ModelBundle(abc.ABC):
  """One model, configured. Subclasses set the class attributes and implement the rest."""

  name: ClassVar[str]
  description: ClassVar[str] = ""
  options: ClassVar[tuple[Option, ...]] = ()
  default_batch_size: ClassVar[int] = 32

  def __init__(self, values: Mapping[str, Any], common: Common):
    """``values``: this model's option values; options left out take their defaults.
    Path options must be None or a non-empty path or URI. Subclasses check the rest and
    raise ``ConfigError`` for bad values."""
    self.values = {**{option.name: option.default for option in self.options}, **values}
    for option in self.options:
      value = self.values[option.name]
      if option.kind == "path" and value is not None and not (
          isinstance(value, (str, os.PathLike)) and os.fspath(value)):
        raise ConfigError(f"expected --{option.name} to be a path or URI, found {value!r}.")
    self.common = common

  # --- identity -------------------------------------------------------------------------

  @property
  @abc.abstractmethod
  def sample_rate_hz(self) -> int:
    """The model's input rate; decoded audio is resampled to it."""

  @property
  def resampler(self) -> str:
    """How audio reaches ``sample_rate_hz`` (``audiobeam.resample.RESAMPLERS``)."""
    return self.common.resampler

  @property
  def resample_length_rule(self) -> str:
    """How many samples resampling gives (``audiobeam.resample.LENGTH_RULES``): resampy's
    ``int`` length by default; CLAP's reference (librosa) rounds up."""
    return "resampy"

  # --- launcher -------------------------------------------------------------------------

  @abc.abstractmethod
  def resolve_assets(self, *, local_runner: bool) -> dict[str, Asset]:
    """Finds, downloads (into ``common.cache_dir``), validates and hashes the assets.
    Raises ``AssetError`` saying what to pass; never substitutes other weights."""

  @abc.abstractmethod
  def settings(self, assets: Mapping[str, Asset]) -> dict[str, Any]:
    """JSON-able: everything that determines this model's output values (asset sha256s,
    front-end params, resampler, policies, pooling) and nothing else."""

  def localize(self, asset: Asset) -> str:
    """Worker side: a local path for ``asset`` (``worker_uri``, copied once into the cache
    when remote) whose sha256 is the launcher's; ``AssetError`` if it changed."""
    from audiobeam import assets as cache  # pylint: disable=import-outside-toplevel
    from audiobeam.errors import AssetError  # pylint: disable=import-outside-toplevel
    if asset.kind == "directory":
      path = cache.localize_directory(asset.worker_uri, self.common.cache_dir,
                                      what=f"{self.name} {asset.name}", required=asset.files)
      found = cache.sha256_of_directory(path, asset.files or None)
    else:
      path = cache.localize(asset.worker_uri, self.common.cache_dir,
                            what=f"{self.name} {asset.name}")
      found = cache.sha256_of_files([path])
    if found != asset.sha256:
      raise AssetError(
          f"expected the {self.name} {asset.name} at {path} to have sha256 {asset.sha256} "
          f"(what the launcher resolved), found {found}; the file changed during the run: "
          "re-run.")
    return path

  # --- worker: front end -------------------------------------------------------------------

  @abc.abstractmethod
  def frontend(self) -> FrontEnd:
    """A fresh front end for one file."""

  @abc.abstractmethod
  def frame_times(self, frame_index: np.ndarray, duration_seconds: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """int [N] -> (start_seconds float64 [N], end_seconds float64 [N])."""

  # --- worker: model and postprocessing ---------------------------------------------------

  @abc.abstractmethod
  def load_model(self, local_assets: Mapping[str, str], device: str
                 ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Loads the model once per worker. ``local_assets``: asset name -> local path (sha256
    already checked). The callable maps float32 ``[N, *input_shape]`` to
    ``{output: [N, ...]}`` and is thread-safe; N may be 1."""

  @abc.abstractmethod
  def load_postprocessor(self, local_assets: Mapping[str, str]) -> Postprocessor:
    """Loads what postprocessing needs, once per worker."""

  def file_rows(self, postprocessor: Postprocessor, outputs: Mapping[str, np.ndarray],
                num_frames: int, duration_seconds: float) -> tuple[dict, dict, np.ndarray,
                                                                   np.ndarray]:
    """One file's model outputs (``{output: [num_frames, ...]}``, in frame order) -> its
    rows as the pipeline writes them: (frame columns, clip columns, start_seconds,
    end_seconds float64 [num_frames]). The clip columns may hold ``pooling`` and
    ``normalize`` (see ``Postprocessor.clip_columns``)."""
    frame_columns = postprocessor.frame_columns(outputs)
    clip_columns = dict(postprocessor.clip_columns(frame_columns, self.common))
    start, end = self.frame_times(np.arange(num_frames, dtype=np.int32), duration_seconds)
    return (frame_columns, clip_columns, np.asarray(start, dtype=np.float64),
            np.asarray(end, dtype=np.float64))

  # --- outputs -------------------------------------------------------------------------------

  @abc.abstractmethod
  def frame_fields(self) -> list:
    """``pyarrow.Field``s of this model's own ``frames/`` columns (after uri, frame_index,
    start_seconds, end_seconds)."""

  @abc.abstractmethod
  def clip_fields(self) -> list:
    """``pyarrow.Field``s of this model's own ``clips/`` columns (after uri,
    duration_seconds, sample_rate, channels, num_frames; before pooling, ...)."""

  def extras(self, formats: Sequence[str]) -> list[Extra]:
    """Further outputs for the requested ``--format`` values (default: none)."""
    del formats
    return []

  def schema_metadata(self, assets: Mapping[str, Asset]) -> dict[str, str]:
    """Extra key/values for the Parquet schema metadata of this model's files (e.g.
    YAMNet's class names as JSON), read in the launcher from ``asset.local_path``."""
    del assets
    return {}

  def embedding_column(self) -> str:
    """The ``frames/`` column that is the embedding (searched, mapped, pooled)."""
    return "embedding"


def pool_embedding(frames: np.ndarray, pooling: str, normalize: str) -> np.ndarray:
  """[N, D] -> float32 [D]: mean or max over frames, then L2-normalised if asked.

  A zero vector stays zero under ``l2`` (nothing to normalise).
  """
  frames = np.asarray(frames, dtype=np.float32)
  if frames.ndim != 2 or frames.shape[0] == 0:
    raise ValueError(f"expected frame embeddings [N>0, D], got shape {frames.shape}")
  if pooling == "mean":
    pooled = frames.astype(np.float64).mean(axis=0)
  elif pooling == "max":
    pooled = frames.max(axis=0).astype(np.float64)
  else:
    raise ValueError(f"expected pooling mean or max, got {pooling!r}")
  if normalize == "l2":
    norm = float(np.linalg.norm(pooled))
    if norm > 0:
      pooled = pooled / norm
  elif normalize != "none":
    raise ValueError(f"expected normalize none or l2, got {normalize!r}")
  return pooled.astype(np.float32)
