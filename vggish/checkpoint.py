"""Reading Google's VGGish TF1 checkpoint by variable name.

Google publishes ``vggish_model.ckpt`` (tensorflow/models, research/audioset/vggish)
as a TF1 *V1* single-file checkpoint holding 18 float32 variables under ``vggish/``.
We also accept the V2 layout (``<prefix>.index`` + ``<prefix>.data-*``), given as the
prefix or as the ``.index`` file.

Which names must be there, with which shapes, comes from the network table in
``vggish.network`` (``VGGISH_VARIABLES``). Policy for other variables:

- names outside ``vggish/`` (``global_step``, a training loop's counters) are ignored;
- optimizer slots of an expected variable (``vggish/conv1/weights/Adam``, ``.../Adam_1``,
  ``.../ExponentialMovingAverage``) are ignored;
- any other name under ``vggish/`` is *unexpected* and an error, since it means the
  checkpoint is for a different network.

Errors list every missing, unexpected, mistyped and misshapen variable at once.

Neither validating nor reading needs TensorFlow. ``inspect_checkpoint`` reads the
names, shapes and dtypes straight from the checkpoint's table (the V1 file's metadata
entry, or the V2 ``.index``), so a launcher that only validates never pays
TensorFlow's import (~3-4 s of CPU). ``read_checkpoint`` reads the values the same
way (V1: each variable's ``SavedSlice`` entry holding a ``TensorProto``; V2: the
bytes at the ``.index`` entry's offset in its ``.data-*`` shard), so the PyTorch
backend loads on machines without TensorFlow; the values are the stored float32 bits,
identical to TensorFlow's reader (tested). Like TF's V1 reader, it does not verify
block checksums; ``vggish.assets`` checks the files' sha256. Anything the parse does
not understand (snappy-compressed blocks, partitioned variables, big-endian bundles)
falls back to TensorFlow's reader when TensorFlow is installed, and is a
``CheckpointError`` saying so when it is not.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import numpy as np

from audiobeam.errors import CheckpointError
from vggish.network import VARIABLE_SCOPE, variable_shapes
from vggish.params import DEFAULT_PARAMS, Params

__all__ = [
    "VGGISH_VARIABLES",
    "checkpoint_prefix",
    "inspect_checkpoint",
    "check_variables",
    "validate_checkpoint",
    "read_checkpoint",
]

VGGISH_VARIABLES: dict[str, tuple[int, ...]] = variable_shapes(DEFAULT_PARAMS)
"""The 18 variables of the published checkpoint: name -> shape (all float32)."""

_V2_DATA = re.compile(r"\.data-\d{5}-of-\d{5}$")

_HOW_TO_FIX = (
    "Pass Google's VGGish checkpoint (vggish_model.ckpt from "
    "https://storage.googleapis.com/audioset/vggish_model.ckpt) with --checkpoint, or "
    "write test weights with `python -m vggish.testing DIR`.")


def checkpoint_prefix(path: str) -> str:
  """The path TF's reader wants: a V1 file as is; a V2 prefix from ``.index``/``.data-*``."""
  path = os.fspath(path)
  if path.endswith(".index"):
    return path[: -len(".index")]
  match = _V2_DATA.search(path)
  if match:
    return path[: match.start()]
  return path


def _check_exists(path: str) -> str:
  """The checkpoint prefix of ``path``; CheckpointError if neither layout is there."""
  prefix = checkpoint_prefix(path)
  if not (os.path.isfile(prefix) or os.path.isfile(prefix + ".index")):
    raise CheckpointError(
        f"no checkpoint at {path!r}: expected a V1 checkpoint file or a V2 prefix with "
        f"'{os.path.basename(prefix)}.index' next to it; found neither. {_HOW_TO_FIX}")
  return prefix


def _not_readable(path: str, reason: str) -> CheckpointError:
  return CheckpointError(f"{path!r} is not a readable TensorFlow checkpoint ({reason}). "
                         f"{_HOW_TO_FIX}")


def _open_reader(path: str, unparsed: "_Unparsed | None" = None):
  prefix = _check_exists(path)
  try:
    from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
    tf = import_tensorflow()  # Lazy: importing vggish must not import TensorFlow.
  except ImportError as e:
    if unparsed is None:
      raise
    raise _not_readable(
        path, f"read without TensorFlow: {unparsed}; TensorFlow, which reads every "
        "layout, is not installed") from e

  try:
    return tf.compat.v1.train.NewCheckpointReader(prefix)
  except Exception as e:  # TF raises DataLossError/NotFoundError/... with C++ text.
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise _not_readable(path, f"{type(e).__name__}: {first_line}") from e


