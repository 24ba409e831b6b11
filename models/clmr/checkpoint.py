"""Reading CLMR checkpoints: the encoder's tensors, by name, without unpickling objects.

Published files (github.com/Spijkervet/CLMR releases): ``clmr_checkpoint_10000.pt`` and
PyTorch Lightning ``.ckpt`` files written by CLMR's training script. Both are torch
pickles and are read with ``torch.load(path, weights_only=True)`` only: tensors,
numbers, strings and containers, never arbitrary objects. Two harmless stand-ins are
allowed so that Lightning checkpoints load: Lightning's ``AttributeDict`` (the saved
hyper-parameters; read as an ``OrderedDict``) and ``argparse.Namespace`` (read as a
plain record). Anything else a file asks to construct is refused with its name.

Layouts recognised by content (not by file extension), as CLMR's own
``load_encoder_checkpoint`` does:

- Lightning checkpoint: a dict with ``state_dict`` (and ``pytorch-lightning_version``);
  the encoder is under ``model.encoder.`` (the ``encoder.`` aliases of the same tensors
  and the projection head ``model.projector.*`` are ignored);
- plain state dict of the SimCLR model: the encoder under ``encoder.`` (the
  ``projector.*`` head is ignored);
- a bare SampleCNN state dict (``sequential.*``, as ``load_encoder_checkpoint``
  returns it); its ``fc.*`` classifier is ignored.

Under the encoder prefix every ``sequential.*`` name of ``models.clmr.network
.parameter_shapes`` must be present with its shape (``num_batches_tracked`` may be
absent); ``fc.*`` is ignored; any other name is unexpected. Errors name every missing,
unexpected, misshapen and non-float tensor at once. torch is imported lazily.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Any, Mapping

import numpy as np

from audiobeam.errors import AssetError, CheckpointError
from models.clmr.network import OPTIONAL_PARAMETERS, parameter_shapes

__all__ = ["HOW_TO_FIX", "ENCODER_PREFIXES", "load_raw", "encoder_state", "check_encoder_state",
           "read_checkpoint", "validate_checkpoint"]

HOW_TO_FIX = (
    "Pass CLMR's published encoder checkpoint with --clmr_checkpoint PATH (local, gs://, "
    "s3:// or https://): clmr_checkpoint_10000.pt from "
    "https://github.com/Spijkervet/CLMR/releases/download/2.0/clmr_checkpoint_10000.zip "
    "(unzipped), or a Lightning .ckpt written by CLMR's training; for tests only, write "
    "random weights with `python -m models.clmr.testing DIR`.")

ENCODER_PREFIXES = ("model.encoder.", "encoder.", "")
"""Where the encoder lives, in the order tried: Lightning, SimCLR state dict, bare SampleCNN."""

_LIGHTNING_ATTRIBUTE_DICTS = (
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
)
_IGNORED_UNDER_PREFIX = ("fc.",)


class _Record:
  """Stand-in for ``argparse.Namespace`` in a checkpoint: attributes only, no behaviour."""


def _safe_globals():
  return ([(collections.OrderedDict, name) for name in _LIGHTNING_ATTRIBUTE_DICTS]
          + [(_Record, "argparse.Namespace")])


def load_raw(path: str) -> Any:
  """``torch.load(path, map_location="cpu", weights_only=True)`` with the stand-ins above.

  AssetError when the file is absent; CheckpointError when it is not a torch file or asks
  for objects outside the allowed set (naming them).
  """
  import torch  # Lazy: importing models.clmr must not import torch.

  if not os.path.isfile(path):
    raise AssetError(f"{path!r} does not exist or is not a file. {HOW_TO_FIX}")
  try:
    with torch.serialization.safe_globals(_safe_globals()):
      return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as error:
    detail = str(error)
    blocked = [line.strip() for line in detail.splitlines()
               if "GLOBAL" in line or "Unsupported" in line]
    raise CheckpointError(
        f"{path!r} holds Python objects that are never unpickled (weights_only): "
        f"{'; '.join(blocked) or detail.splitlines()[0]}. Re-save just its tensors where you "
        f"trust the file (torch.save(torch.load(f)['state_dict'], 'encoder.pt')). "
        f"{HOW_TO_FIX}") from None
  except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as error:
    raise CheckpointError(f"{path!r} is not a readable torch checkpoint ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}). "
                          f"{HOW_TO_FIX}") from None


def encoder_state(raw: Any, where: str) -> tuple[dict[str, Any], str, str]:
  """(encoder tensors by ``sequential.*``/``fc.*`` name, layout, prefix) of a loaded file."""
  if not isinstance(raw, Mapping):
    raise CheckpointError(f"{where}: expected a state dict or a Lightning checkpoint (a dict), "
                          f"found {type(raw).__name__}. {HOW_TO_FIX}")
  if isinstance(raw.get("state_dict"), Mapping):
    state, layout = raw["state_dict"], "lightning"
  else:
    state, layout = raw, "state_dict"
  for prefix in ENCODER_PREFIXES:
    if f"{prefix}sequential.0.0.weight" in state:
      break
  else:
    sample = ", ".join(list(map(str, state))[:6]) or "no keys"
    raise CheckpointError(
        f"{where}: no SampleCNN encoder found: expected 'model.encoder.sequential.0.0.weight' "
        f"(Lightning), 'encoder.sequential.0.0.weight' (published .pt) or "
        f"'sequential.0.0.weight', found {sample}{'...' if len(state) > 6 else ''}. {HOW_TO_FIX}")
  if prefix == "" and layout == "state_dict":
    layout = "samplecnn"
  encoder = {str(k)[len(prefix):]: v for k, v in state.items() if str(k).startswith(prefix)}
  return encoder, layout, prefix


def check_encoder_state(encoder: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
  """Validated float32 numpy arrays for every encoder parameter (``num_batches_tracked``
  dropped); CheckpointError naming every missing/unexpected/misshapen/non-float tensor."""
  expected = parameter_shapes()
  required = {n for n in expected if n.rsplit(".", 1)[1] not in OPTIONAL_PARAMETERS}
  names = [n for n in encoder if not n.startswith(_IGNORED_UNDER_PREFIX)]
  missing = sorted(required - set(names))
  unexpected = sorted(set(names) - set(expected))
  misshapen, mistyped = [], []
  out = {}
  for name in sorted(set(names) & set(expected)):
    value = encoder[name]
    shape = tuple(getattr(value, "shape", ()))
    dtype = str(getattr(value, "dtype", type(value).__name__))
    if not hasattr(value, "shape"):
      mistyped.append(f"{name} ({type(value).__name__}, expected a tensor)")
      continue
    if shape != expected[name]:
      misshapen.append(f"{name} {list(shape)} (expected {list(expected[name])})")
      continue
    if name.endswith(OPTIONAL_PARAMETERS):
      continue
    if not getattr(value, "is_floating_point", lambda: False)():
      mistyped.append(f"{name} {dtype} (expected floating point)")
      continue
    out[name] = value.detach().to(dtype=_torch_float32()).numpy()
  if missing or unexpected or misshapen or mistyped:
    parts = [f"{len(items)} {title}: {', '.join(items)}" for title, items in (
        ("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen),
        ("not floating point", mistyped)) if items]
    raise CheckpointError(f"{where} does not hold CLMR's SampleCNN encoder "
                          f"({len(required)} tensors expected) -- {'; '.join(parts)}. "
                          f"{HOW_TO_FIX}")
  return out


def _torch_float32():
  import torch

  return torch.float32


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], str]:
  """(encoder parameters name -> float32 array, layout) of a CLMR checkpoint file.

  ``layout`` is ``"lightning"``, ``"state_dict"`` or ``"samplecnn"``.
  """
  encoder, layout, _ = encoder_state(load_raw(path), repr(path))
  return check_encoder_state(encoder, repr(path)), layout


def validate_checkpoint(path: str) -> None:
  """Raises AssetError/CheckpointError unless ``path`` holds a valid CLMR encoder."""
  read_checkpoint(path)
