"""Element types that flow between the pipeline stages, and the output schemas.

Everything a user reads back is defined here once: the Arrow schemas of ``frames/``,
``clips/`` and ``errors/`` and the AudioSet ``tf.train.SequenceExample`` layout of
``tfrecord/``. The element types are plain frozen dataclasses (pickled by Beam's
default coder; they hold numpy arrays, which a schema'd RowCoder could not).

Shapes and dtypes (E = ``params.embedding_size`` = 128, N = frames of one clip):

* patch element: ``((uri, frame_index), float32 [96, 64])``
* ``EmbeddedClip``: ``frame_index`` int32 [N], ``start_seconds`` float64 [N],
  ``raw`` float32 [N, E], ``quantized`` uint8 [N, E], ``embedding`` float32 [E].
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from vggish.params import Params
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
    "errors_schema",
    "frames_table",
    "clips_table",
    "errors_table",
    "sequence_example",
]

PROVENANCE_METADATA_KEY = "audiobeam.provenance"
"""Key of the provenance JSON in every Parquet file's schema metadata."""


@dataclasses.dataclass(frozen=True)
class AudioFile:
  """One matched input file (from ``FileSystems.match``)."""
  uri: str
  size_bytes: int | None = None
  last_modified_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class ClipInfo:
  """What the front end learned about one successfully decoded input.

  ``num_frames`` is the number of patches emitted for the clip (after the
  short-clip policy); ``padded`` is True when ``--short_clips pad`` made the one
  frame of a clip shorter than a patch.
  """
  file: AudioFile
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
  ``frontend`` (too short for one frame), ``inference`` or ``postprocess``. ``error_type`` is a stable snake_case name.
  """
  file: AudioFile
  stage: str
  error_type: str
  message: str

  @property
  def uri(self) -> str:
    return self.file.uri


@dataclasses.dataclass(frozen=True)
class InferenceFailure:
  """Marks one patch whose model call failed (the patch's file becomes an error)."""
  error_type: str
  message: str


@dataclasses.dataclass(frozen=True)
class EmbeddedClip:
  """All frames of one clip, in frame order, after postprocessing and pooling."""
  info: ClipInfo
  frame_index: np.ndarray  # int32 [N]
  start_seconds: np.ndarray  # float64 [N]
  end_seconds: np.ndarray  # float64 [N]
  raw: np.ndarray  # float32 [N, E]
  quantized: np.ndarray  # uint8 [N, E]
  embedding: np.ndarray  # float32 [E], pooled over frames of ``raw``
  pooling: str

  @property
  def uri(self) -> str:
    return self.info.uri


# --- Arrow schemas ---------------------------------------------------------------------


def _with_provenance(fields: list[pa.Field], provenance: dict[str, Any] | None) -> pa.Schema:
  metadata = None
  if provenance is not None:
    metadata = {PROVENANCE_METADATA_KEY: json.dumps(provenance, sort_keys=True)}
  return pa.schema(fields, metadata=metadata)


def frames_schema(params: Params, provenance: dict[str, Any] | None = None) -> pa.Schema:
  """``frames/``: one row per patch (the contract of issue 2, exactly these columns)."""
  width = params.embedding_size
  return _with_provenance([
      pa.field("uri", pa.string(), nullable=False),
      pa.field("frame_index", pa.int32(), nullable=False),
      pa.field("start_seconds", pa.float64(), nullable=False),
      pa.field("end_seconds", pa.float64(), nullable=False),
      pa.field("raw_embedding", pa.list_(pa.float32(), width), nullable=False),
      pa.field("audio_embedding", pa.list_(pa.uint8(), width), nullable=False),
  ], provenance)


def clips_schema(params: Params, provenance: dict[str, Any] | None = None) -> pa.Schema:
  """``clips/``: one row per input that produced embeddings."""
  width = params.embedding_size
  return _with_provenance([
      pa.field("uri", pa.string(), nullable=False),
      pa.field("duration_seconds", pa.float64(), nullable=False),
      pa.field("sample_rate", pa.int32(), nullable=False),
      pa.field("channels", pa.int32(), nullable=False),
      pa.field("num_frames", pa.int32(), nullable=False),
      pa.field("embedding", pa.list_(pa.float32(), width), nullable=False),
      pa.field("pooling", pa.string(), nullable=False),
      pa.field("padded", pa.bool_(), nullable=False),
      pa.field("container", pa.string()),
      pa.field("codec", pa.string()),
      pa.field("size_bytes", pa.int64()),
      pa.field("last_modified_seconds", pa.float64()),
      pa.field("settings_sha256", pa.string(), nullable=False),
      pa.field("run_id", pa.string(), nullable=False),
  ], provenance)


def errors_schema(provenance: dict[str, Any] | None = None) -> pa.Schema:
  """``errors/``: one row per input that produced no embeddings."""
  return _with_provenance([
      pa.field("uri", pa.string(), nullable=False),
      pa.field("stage", pa.string(), nullable=False),
      pa.field("error_type", pa.string(), nullable=False),
      pa.field("message", pa.string(), nullable=False),
      pa.field("size_bytes", pa.int64()),
      pa.field("last_modified_seconds", pa.float64()),
      pa.field("settings_sha256", pa.string(), nullable=False),
      pa.field("run_id", pa.string(), nullable=False),
  ], provenance)


def _fixed_size_list(values: np.ndarray, value_type: pa.DataType, width: int) -> pa.Array:
  """[N, width] numpy -> fixed_size_list<value_type, width> [N] without per-row copies."""
  flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=value_type)
  return pa.FixedSizeListArray.from_arrays(flat, width)