# --- TensorFlow-free reading of the checkpoint table's metadata --------------------------
# Both layouts are TF "table" files (LevelDB's SSTable format): data blocks of
# prefix-compressed key/value entries, an index block of block handles, a 48-byte footer
# ending in a magic number. V1: the entry with the empty key holds a SavedTensorSlices
# proto whose ``meta.tensor`` lists every variable (name, shape, dtype). V2 (.index): the
# empty key holds the bundle header, every other key is a variable name whose value is a
# BundleEntryProto (dtype, shape, ...).
_TABLE_MAGIC = 0xdb4775248b80fb57
_FOOTER_BYTES = 48
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
           9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32,
           23: np.uint64}


class _Unparsed(Exception):
  """The fast parser does not understand this file; TensorFlow's reader decides."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    if pos >= len(data) or shift > 63:
      raise _Unparsed("truncated varint")
    byte = data[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    if byte < 0x80:
      return result, pos
    shift += 7


def _proto_fields(data):
  """Yields (field number, wire type, value) of a serialized proto (bytes or memoryview).

  Values are ints (varint) or slices of ``data`` (length-delimited, fixed64, fixed32).
  """
  pos = 0
  while pos < len(data):
    key, pos = _varint(data, pos)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _varint(data, pos)
    elif wire == 2:
      size, pos = _varint(data, pos)
      value, pos = data[pos:pos + size], pos + size
    elif wire == 1:
      value, pos = data[pos:pos + 8], pos + 8
    elif wire == 5:
      value, pos = data[pos:pos + 4], pos + 4
    else:
      raise _Unparsed(f"wire type {wire}")
    if pos > len(data):
      raise _Unparsed("truncated field")
    yield number, wire, value


def _shape_and_dtype(shape_proto: bytes, dtype_enum: int) -> tuple[tuple[int, ...], np.dtype]:
  if dtype_enum not in _DTYPES:
    raise _Unparsed(f"dtype enum {dtype_enum}")
  dims = []
  for number, wire, value in _proto_fields(shape_proto):
    if number == 3 and value:  # unknown_rank
      raise _Unparsed("unknown rank")
    if number == 2 and wire == 2:
      size = next((v for n, w, v in _proto_fields(value) if n == 1 and w == 0), 0)
      dims.append(size - (1 << 64) if size >= 1 << 63 else size)
  return tuple(dims), np.dtype(_DTYPES[dtype_enum])


def _table_entries(path: str):
  """Yields (key bytes, value memoryview) of every entry of a TF table file, in order."""
  with open(path, "rb") as f:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size < _FOOTER_BYTES:
      raise _Unparsed("too small for a table")
    f.seek(size - _FOOTER_BYTES)
    footer = f.read(_FOOTER_BYTES)
    if int.from_bytes(footer[-8:], "little") != _TABLE_MAGIC:
      raise _Unparsed("no table magic")
    pos = _varint(footer, _varint(footer, 0)[1])[1]          # skip the metaindex handle
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)

    def block(offset: int, length: int) -> bytes:
      if offset + length + 5 > size:
        raise _Unparsed("block out of range")
      f.seek(offset)
      raw = f.read(length + 5)
      if len(raw) != length + 5:
        raise _Unparsed("truncated block")
      if raw[length] != 0:  # Compressed (snappy): leave it to TensorFlow.
        raise _Unparsed("compressed block")
      return memoryview(raw)[:length]  # A view: values can be ~200 MB (fc1_1).

    def entries(contents: memoryview):
      if len(contents) < 4:
        raise _Unparsed("short block")
      restarts = int.from_bytes(contents[-4:], "little")
      end = len(contents) - 4 * (restarts + 1)
      if end < 0:
        raise _Unparsed("bad restart count")
      pos, key = 0, b""
      while pos < end:
        shared, pos = _varint(contents, pos)
        unshared, pos = _varint(contents, pos)
        value_size, pos = _varint(contents, pos)
        if shared > len(key) or pos + unshared + value_size > end:
          raise _Unparsed("bad block entry")
        key = key[:shared] + bytes(contents[pos:pos + unshared])
        pos += unshared
        yield key, contents[pos:pos + value_size]
        pos += value_size

    for _, handle in list(entries(block(index_offset, index_size))):
      offset, pos = _varint(handle, 0)
      length, _ = _varint(handle, pos)
      yield from entries(block(offset, length))


def _inspect_without_tensorflow(prefix: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
  if os.path.isfile(prefix + ".index"):  # V2, as TensorFlow's reader prefers it.
    for key, value in _table_entries(prefix + ".index"):
      if not key:
        continue  # The bundle header.
      fields = {n: v for n, _, v in _proto_fields(value) if n in (1, 2, 7)}
      if 7 in fields:  # A sliced (partitioned) variable: let TensorFlow assemble it.
        raise _Unparsed("sliced variable")
      found[key.decode("utf-8")] = _shape_and_dtype(fields.get(2, b""), fields.get(1, 0))
    return found
  for key, value in _table_entries(prefix):
    if key:
      raise _Unparsed("no V1 metadata entry")
    meta = next((v for n, w, v in _proto_fields(value) if n == 1 and w == 2), None)
    if meta is None:
      raise _Unparsed("no V1 metadata")
    for number, wire, tensor in _proto_fields(meta):
      if number != 1 or wire != 2:
        continue
      fields = {n: v for n, _, v in _proto_fields(tensor) if n in (1, 2, 3)}
      if 1 not in fields:
        raise _Unparsed("unnamed tensor")
      name = bytes(fields[1]).decode("utf-8")
      found[name] = _shape_and_dtype(fields.get(2, b""), fields.get(3, 0))
    return found
  raise _Unparsed("empty table")


def inspect_checkpoint(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Every variable in a checkpoint: name -> (shape, numpy dtype), without loading values.

  Reads the table metadata directly (no TensorFlow import); falls back to TensorFlow's
  reader, and its errors, for anything that parse does not understand.
  """
  prefix = _check_exists(path)
  try:
    return dict(sorted(_inspect_without_tensorflow(prefix).items()))
  except (_Unparsed, OSError, UnicodeDecodeError) as e:
    unparsed = e if isinstance(e, _Unparsed) else _Unparsed(f"{type(e).__name__}: {e}")
  reader = _open_reader(path, unparsed)
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  return {name: (tuple(shapes[name]), np.dtype(dtypes[name].as_numpy_dtype))
          for name in sorted(shapes)}


