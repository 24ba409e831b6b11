"""Reading Google's VGGish TF1 checkpoint by variable name.

Google publishes ``vggish_model.ckpt`` (tensorflow/models, research/audioset/vggish)
as a TF1 *V1* single-file checkpoint holding 18 float32 variables under ``vggish/``.
We also accept the V2 layout (``<prefix>.index`` + ``<prefix>.data-*``), given as the
prefix or as the ``.index`` file.

Which names must be there, with which shapes, comes from the network table in
``vggish.model`` (``VGGISH_VARIABLES``). Policy for other variables:

- names outside ``vggish/`` (``global_step``, a training loop's counters) are ignored;
- optimizer slots of an expected variable (``vggish/conv1/weights/Adam``, ``.../Adam_1``,
  ``.../ExponentialMovingAverage``) are ignored;
- any other name under ``vggish/`` is *unexpected* and an error, since it means the
  checkpoint is for a different network.

Errors list every missing, unexpected, mistyped and misshapen variable at once.
TensorFlow is imported lazily, only when a checkpoint is read.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import numpy as np

from vggish.errors import CheckpointError
from vggish.model import VARIABLE_SCOPE, variable_shapes
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


def _open_reader(path: str):
  prefix = checkpoint_prefix(path)
  if not (os.path.isfile(prefix) or os.path.isfile(prefix + ".index")):
    raise CheckpointError(
        f"no checkpoint at {path!r}: expected a V1 checkpoint file or a V2 prefix with "
        f"'{os.path.basename(prefix)}.index' next to it; found neither. {_HOW_TO_FIX}")
  import tensorflow as tf  # Lazy: importing vggish must not import TensorFlow.

  try:
    return tf.compat.v1.train.NewCheckpointReader(prefix)
  except Exception as e:  # TF raises DataLossError/NotFoundError/... with C++ text.
    raise CheckpointError(
        f"{path!r} is not a readable TensorFlow checkpoint ({type(e).__name__}: "
        f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}). {_HOW_TO_FIX}") from e


def inspect_checkpoint(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Every variable in a checkpoint: name -> (shape, numpy dtype), without loading values."""
  reader = _open_reader(path)
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


def read_checkpoint(path: str, params: Params = DEFAULT_PARAMS) -> dict[str, np.ndarray]:
  """The VGGish variables of a V1 or V2 checkpoint: name -> float32 array.

  Returns exactly the names of ``variable_shapes(params)`` (``VGGISH_VARIABLES`` by
  default), in network order. Raises CheckpointError naming every missing,
  unexpected or misshapen variable.
  """
  reader = _open_reader(path)
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  found = {n: (tuple(shapes[n]), np.dtype(dtypes[n].as_numpy_dtype)) for n in shapes}
  check_variables(found, params, source=f"checkpoint {path!r}")
  return {name: np.asarray(reader.get_tensor(name), dtype=np.float32)
          for name in variable_shapes(params)}
