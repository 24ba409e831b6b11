"""Element types that flow between the pipeline stages, and the output schemas.

Everything a user reads back is defined here once, for every model: the generic columns
of ``<model>/frames/`` and ``<model>/clips/`` around the model's own columns (from its
bundle's ``frame_fields``/``clip_fields``), and ``errors/``. The element types are plain
frozen dataclasses (pickled by Beam's default coder; they hold numpy arrays, which a
schema'd RowCoder could not).

Shapes (N = frames of one clip):

* model input element: ``((uri, frame_index), float32 [*input_shape])``
* ``EmbeddedClip``: ``frame_index`` int32 [N], ``start_seconds``/``end_seconds`` float64
  [N], ``frame_columns`` {column: [N, ...]}, ``clip_columns`` {column: value}.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from audiobeam.errors import check_error_type
from audiobeam.layout import PROVENANCE_METADATA_KEY
from audiobeam.redact import redact_text, redact_uri

__all__ = [
    "PROVENANCE_METADATA_KEY",
    "AudioFile",
    "ClipInfo",
    "InputFailure",
    "InferenceFailure",
    "EmbeddedClip",
    "frames_schema",
    "clips_schema",
    "with_provenance",
    "errors_schema",
    "frames_table",
    "clips_table",
    "errors_table",
]


@dataclasses.dataclass(frozen=True)
class AudioFile:
  """One matched input file (from ``FileSystems.match``).

  ``models``: the models this file is still to be embedded with (an incremental run
  skips the models that embedded it already); ``None`` means every requested model.
  """
  uri: str
  size_bytes: int | None = None
  last_modified_seconds: float | None = None
  models: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class ClipInfo:
  """What one model's front end learned about one successfully decoded input.

  ``num_frames`` is the number of model inputs emitted for the clip (after the
  short-clip policy); ``padded`` is True when the model padded a clip shorter than
  one input (``--short_clips pad``, or a model that always pads).
  """
  file: AudioFile
  model: str
  duration_seconds: float
  sample_rate: int
  channels: int
  num_frames: int
  container: str | None = None
  codec: str | None = None
  padded: bool = False

  @property
  def uri(self) -> str:
    return self.file.uri


@dataclasses.dataclass(frozen=True)
class InputFailure:
  """One input that produced no embeddings; becomes one row of ``errors/``.

  ``stage`` is where it failed: ``match``, ``decode`` (open/read/decode, bad samples),
  ``frontend`` (too short for one frame), ``inference`` or ``postprocess``.
  ``error_type`` is a stable snake_case name. ``model`` is the model it failed for;
  ``None`` (a pattern that matched nothing) means every requested model: the writer
  gives it one row per model.
  """
  file: AudioFile
  stage: str
  error_type: str
  message: str
  model: str | None = None

  def __post_init__(self):
    check_error_type(self.error_type)

  @property
  def uri(self) -> str:
    return self.file.uri


@dataclasses.dataclass(frozen=True)
class InferenceFailure:
  """Marks one model input whose model call failed (its file becomes an error)."""
  error_type: str
  message: str


@dataclasses.dataclass(frozen=True)
class EmbeddedClip:
  """All frames of one clip for one model, in frame order, after postprocessing.

  ``frame_columns``: the model's frame columns, each [N, ...]; ``clip_columns``: its clip
  columns (the pooled ``embedding`` among them).
  """
  info: ClipInfo
  frame_index: np.ndarray  # int32 [N]
  start_seconds: np.ndarray  # float64 [N]
  end_seconds: np.ndarray  # float64 [N]
  frame_columns: dict[str, np.ndarray]
  clip_columns: dict[str, Any]
  pooling: str
  normalize: str

  @property
  def uri(self) -> str:
    return self.info.uri

  @property
  def model(self) -> str:
    return self.info.model

  @property
  def num_frames(self) -> int:
    return int(self.frame_index.shape[0])


# --- Arrow schemas ---------------------------------------------------------------------

def with_provenance(fields: list[pa.Field], provenance: dict[str, Any] | None,
                    metadata: dict[str, str] | None = None) -> pa.Schema:
  """A schema of ``fields`` whose metadata holds the provenance JSON (and ``metadata``)."""
  names = [f.name for f in fields]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ValueError(f"a model's columns repeat generic columns: {duplicates}")
  merged = dict(metadata or {})
  if provenance is not None:
    merged[PROVENANCE_METADATA_KEY] = json.dumps(provenance, sort_keys=True)
  return pa.schema(fields, metadata=merged or None)


def frames_schema(model_fields: Sequence[pa.Field], provenance: dict[str, Any] | None = None,
                  metadata: dict[str, str] | None = None) -> pa.Schema:
  """``<model>/frames/``: one row per model input (uri, frame_index, start_seconds,
  end_seconds, then the model's own columns)."""
  return with_provenance([
      pa.field("uri", pa.string(), nullable=False),
      pa.field("frame_index", pa.int32(), nullable=False),
      pa.field("start_seconds", pa.float64(), nullable=False),
      pa.field("end_seconds", pa.float64(), nullable=False),
      *model_fields,
  ], provenance, metadata)


def clips_schema(model_fields: Sequence[pa.Field], provenance: dict[str, Any] | None = None,
                 metadata: dict[str, str] | None = None) -> pa.Schema:
  """``<model>/clips/``: one row per input the model embedded."""
  return with_provenance([
      pa.field("uri", pa.string(), nullable=False),
      pa.field("duration_seconds", pa.float64(), nullable=False),
      pa.field("sample_rate", pa.int32(), nullable=False),
      pa.field("channels", pa.int32(), nullable=False),
      pa.field("num_frames", pa.int32(), nullable=False),
      *model_fields,
      pa.field("pooling", pa.string(), nullable=False),
      pa.field("normalize", pa.string(), nullable=False),
      pa.field("padded", pa.bool_(), nullable=False),
      pa.field("container", pa.string()),
      pa.field("codec", pa.string()),
      pa.field("size_bytes", pa.int64()),
      pa.field("last_modified_seconds", pa.float64()),
      pa.field("settings_sha256", pa.string(), nullable=False),
      pa.field("run_id", pa.string(), nullable=False),
  ], provenance, metadata)


def errors_schema(provenance: dict[str, Any] | None = None) -> pa.Schema:
  """``errors/``: one row per (input, model) that produced no embeddings."""
  return with_provenance([
      pa.field("uri", pa.string(), nullable=False),
      pa.field("model", pa.string(), nullable=False),
      pa.field("stage", pa.string(), nullable=False),
      pa.field("error_type", pa.string(), nullable=False),
      pa.field("message", pa.string(), nullable=False),
      pa.field("size_bytes", pa.int64()),
      pa.field("last_modified_seconds", pa.float64()),
      pa.field("settings_sha256", pa.string(), nullable=False),
      pa.field("run_id", pa.string(), nullable=False),
  ], provenance)


def _column(values, field: pa.Field) -> pa.Array:
  """numpy [N, ...] or a list -> an Arrow array of ``field``'s type (fixed-size lists from
  [N, width] arrays without per-row copies)."""
  kind = field.type
  if isinstance(kind, pa.FixedSizeListType) and isinstance(values, np.ndarray):
    width = kind.list_size
    if values.ndim != 2 or values.shape[1] != width:
      raise ValueError(f"column {field.name!r}: expected [N, {width}], got {values.shape}")
    inner = pa.array(np.ascontiguousarray(values).reshape(-1), type=kind.value_type)
    return pa.FixedSizeListArray.from_arrays(inner, width)
  if isinstance(values, np.ndarray) and values.ndim == 1 and not pa.types.is_nested(kind):
    return pa.array(values, type=kind)
  return pa.array(list(values), type=kind)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
  return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]