def _is_ignored(name: str, expected: Mapping[str, tuple[int, ...]]) -> bool:
  if not name.startswith(VARIABLE_SCOPE + "/"):
    return True
  return any(name.startswith(e + "/") for e in expected)  # Optimizer slots.


def check_variables(found: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                    params: Params = DEFAULT_PARAMS, *, source: str = "checkpoint") -> None:
  """Raises CheckpointError listing every problem with ``found`` (name -> (shape, dtype))."""
  expected = variable_shapes(params)
  missing = [n for n in expected if n not in found]
  unexpected = [n for n in found if n not in expected and not _is_ignored(n, expected)]
  mismatched = [f"{n}: expected shape {list(expected[n])}, found {list(found[n][0])}"
                for n in expected if n in found and tuple(found[n][0]) != expected[n]]
  mistyped = [f"{n}: expected float32, found {np.dtype(found[n][1]).name}"
              for n in expected if n in found and np.dtype(found[n][1]) != np.float32]
  if not (missing or unexpected or mismatched or mistyped):
    return
  lines = [f"{source} does not hold the VGGish variables ({len(expected)} float32 variables "
           f"under '{VARIABLE_SCOPE}/' expected):"]
  if missing:
    lines.append(f"  missing ({len(missing)}): " + ", ".join(missing))
  if unexpected:
    lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected))
  if mismatched:
    lines.append(f"  shape mismatch ({len(mismatched)}): " + "; ".join(mismatched))
  if mistyped:
    lines.append(f"  dtype mismatch ({len(mistyped)}): " + "; ".join(mistyped))
  lines.append(_HOW_TO_FIX)
  raise CheckpointError("\n".join(lines))


def validate_checkpoint(path: str, params: Params = DEFAULT_PARAMS) -> None:
  """Checks names, shapes and dtypes without loading the (~288 MB of) values."""
  check_variables(inspect_checkpoint(path), params, source=f"checkpoint {path!r}")


