"""Reading Google's ``yamnet.h5`` (Keras 2 HDF5 weights) and ``yamnet_class_map.csv``.

``yamnet.h5`` is what Keras 2's ``model.save_weights`` writes: the root attribute
``layer_names`` lists every layer; each layer has a group (nested where the name holds
``/``: ``layer1/conv`` is ``f["layer1"]["conv"]``) whose attribute ``weight_names``
lists its weights, stored as datasets under those names relative to the group
(``f["layer1/conv"]["layer1/conv/kernel:0"]``). A whole-model file (``model.save``) keeps
the same layout under ``model_weights``, which we accept too.

We read it with h5py only (no Keras, no pickle) and by name: a weight is
``<layer name>/<weight name without scope and ':0'>`` (``layer1/conv/kernel``), matched
against the network table (``models.yamnet.network.weight_shapes``: 55 layers, 110
float32 weights). Layers without weights (ReLU, reshape, pooling, TF-op layers) are
ignored. Any missing, unexpected, misshapen or mistyped weight is an error, and every
one of them is named in one ``CheckpointError``. ``read_weights`` counts what it loads
and refuses anything but all 110: Keras 3's ``load_weights(by_name=True)`` on this file
silently loads nothing, which is exactly what must never happen here.

``yamnet_class_map.csv`` has the header ``index,mid,display_name`` and 521 rows, index
0..520 in order; display names may be quoted and hold commas.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Mapping

import numpy as np

from audiobeam.errors import AssetError, CheckpointError
from models.yamnet.network import weight_shapes
from models.yamnet.params import DEFAULT_PARAMS, Params

__all__ = [
    "WEIGHTS_FILENAME",
    "CLASS_MAP_FILENAME",
    "CLASS_MAP_HEADER",
    "inspect_weights",
    "check_weights",
    "validate_weights",
    "read_weights",
    "ClassMap",
    "read_class_map",
]

WEIGHTS_FILENAME = "yamnet.h5"
CLASS_MAP_FILENAME = "yamnet_class_map.csv"
CLASS_MAP_HEADER = ("index", "mid", "display_name")

_HOW_TO_FIX = (
    "Pass Google's YAMNet weights (https://storage.googleapis.com/audioset/yamnet.h5) with "
    "--yamnet_weights, or write test weights with `python -m models.yamnet.testing DIR`.")
_HOW_TO_FIX_CLASS_MAP = (
    "Pass Google's class map (yamnet_class_map.csv from tensorflow/models, "
    "research/audioset/yamnet) with --yamnet_class_map.")
_MAX_LISTED = 12


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _open(path: str):
  import h5py  # Lazy: only readers of the file pay for it.

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f"no YAMNet weights file at {path!r}. {_HOW_TO_FIX}")
  if not h5py.is_hdf5(path):
    raise CheckpointError(
        f"{path!r} is not an HDF5 file; expected Keras HDF5 weights (yamnet.h5, as written "
        f"by model.save_weights). {_HOW_TO_FIX}")
  try:
    return h5py.File(path, "r")
  except OSError as e:
    raise CheckpointError(f"{path!r} is not a readable HDF5 file ({e}). {_HOW_TO_FIX}") from e


def _attribute_list(group, name: str) -> list[str] | None:
  """A Keras list attribute as strings, also when Keras split it into ``name0``,
  ``name1``, ... (lists over 64 KB); None when absent."""
  if name in group.attrs:
    return [_text(v) for v in group.attrs[name]]
  if f"{name}0" not in group.attrs:
    return None
  values, chunk = [], 0
  while f"{name}{chunk}" in group.attrs:
    values += [_text(v) for v in group.attrs[f"{name}{chunk}"]]
    chunk += 1
  return values


def _weights_group(f, path: str):
  if _attribute_list(f, "layer_names") is not None:
    return f
  if "model_weights" in f and _attribute_list(f["model_weights"], "layer_names") is not None:
    return f["model_weights"]
  raise CheckpointError(
      f"{path!r} is an HDF5 file without a 'layer_names' attribute (at its root or under "
      "'model_weights'): not a Keras weights file. " + _HOW_TO_FIX)


def _scan(group) -> tuple[dict[str, tuple[tuple[int, ...], np.dtype, str]], list[str]]:
  """key -> (shape, dtype, dataset path) for every listed weight; structural problems."""
  found: dict[str, tuple[tuple[int, ...], np.dtype, str]] = {}
  problems: list[str] = []
  for layer in _attribute_list(group, "layer_names"):
    if layer not in group:
      problems.append(f"layer {layer!r} is listed in layer_names but has no group")
      continue
    layer_group = group[layer]
    weight_names = _attribute_list(layer_group, "weight_names")
    if weight_names is None:
      problems.append(f"layer {layer!r} has no weight_names attribute")
      continue
    for weight in weight_names:
      key = f"{layer}/{weight.rsplit('/', 1)[-1].split(':', 1)[0]}"
      if weight not in layer_group or not hasattr(layer_group[weight], "dtype"):
        problems.append(f"weight {weight!r} of layer {layer!r} is listed but not stored")
        continue
      if key in found:
        problems.append(f"weight {key!r} is stored twice")
        continue
      dataset = layer_group[weight]
      found[key] = (tuple(dataset.shape), np.dtype(dataset.dtype), dataset.name)
  return found, problems


def _listing(items: list[str]) -> str:
  shown = "; ".join(items[:_MAX_LISTED])
  return shown + (f"; ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def check_weights(found: Mapping[str, tuple], params: Params = DEFAULT_PARAMS, *,
                  source: str = "weights", problems: list[str] | None = None) -> None:
  """Raises CheckpointError naming every problem of ``found`` (key -> (shape, dtype, ...))."""
  expected = weight_shapes(params)
  missing = [k for k in expected if k not in found]
  unexpected = [k for k in found if k not in expected]
  misshapen = [f"{k}: expected shape {list(expected[k])}, found {list(found[k][0])}"
               for k in expected if k in found and tuple(found[k][0]) != expected[k]]
  mistyped = [f"{k}: expected float32, found {np.dtype(found[k][1]).name}"
              for k in expected if k in found and np.dtype(found[k][1]) != np.float32]
  problems = list(problems or [])
  if not (missing or unexpected or misshapen or mistyped or problems):
    return
  lines = [f"{source} does not hold the YAMNet weights ({len(expected)} float32 weights in "
           f"{len({k.rsplit('/', 1)[0] for k in expected})} layers expected, "
           f"{len(found)} found):"]
  if missing:
    lines.append(f"  missing ({len(missing)}): " + _listing(missing))
  if unexpected:
    lines.append(f"  unexpected ({len(unexpected)}): " + _listing(unexpected))
  if misshapen:
    lines.append(f"  shape mismatch ({len(misshapen)}): " + _listing(misshapen))
  if mistyped:
    lines.append(f"  dtype mismatch ({len(mistyped)}): " + _listing(mistyped))
  if problems:
    lines.append(f"  malformed ({len(problems)}): " + _listing(problems))
  lines.append(_HOW_TO_FIX)
  raise CheckpointError("\n".join(lines))


def inspect_weights(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Every weight listed in a Keras HDF5 weights file: key -> (shape, dtype), no values.

  Raises CheckpointError for a file that is not HDF5 or not a Keras weights file.
  """
  with _open(path) as f:
    found, _ = _scan(_weights_group(f, path))
  return {k: (shape, dtype) for k, (shape, dtype, _) in found.items()}


