"""AST checkpoint folders: what they must hold, validated without torch.

An AST checkpoint is a Hugging Face model folder as published by MIT on the hub (e.g.
``MIT/ast-finetuned-audioset-10-10-0.4593``): ``config.json`` (``model_type``
``"audio-spectrogram-transformer"``), ``preprocessor_config.json``
(``ASTFeatureExtractor`` settings) and the weights as ``model.safetensors``. A folder
with only ``pytorch_model.bin`` (a pickle) is refused: pickles can run code when loaded.
No remote code is ever used (``trust_remote_code=False``, ``local_files_only=True``).

The tensors a checkpoint must hold follow from its config (``expected_tensors``), in
the published naming (transformers 4.x names, which transformers 5 still writes and
renames on load): ``[audio_spectrogram_transformer.]embeddings.*``,
``...encoder.layer.<i>.attention.attention.{query,key,value}.*``, ...,
``classifier.{layernorm,dense}.*`` for ``ASTForAudioClassification``. The safetensors
header (a JSON table of names, dtypes and shapes) is read directly, so validation in the
launcher needs neither torch nor transformers. Errors name every missing, unexpected,
mistyped and misshapen tensor at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Any, Mapping

from audiobeam.errors import AssetError, CheckpointError
from models.ast.params import ASTParams, from_preprocessor_config

__all__ = [
    "CONFIG_FILENAME",
    "PREPROCESSOR_FILENAME",
    "WEIGHTS_FILENAME",
    "CHECKPOINT_FILES",
    "MODEL_TYPE",
    "HOW_TO_FIX",
    "ASTLayout",
    "read_json",
    "layout_from_config",
    "expected_tensors",
    "read_safetensors_header",
    "check_tensors",
    "validate_checkpoint_dir",
]

CONFIG_FILENAME = "config.json"
PREPROCESSOR_FILENAME = "preprocessor_config.json"
WEIGHTS_FILENAME = "model.safetensors"
CHECKPOINT_FILES = (CONFIG_FILENAME, PREPROCESSOR_FILENAME, WEIGHTS_FILENAME)
"""The files of a checkpoint folder that are read (and hashed, in this order by name)."""
MODEL_TYPE = "audio-spectrogram-transformer"
_ARCHITECTURES = ("ASTForAudioClassification", "ASTModel")
_PREFIX = "audio_spectrogram_transformer."
_FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
_MAX_HEADER_BYTES = 100 << 20

HOW_TO_FIX = (
    "Pass an AST checkpoint folder with --ast_checkpoint DIR (local, gs:// or s3://) holding "
    f"{', '.join(CHECKPOINT_FILES)}, e.g. a download of the Hugging Face model "
    "MIT/ast-finetuned-audioset-10-10-0.4593 (`huggingface-cli download "
    "MIT/ast-finetuned-audioset-10-10-0.4593 --local-dir DIR`); for tests only, write "
    "random weights with `python -m models.ast.testing DIR`.")


@dataclasses.dataclass(frozen=True)
class ASTLayout:
  """What a checkpoint's config.json says about its network and outputs.

  ``classification``: an ``ASTForAudioClassification`` checkpoint (has ``scores``);
  ``labels``: class names by index (``id2label``), empty for ``ASTModel``.
  """

  architecture: str
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  patch_size: int
  frequency_stride: int
  time_stride: int
  num_mel_bins: int
  max_length: int
  qkv_bias: bool
  labels: tuple[str, ...] = ()

  @property
  def classification(self) -> bool:
    return self.architecture == "ASTForAudioClassification"

  @property
  def num_labels(self) -> int:
    return len(self.labels)

  @property
  def num_patches(self) -> int:
    """Patch tokens: 12 x 101 = 1212 for the published config."""
    frequency = (self.num_mel_bins - self.patch_size) // self.frequency_stride + 1
    time = (self.max_length - self.patch_size) // self.time_stride + 1
    return frequency * time


def read_json(path: str) -> dict:
  """A JSON object from ``path``; AssetError when absent, unreadable or not an object."""
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except FileNotFoundError:
    raise AssetError(f"{path!r} does not exist. {HOW_TO_FIX}") from None
  except (OSError, UnicodeDecodeError, ValueError) as error:
    raise AssetError(f"{path!r} is not readable JSON ({error}). {HOW_TO_FIX}") from None
  if not isinstance(value, dict):
    raise AssetError(f"{path!r}: expected a JSON object, found {type(value).__name__}. "
                     f"{HOW_TO_FIX}")
  return value


def _positive_int(config: Mapping[str, Any], key: str, problems: list[str],
                  default: int | None = None) -> int:
  value = config.get(key, default)
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    problems.append(f"{key!r} = {value!r} (expected a positive integer)")
    return 1
  return value


def layout_from_config(config: Mapping[str, Any], where: str = CONFIG_FILENAME) -> ASTLayout:
  """``ASTLayout`` from a config.json dict; ``CheckpointError`` naming every problem."""
  problems = []
  if config.get("model_type") != MODEL_TYPE:
    problems.append(f"model_type {config.get('model_type')!r} (expected {MODEL_TYPE!r})")
  architectures = config.get("architectures") or ["ASTForAudioClassification"
                                                   if "id2label" in config else "ASTModel"]
  if (not isinstance(architectures, list) or len(architectures) != 1
      or architectures[0] not in _ARCHITECTURES):
    problems.append(f"architectures {architectures!r} (expected one of {list(_ARCHITECTURES)})")
    architectures = ["ASTModel"]
  sizes = {key: _positive_int(config, key, problems) for key in (
      "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
      "patch_size", "frequency_stride", "time_stride", "num_mel_bins", "max_length")}
  if sizes["hidden_size"] % sizes["num_attention_heads"]:
    problems.append(f"hidden_size {sizes['hidden_size']} is not a multiple of "
                    f"num_attention_heads {sizes['num_attention_heads']}")
  qkv_bias = config.get("qkv_bias", True)
  if not isinstance(qkv_bias, bool):
    problems.append(f"'qkv_bias' = {qkv_bias!r} (expected true or false)")
  labels: tuple[str, ...] = ()
  if architectures[0] == "ASTForAudioClassification":
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
      problems.append("'id2label' missing or empty (expected class names by index)")
    else:
      by_index = {str(k): v for k, v in id2label.items()}
      if set(by_index) != {str(i) for i in range(len(by_index))}:
        problems.append(f"'id2label' keys are not 0..{len(by_index) - 1}")
      else:
        labels = tuple(str(by_index[str(i)]) for i in range(len(by_index)))
  if config.get("auto_map"):
    problems.append("'auto_map' present: the checkpoint asks for remote code, which is never run")
  if problems:
    raise CheckpointError(f"{where}: not an AST checkpoint configuration: {'; '.join(problems)}. "
                          f"{HOW_TO_FIX}")
  return ASTLayout(architecture=architectures[0], qkv_bias=qkv_bias, labels=labels, **sizes)


def expected_tensors(layout: ASTLayout) -> dict[str, tuple[int, ...]]:
  """Published tensor names -> shapes for ``layout`` (the network as a table)."""
  h, inner, patch = layout.hidden_size, layout.intermediate_size, layout.patch_size
  prefix = _PREFIX if layout.classification else ""
  out: dict[str, tuple[int, ...]] = {
      "embeddings.cls_token": (1, 1, h),
      "embeddings.distillation_token": (1, 1, h),
      "embeddings.position_embeddings": (1, layout.num_patches + 2, h),
      "embeddings.patch_embeddings.projection.weight": (h, 1, patch, patch),
      "embeddings.patch_embeddings.projection.bias": (h,),
  }
  for i in range(layout.num_hidden_layers):
    layer = f"encoder.layer.{i}."
    for name in ("query", "key", "value"):
      out[f"{layer}attention.attention.{name}.weight"] = (h, h)
      if layout.qkv_bias:
        out[f"{layer}attention.attention.{name}.bias"] = (h,)
    out[f"{layer}attention.output.dense.weight"] = (h, h)
    out[f"{layer}attention.output.dense.bias"] = (h,)
    out[f"{layer}intermediate.dense.weight"] = (inner, h)
    out[f"{layer}intermediate.dense.bias"] = (inner,)
    out[f"{layer}output.dense.weight"] = (h, inner)
    out[f"{layer}output.dense.bias"] = (h,)
    for norm in ("layernorm_before", "layernorm_after"):
      out[f"{layer}{norm}.weight"] = (h,)
      out[f"{layer}{norm}.bias"] = (h,)
  out["layernorm.weight"] = (h,)
  out["layernorm.bias"] = (h,)
  out = {prefix + name: shape for name, shape in out.items()}
  if layout.classification:
    out["classifier.layernorm.weight"] = (h,)
    out["classifier.layernorm.bias"] = (h,)
    out["classifier.dense.weight"] = (layout.num_labels, h)
    out["classifier.dense.bias"] = (layout.num_labels,)
  return out


def read_safetensors_header(path: str) -> dict[str, tuple[str, tuple[int, ...]]]:
  """Tensor name -> (dtype, shape) from a safetensors file's header, without loading data.

  The format: an unsigned little-endian 64-bit header size N, then N bytes of JSON
  ``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}``.
  """
  try:
    with open(path, "rb") as f:
      head = f.read(8)
      if len(head) != 8:
        raise ValueError("file shorter than the 8-byte header size")
      (size,) = struct.unpack("<Q", head)
      if size > _MAX_HEADER_BYTES or size > os.path.getsize(path) - 8:
        raise ValueError(f"header size {size} is impossible for this file")
      header = json.loads(f.read(size).decode("utf-8"))
  except FileNotFoundError:
    raise AssetError(f"{path!r} does not exist. {HOW_TO_FIX}") from None
  except (OSError, ValueError, UnicodeDecodeError) as error:
    raise CheckpointError(f"{path!r} is not a safetensors file ({error}). {HOW_TO_FIX}") from None
  if not isinstance(header, dict):
    raise CheckpointError(f"{path!r} is not a safetensors file (header is not a table). "
                          f"{HOW_TO_FIX}")
  out = {}
  for name, entry in header.items():
    if name == "__metadata__":
      continue
    try:
      out[name] = (str(entry["dtype"]), tuple(int(d) for d in entry["shape"]))
    except (KeyError, TypeError, ValueError):
      raise CheckpointError(f"{path!r}: malformed safetensors entry for {name!r}. "
                            f"{HOW_TO_FIX}") from None
  return out


def check_tensors(found: Mapping[str, tuple[str, tuple[int, ...]]],
                  expected: Mapping[str, tuple[int, ...]], where: str) -> None:
  """CheckpointError listing every missing, unexpected, non-float and misshapen tensor."""
  missing = sorted(set(expected) - set(found))
  unexpected = sorted(set(found) - set(expected))
  misshapen = [f"{name} {list(found[name][1])} (expected {list(expected[name])})"
               for name in sorted(set(found) & set(expected)) if found[name][1] != expected[name]]
  mistyped = [f"{name} {found[name][0]} (expected one of {', '.join(_FLOAT_DTYPES)})"
              for name in sorted(set(found) & set(expected)) if found[name][0] not in _FLOAT_DTYPES]
  if not (missing or unexpected or misshapen or mistyped):
    return
  parts = []
  for title, items in (("missing", missing), ("unexpected", unexpected),
                       ("misshapen", misshapen), ("not floating point", mistyped)):
    if items:
      parts.append(f"{len(items)} {title}: {', '.join(items)}")
  raise CheckpointError(f"{where} does not hold the AST tensors its config.json describes "
                        f"({len(expected)} expected, {len(found)} found) -- {'; '.join(parts)}. "
                        f"{HOW_TO_FIX}")


def validate_checkpoint_dir(path: str, hop_seconds: float | None = None
                            ) -> tuple[ASTParams, ASTLayout]:
  """Validates an AST checkpoint folder -> (front-end params, layout). Reads no weights.

  Raises ``AssetError`` for missing files (a pickle-only folder is refused by name) and
  ``CheckpointError``/``ConfigError`` for invalid contents.
  """
  from models.ast.params import DEFAULT_HOP_SECONDS

  if not os.path.isdir(path):
    raise AssetError(f"{path!r} is not a folder. {HOW_TO_FIX}")
  weights = os.path.join(path, WEIGHTS_FILENAME)
  if not os.path.isfile(weights):
    pickles = [n for n in ("pytorch_model.bin", "pytorch_model.bin.index.json")
               if os.path.isfile(os.path.join(path, n))]
    if pickles:
      raise AssetError(
          f"{path!r} holds the weights only as {pickles[0]} (a Python pickle, which can run "
          f"code when loaded); audiobeam loads safetensors only. Convert it once where you "
          f"trust the file (load it with transformers and call save_pretrained(DIR, "
          f"safe_serialization=True)), or download the checkpoint's {WEIGHTS_FILENAME}. "
          f"{HOW_TO_FIX}")
    raise AssetError(f"{path!r} lacks {WEIGHTS_FILENAME}. {HOW_TO_FIX}")
  config = read_json(os.path.join(path, CONFIG_FILENAME))
  preprocessor = read_json(os.path.join(path, PREPROCESSOR_FILENAME))
  layout = layout_from_config(config, where=os.path.join(path, CONFIG_FILENAME))
  params = from_preprocessor_config(
      preprocessor, DEFAULT_HOP_SECONDS if hop_seconds is None else hop_seconds,
      where=os.path.join(path, PREPROCESSOR_FILENAME))
  mismatched = [f"{key} {getattr(layout, key)} in {CONFIG_FILENAME} vs {value} in "
                f"{PREPROCESSOR_FILENAME}" for key, value in (
                    ("num_mel_bins", params.num_mel_bins), ("max_length", params.max_length_frames))
                if getattr(layout, key) != value]
  if mismatched:
    raise CheckpointError(f"{path!r}: the model and its feature extractor disagree: "
                          f"{'; '.join(mismatched)}. {HOW_TO_FIX}")
  check_tensors(read_safetensors_header(weights), expected_tensors(layout), repr(weights))
  return params, layout