def frames_table(clips: Sequence[EmbeddedClip], schema: pa.Schema) -> pa.Table:
  """The ``frames/`` rows of ``clips`` (frame order within each clip)."""
  if not clips:
    return schema.empty_table()
  lengths = [c.num_frames for c in clips]
  uris = np.repeat(np.array([c.uri for c in clips], dtype=object), lengths)
  generic = {
      "uri": uris,
      "frame_index": _concat([c.frame_index for c in clips]).astype(np.int32, copy=False),
      "start_seconds": _concat([c.start_seconds for c in clips]).astype(np.float64, copy=False),
      "end_seconds": _concat([c.end_seconds for c in clips]).astype(np.float64, copy=False),
  }
  arrays = []
  for field in schema:
    if field.name in generic:
      values = generic[field.name]
    else:
      values = _concat([np.asarray(c.frame_columns[field.name]) for c in clips])
    arrays.append(_column(values, field))
  return pa.Table.from_arrays(arrays, schema=schema)


def clips_table(clips: Sequence[EmbeddedClip], schema: pa.Schema, *, settings_sha256: str,
                run_id: str) -> pa.Table:
  """The ``clips/`` rows of ``clips`` (one each)."""
  generic = {
      "uri": lambda c: c.uri,
      "duration_seconds": lambda c: c.info.duration_seconds,
      "sample_rate": lambda c: c.info.sample_rate,
      "channels": lambda c: c.info.channels,
      "num_frames": lambda c: c.info.num_frames,
      "pooling": lambda c: c.pooling,
      "normalize": lambda c: c.normalize,
      "padded": lambda c: c.info.padded,
      "container": lambda c: c.info.container,
      "codec": lambda c: c.info.codec,
      "size_bytes": lambda c: c.info.file.size_bytes,
      "last_modified_seconds": lambda c: c.info.file.last_modified_seconds,
      "settings_sha256": lambda c: settings_sha256,
      "run_id": lambda c: run_id,
  }
  arrays = []
  for field in schema:
    if field.name in generic:
      arrays.append(pa.array([generic[field.name](c) for c in clips], type=field.type))
    elif isinstance(field.type, pa.FixedSizeListType) and clips:
      stacked = np.stack([np.asarray(c.clip_columns[field.name]) for c in clips])
      arrays.append(_column(stacked, field))
    else:
      arrays.append(pa.array([c.clip_columns[field.name] for c in clips], type=field.type))
  return pa.Table.from_arrays(arrays, schema=schema)


def errors_table(failures: Sequence[InputFailure], schema: pa.Schema, *,
                 settings_sha256: dict[str, str], run_id: str) -> pa.Table:
  """The ``errors/`` rows of ``failures`` (each has its ``model`` set).

  ``settings_sha256``: model -> that model's settings hash.
  """
  return pa.Table.from_arrays([
      pa.array([redact_uri(f.uri) for f in failures], type=pa.string()),
      pa.array([f.model for f in failures], type=pa.string()),
      pa.array([f.stage for f in failures], type=pa.string()),
      pa.array([f.error_type for f in failures], type=pa.string()),
      pa.array([redact_text(f.message) for f in failures], type=pa.string()),
      pa.array([f.file.size_bytes for f in failures], type=pa.int64()),
      pa.array([f.file.last_modified_seconds for f in failures], type=pa.float64()),
      pa.array([settings_sha256[f.model] for f in failures], type=pa.string()),
      pa.array([run_id] * len(failures), type=pa.string()),
  ], schema=schema)