def validate_weights(path: str, params: Params = DEFAULT_PARAMS) -> None:
  """Checks every layer, weight name, shape and dtype without loading the values."""
  with _open(path) as f:
    found, problems = _scan(_weights_group(f, path))
  check_weights(found, params, source=f"weights file {path!r}", problems=problems)


def read_weights(path: str, params: Params = DEFAULT_PARAMS) -> dict[str, np.ndarray]:
  """The 110 YAMNet weights of ``yamnet.h5``: key -> float32 array, in network order.

  Keys are those of ``models.yamnet.network.weight_shapes``. Raises CheckpointError
  naming every missing, unexpected, misshapen or mistyped weight, and if the number of
  arrays loaded is not exactly the number expected.
  """
  expected = weight_shapes(params)
  with _open(path) as f:
    found, problems = _scan(_weights_group(f, path))
    check_weights(found, params, source=f"weights file {path!r}", problems=problems)
    loaded = {key: np.array(f[found[key][2]], dtype=np.float32) for key in expected}
  if len(loaded) != len(expected) or any(loaded[k].shape != s for k, s in expected.items()):
    raise CheckpointError(f"loaded {len(loaded)} of the {len(expected)} YAMNet weights from "
                          f"{path!r}. {_HOW_TO_FIX}")
  return loaded


@dataclasses.dataclass(frozen=True)
class ClassMap:
  """The AudioSet classes YAMNet scores: ``mids[i]``, ``display_names[i]`` of class i."""

  mids: tuple[str, ...]
  display_names: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.display_names)


def read_class_map(path: str, num_classes: int = DEFAULT_PARAMS.num_classes) -> ClassMap:
  """Reads and validates ``yamnet_class_map.csv``; AssetError naming every problem."""
  path = os.fspath(path)
  try:
    with open(path, newline="", encoding="utf-8") as f:
      rows = list(csv.reader(f))
  except FileNotFoundError:
    raise AssetError(f"no YAMNet class map at {path!r}. {_HOW_TO_FIX_CLASS_MAP}") from None
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise AssetError(f"cannot read the YAMNet class map {path!r} as UTF-8 CSV ({e}). "
                     f"{_HOW_TO_FIX_CLASS_MAP}") from e
  problems = []
  if not rows or tuple(rows[0]) != CLASS_MAP_HEADER:
    problems.append(f"expected the header {','.join(CLASS_MAP_HEADER)}, found "
                    f"{','.join(rows[0]) if rows else 'an empty file'}")
  body = rows[1:] if rows else []
  mids, names = [], []
  for number, row in enumerate(body):
    line = number + 2
    if len(row) != 3:
      problems.append(f"line {line}: expected 3 fields, found {len(row)}")
      continue
    index, mid, name = row
    if index.strip() != str(number):
      problems.append(f"line {line}: expected index {number}, found {index!r}")
    if not mid.strip():
      problems.append(f"line {line}: empty mid")
    if not name.strip():
      problems.append(f"line {line}: empty display_name")
    mids.append(mid)
    names.append(name)
  if len(body) != num_classes:
    problems.append(f"expected {num_classes} classes, found {len(body)} rows")
  if problems:
    raise AssetError(f"{path!r} is not a valid YAMNet class map ({len(problems)} problems): "
                     f"{_listing(problems)}. {_HOW_TO_FIX_CLASS_MAP}")
  return ClassMap(tuple(mids), tuple(names))