def _tensor_values(tensor, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
  """A serialized TensorProto's values as a [shape] array (V1 checkpoints store float_val)."""
  count = int(np.prod(shape))
  content, packed, scalars = None, [], []
  value_field = {np.dtype(np.float32): 5, np.dtype(np.float64): 6}.get(np.dtype(dtype))
  for number, wire, value in _proto_fields(tensor):
    if number == 4 and wire == 2:                       # tensor_content: raw little-endian
      content = value
    elif number == value_field and wire == 2:           # packed repeated float/double
      packed.append(value)
    elif number == value_field and wire in (1, 5):      # unpacked repeated float/double
      scalars.append(value)
  little = np.dtype(dtype).newbyteorder("<")
  if content is not None:
    values = np.frombuffer(content, little)
  elif len(packed) == 1 and not scalars:                  # The usual case: no copy yet.
    values = np.frombuffer(packed[0], little)
  elif packed or scalars:
    values = np.frombuffer(b"".join(bytes(v) for v in packed + scalars), little)
  else:
    raise _Unparsed("tensor without values")
  if values.size != count:
    if values.size == 1:  # TF stores a constant tensor as one repeated value.
      return np.full(shape, values[0], dtype)
    raise _Unparsed(f"tensor holds {values.size} values, shape {list(shape)} needs {count}")
  return values.astype(dtype).reshape(shape)               # A writable native-order copy.


def _read_without_tensorflow(prefix: str, wanted: Mapping[str, tuple[tuple[int, ...], np.dtype]]
                             ) -> dict[str, np.ndarray]:
  """Values of the ``wanted`` variables (name -> (shape, dtype)), parsed without TF."""
  out: dict[str, np.ndarray] = {}
  if os.path.isfile(prefix + ".index"):  # V2, as TensorFlow's reader prefers it.
    num_shards, entries = 1, {}
    for key, value in _table_entries(prefix + ".index"):
      fields = {n: v for n, _, v in _proto_fields(value)}
      if not key:  # BundleHeaderProto: num_shards = 1, endianness = 2 (0 little).
        num_shards = fields.get(1, 1)
        if fields.get(2, 0) != 0:
          raise _Unparsed("big-endian bundle")
      elif key.decode("utf-8") in wanted:
        entries[key.decode("utf-8")] = fields
    for name, fields in entries.items():
      shape, dtype = wanted[name]
      if 7 in fields:
        raise _Unparsed("sliced variable")
      shard, offset, size = fields.get(3, 0), fields.get(4, 0), fields.get(5, 0)
      if size != int(np.prod(shape)) * np.dtype(dtype).itemsize:
        raise _Unparsed(f"{name}: {size} bytes for shape {list(shape)}")
      with open(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}", "rb") as f:
        f.seek(offset)
        data = f.read(size)
      if len(data) != size:
        raise _Unparsed(f"{name}: data shard too short")
      out[name] = np.frombuffer(data, np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    return out
  for key, value in _table_entries(prefix):
    if not key:
      continue  # The metadata entry (read by _inspect_without_tensorflow).
    saved = next((v for n, w, v in _proto_fields(value) if n == 2 and w == 2), None)
    if saved is None:
      raise _Unparsed("entry without data")
    fields: dict[int, object] = {}
    for number, wire, field in _proto_fields(saved):    # SavedSlice: name, slice, data
      fields[number] = field
    name = bytes(fields.get(1, b"")).decode("utf-8")
    if name not in wanted:
      continue
    if name in out:
      raise _Unparsed(f"{name}: saved in several slices")
    extents = [v for n, w, v in _proto_fields(fields.get(2, b"")) if n == 1 and w == 2]
    if any(len(extent) for extent in extents):  # An empty TensorSliceProto.Extent is "all".
      raise _Unparsed(f"{name}: a partial slice")
    out[name] = _tensor_values(fields.get(3, b""), *wanted[name])
  return out


def read_checkpoint(path: str, params: Params = DEFAULT_PARAMS) -> dict[str, np.ndarray]:
  """The VGGish variables of a V1 or V2 checkpoint: name -> float32 array.

  Returns exactly the names of ``variable_shapes(params)`` (``VGGISH_VARIABLES`` by
  default), in network order, as writable float32 arrays. Raises CheckpointError
  naming every missing, unexpected or misshapen variable. Needs no TensorFlow for the
  layouts TF's savers write (see the module docstring).
  """
  prefix = _check_exists(path)
  try:
    found = _inspect_without_tensorflow(prefix)
    check_variables(found, params, source=f"checkpoint {path!r}")
    wanted = {name: found[name] for name in variable_shapes(params)}
    values = _read_without_tensorflow(prefix, wanted)
    if set(values) != set(wanted):
      raise _Unparsed("no data entry for " + ", ".join(sorted(set(wanted) - set(values))))
    return {name: values[name] for name in wanted}
  except (_Unparsed, OSError, UnicodeDecodeError) as e:
    unparsed = e if isinstance(e, _Unparsed) else _Unparsed(f"{type(e).__name__}: {e}")
  reader = _open_reader(path, unparsed)
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  found = {n: (tuple(shapes[n]), np.dtype(dtypes[n].as_numpy_dtype)) for n in shapes}
  check_variables(found, params, source=f"checkpoint {path!r}")
  return {name: np.asarray(reader.get_tensor(name), dtype=np.float32)
          for name in variable_shapes(params)}