def frames_table(clips: Sequence[EmbeddedClip], schema: pa.Schema) -> pa.Table:
  """The ``frames/`` rows of ``clips`` (frame order within each clip)."""
  width = schema.field("raw_embedding").type.list_size
  lengths = [len(c.frame_index) for c in clips]
  uris = np.repeat(np.array([c.uri for c in clips], dtype=object), lengths)

  def cat(arrays, dtype, shape):
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(shape, dtype)

  return pa.Table.from_arrays([
      pa.array(uris, type=pa.string()),
      pa.array(cat([c.frame_index for c in clips], np.int32, (0,)), type=pa.int32()),
      pa.array(cat([c.start_seconds for c in clips], np.float64, (0,)), type=pa.float64()),
      pa.array(cat([c.end_seconds for c in clips], np.float64, (0,)), type=pa.float64()),
      _fixed_size_list(cat([c.raw for c in clips], np.float32, (0, width)), pa.float32(), width),
      _fixed_size_list(cat([c.quantized for c in clips], np.uint8, (0, width)), pa.uint8(), width),
  ], schema=schema)


def clips_table(clips: Sequence[EmbeddedClip], schema: pa.Schema, *, settings_sha256: str,
                run_id: str) -> pa.Table:
  """The ``clips/`` rows of ``clips`` (one each)."""
  width = schema.field("embedding").type.list_size
  embeddings = (np.stack([c.embedding for c in clips]).astype(np.float32, copy=False)
                if clips else np.zeros((0, width), np.float32))
  n = len(clips)
  return pa.Table.from_arrays([
      pa.array([c.uri for c in clips], type=pa.string()),
      pa.array([c.info.duration_seconds for c in clips], type=pa.float64()),
      pa.array([c.info.sample_rate for c in clips], type=pa.int32()),
      pa.array([c.info.channels for c in clips], type=pa.int32()),
      pa.array([c.info.num_frames for c in clips], type=pa.int32()),
      _fixed_size_list(embeddings, pa.float32(), width),
      pa.array([c.pooling for c in clips], type=pa.string()),
      pa.array([c.info.padded for c in clips], type=pa.bool_()),
      pa.array([c.info.container for c in clips], type=pa.string()),
      pa.array([c.info.codec for c in clips], type=pa.string()),
      pa.array([c.info.file.size_bytes for c in clips], type=pa.int64()),
      pa.array([c.info.file.last_modified_seconds for c in clips], type=pa.float64()),
      pa.array([settings_sha256] * n, type=pa.string()),
      pa.array([run_id] * n, type=pa.string()),
  ], schema=schema)


def errors_table(failures: Sequence[InputFailure], schema: pa.Schema, *, settings_sha256: str,
                 run_id: str) -> pa.Table:
  """The ``errors/`` rows of ``failures`` (one each)."""
  n = len(failures)
  return pa.Table.from_arrays([
      pa.array([redact_uri(f.uri) for f in failures], type=pa.string()),
      pa.array([f.stage for f in failures], type=pa.string()),
      pa.array([f.error_type for f in failures], type=pa.string()),
      pa.array([redact_text(f.message) for f in failures], type=pa.string()),
      pa.array([f.file.size_bytes for f in failures], type=pa.int64()),
      pa.array([f.file.last_modified_seconds for f in failures], type=pa.float64()),
      pa.array([settings_sha256] * n, type=pa.string()),
      pa.array([run_id] * n, type=pa.string()),
  ], schema=schema)


def sequence_example(clip: EmbeddedClip) -> bytes:
  """One clip as a serialized ``tf.train.SequenceExample`` in the AudioSet layout.

  Context: ``video_id`` (bytes: the input URI), ``start_time_seconds`` (float: start of
  the first frame, 0.0), ``end_time_seconds`` (float: the clip duration), ``labels``
  (int64, empty). Feature list ``audio_embedding``: one ``bytes_list`` feature per
  frame holding the 128 uint8 values as 128 bytes.
  """
  from tensorflow.core.example import example_pb2  # lazy: protos only, on workers

  example = example_pb2.SequenceExample()
  context = example.context.feature
  context["video_id"].bytes_list.value.append(clip.uri.encode("utf-8"))
  context["start_time_seconds"].float_list.value.append(
      float(clip.start_seconds[0]) if len(clip.start_seconds) else 0.0)
  context["end_time_seconds"].float_list.value.append(float(clip.info.duration_seconds))
  context["labels"].int64_list.SetInParent()  # present, empty: no labels
  frames = example.feature_lists.feature_list["audio_embedding"].feature
  for row in np.asarray(clip.quantized, dtype=np.uint8):
    frames.add().bytes_list.value.append(row.tobytes())
  return example.SerializeToString()
