"""CLAP checkpoint folders: localize, validate, hash, load (safely).

``--clap_checkpoint DIR`` is a Hugging Face CLAP checkpoint folder as the hub publishes
it (``laion/clap-htsat-unfused``, ``laion/clap-htsat-fused``,
``laion/larger_clap_music_and_speech``): ``config.json``, ``model.safetensors``,
``preprocessor_config.json``, ``vocab.json``, ``merges.txt``, ``tokenizer_config.json``,
``special_tokens_map.json`` (``tokenizer.json`` optional). A local folder is used in
place; ``gs://``, ``s3://`` and ``http(s)://`` folders are copied once into the cache
(``audiobeam.assets.localize_directory``). Users download the folder themselves (e.g.
``hf download laion/clap-htsat-unfused --local-dir DIR``); nothing here downloads from
the hub and nothing falls back to other weights.

Safety: weights are read from ``model.safetensors`` only (a folder holding only the
pickle ``pytorch_model.bin`` is refused: unpickling runs arbitrary code), with
``use_safetensors=True``, ``local_files_only=True`` and never ``trust_remote_code``.

Validation, each failure an ``AssetError`` saying what was expected, what was found and
what to do:

* the files above exist (``preprocessor_config.json`` too: ``ClapFeatureExtractor()``'s
  class defaults differ from the published values, e.g. ``frequency_min`` 0 vs 50);
* ``config.json`` has ``model_type`` "clap" and ``projection_dim`` 512;
* the extractor's window is 10 s at 48 kHz, its padding "repeatpad" (what our windows
  use), its truncation "rand_trunc" or "fusion";
* the tokenizer really loaded: transformers 5's ``RobertaTokenizer`` silently returns a
  5-token tokenizer for a folder without vocabulary files, so its size must equal
  ``config.text_config.vocab_size``;
* every learned tensor of ``ClapModel`` is in the file (transformers would otherwise
  initialise the missing ones at random and only log it), with the right shape.

Importing this module is light (json, os); torch and transformers are imported by
``load_tokenizer`` and ``load_clap`` only.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from audiobeam import assets as asset_store
from audiobeam.errors import AssetError
from models.clap.params import (CONFIG_FILENAME, DEFAULT_PARAMS, OPTIONAL_FILENAMES,
                                PICKLE_WEIGHTS_FILENAME, PREPROCESSOR_FILENAME,
                                REQUIRED_FILENAMES, TOKENIZER_FILENAMES, WEIGHTS_FILENAME,
                                ClapParams)

__all__ = [
    "HOW_TO_FIX",
    "PADDING_MODES",
    "TRUNCATION_MODES",
    "checkpoint_filenames",
    "checkpoint_sha256",
    "read_checkpoint_config",
    "validate_checkpoint_dir",
    "localize_checkpoint",
    "load_tokenizer",
    "load_clap",
]

HOW_TO_FIX = (
    "Pass --clap_checkpoint a Hugging Face CLAP checkpoint folder (local, gs://, s3:// or "
    "https://) holding " + ", ".join(REQUIRED_FILENAMES) + "; e.g. download one with "
    "`hf download laion/clap-htsat-unfused --local-dir DIR`.")
PADDING_MODES = ("repeatpad",)  # What models.clap.frontend pads windows with.
TRUNCATION_MODES = ("rand_trunc", "fusion")
# ClapFeatureExtractor.__init__ defaults, used for keys a preprocessor_config.json omits.
_EXTRACTOR_DEFAULTS = {"sampling_rate": 48000, "max_length_s": 10, "truncation": "fusion",
                       "padding": "repeatpad"}
# Buffers that ClapModel computes at construction (not learned): a checkpoint written by
# another transformers version may lack them or hold them in addition.
_CONSTANT_BUFFER_SUFFIXES = ("position_ids", "token_type_ids", "relative_position_index",
                             "num_batches_tracked")


def checkpoint_filenames(path: str) -> list[str]:
  """The files of the folder that determine CLAP's numbers (hashed): the required ones
  and the optional ones present. Other files (a stray ``pytorch_model.bin``) are ignored."""
  return [*REQUIRED_FILENAMES,
          *(n for n in OPTIONAL_FILENAMES if os.path.isfile(os.path.join(path, n)))]


def checkpoint_sha256(path: str) -> str:
  """``audiobeam.assets.sha256_of_directory`` over ``checkpoint_filenames(path)``."""
  return asset_store.sha256_of_directory(path, checkpoint_filenames(path))


def _read_json(path: str, what: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (OSError, ValueError) as error:
    raise AssetError(f"could not read {what} {path!r} as JSON: {error}. {HOW_TO_FIX}") from None
  if not isinstance(value, dict):
    raise AssetError(f"expected {what} {path!r} to hold a JSON object, found "
                     f"{type(value).__name__}. {HOW_TO_FIX}")
  return value


def read_checkpoint_config(path: str) -> dict:
  """``config.json`` of a CLAP folder as a dict, checked: ``model_type`` "clap" and the
  projection size audiobeam's 512-d outputs need."""
  config = _read_json(os.path.join(path, CONFIG_FILENAME), "the CLAP config")
  model_type = config.get("model_type")
  if model_type != DEFAULT_PARAMS.model_type:
    raise AssetError(
        f"expected {os.path.join(path, CONFIG_FILENAME)!r} to describe a CLAP model "
        f"(model_type 'clap'), found model_type {model_type!r}. {HOW_TO_FIX}")
  projection_dim = config.get("projection_dim", DEFAULT_PARAMS.embedding_size)
  if projection_dim != DEFAULT_PARAMS.embedding_size:
    raise AssetError(
        f"expected a CLAP checkpoint with projection_dim {DEFAULT_PARAMS.embedding_size} "
        f"(the published LAION models), found {projection_dim!r} in {path!r}.")
  return config


def _check_extractor_settings(settings: Mapping[str, Any], where: str,
                              params: ClapParams) -> None:
  """The preprocessor settings our front end relies on (window length, padding)."""
  numeric = ("sampling_rate", "max_length_s")
  bad = [k for k in numeric if isinstance(settings[k], bool) or not isinstance(settings[k], (int, float))]
  if bad:
    raise AssetError(f"expected numbers for {', '.join(bad)} in {where}, found "
                     f"{', '.join(repr(settings[k]) for k in bad)}.")
  rate = settings["sampling_rate"]
  if rate != params.sample_rate_hz:
    raise AssetError(f"expected sampling_rate {params.sample_rate_hz} in {where}, found "
                     f"{rate!r}; audiobeam's CLAP front end resamples to 48 kHz.")
  window = settings["max_length_s"] * rate
  if window != params.window_samples:
    raise AssetError(f"expected 10 s windows (max_length_s 10) in {where}, found max_length_s "
                     f"{settings['max_length_s']!r}.")
  if settings["padding"] not in PADDING_MODES:
    raise AssetError(f"expected padding 'repeatpad' (every published CLAP checkpoint) in "
                     f"{where}, found {settings['padding']!r}; audiobeam pads partial windows "
                     "as repeatpad does.")
  if settings["truncation"] not in TRUNCATION_MODES:
    raise AssetError(f"expected truncation to be one of {', '.join(TRUNCATION_MODES)} in "
                     f"{where}, found {settings['truncation']!r}.")


def validate_checkpoint_dir(path: str, *, check_tokenizer: bool = True,
                            params: ClapParams = DEFAULT_PARAMS) -> dict:
  """Checks a local CLAP folder (see the module docstring); returns its config dict.

  ``check_tokenizer`` loads the tokenizer (imports transformers) to compare its size with
  the text model's vocabulary; everything else reads JSON only.
  """
  if not os.path.isdir(path):
    raise AssetError(f"expected a CLAP checkpoint folder, found no folder at {path!r}. {HOW_TO_FIX}")
  present = set(os.listdir(path))
  if WEIGHTS_FILENAME not in present:
    if PICKLE_WEIGHTS_FILENAME in present:
      raise AssetError(
          f"{path!r} holds the weights only as {PICKLE_WEIGHTS_FILENAME} (a pickle: loading it "
          f"can run arbitrary code, so audiobeam never does). Download {WEIGHTS_FILENAME} "
          "from the same Hugging Face repository (e.g. `hf download laion/clap-htsat-unfused "
          f"{WEIGHTS_FILENAME} --local-dir DIR`), or convert the file once yourself, in a "
          "trusted environment, with safetensors.torch.save_file.")
    raise AssetError(f"the CLAP checkpoint folder {path!r} lacks {WEIGHTS_FILENAME}. {HOW_TO_FIX}")
  if PREPROCESSOR_FILENAME not in present:
    raise AssetError(
        f"the CLAP checkpoint folder {path!r} lacks {PREPROCESSOR_FILENAME}: the feature "
        "extractor's settings must come from the checkpoint (ClapFeatureExtractor's class "
        "defaults differ from the published ones, e.g. frequency_min 0 vs 50). Copy it from "
        "the Hugging Face repository the weights came from.")
  missing = [n for n in REQUIRED_FILENAMES if n not in present]
  if missing:
    raise AssetError(f"the CLAP checkpoint folder {path!r} lacks {', '.join(missing)}. {HOW_TO_FIX}")
  config = read_checkpoint_config(path)
  preprocessor = _read_json(os.path.join(path, PREPROCESSOR_FILENAME), "the preprocessor config")
  kind = preprocessor.get("feature_extractor_type", "ClapFeatureExtractor")
  if kind != "ClapFeatureExtractor":
    raise AssetError(f"expected feature_extractor_type 'ClapFeatureExtractor' in "
                     f"{os.path.join(path, PREPROCESSOR_FILENAME)!r}, found {kind!r}.")
  _check_extractor_settings({k: preprocessor.get(k, v) for k, v in _EXTRACTOR_DEFAULTS.items()},
                            os.path.join(path, PREPROCESSOR_FILENAME), params)
  if check_tokenizer:
    load_tokenizer(path, config)
  return config


def localize_checkpoint(uri: str, cache_dir: str | None = None, *,
                        allow_download: bool = True) -> str:
  """A validated local folder for ``uri`` (remote folders copied once into the cache)."""
  uri = os.fspath(uri)
  if not asset_store.is_remote(uri):
    path = asset_store.localize_directory(uri, cache_dir, what="CLAP checkpoint folder",
                                          how_to_fix=HOW_TO_FIX)
    validate_checkpoint_dir(path)
    return path
  return asset_store.localize_directory(
      uri, cache_dir, what="CLAP checkpoint folder", required=REQUIRED_FILENAMES,
      optional=OPTIONAL_FILENAMES, validate=validate_checkpoint_dir,
      allow_download=allow_download,
      how_to_fix=HOW_TO_FIX + f" Only {WEIGHTS_FILENAME} is read (never {PICKLE_WEIGHTS_FILENAME}).")


def load_tokenizer(path: str, config: Mapping[str, Any] | None = None):
  """CLAP's ``RobertaTokenizer`` from the folder, checked against the text vocabulary.

  Raises AssetError when the tokenizer's size differs from
  ``config.text_config.vocab_size`` (e.g. the 5-token tokenizer transformers 5 returns
  for a folder without vocab.json/merges.txt).
  """
  from transformers import RobertaTokenizer

  config = read_checkpoint_config(path) if config is None else config
  text_config = config.get("text_config") or {}
  vocab_size = int(text_config.get("vocab_size", 50265))  # ClapTextConfig's default.
  try:
    tokenizer = RobertaTokenizer.from_pretrained(path, local_files_only=True)
  except (OSError, ValueError, TypeError, KeyError) as error:
    raise AssetError(f"could not load the CLAP tokenizer from {path!r}: {error}. {HOW_TO_FIX}") from None
  if len(tokenizer) != vocab_size:
    raise AssetError(
        f"the tokenizer in {path!r} has {len(tokenizer)} tokens but the text model's "
        f"vocabulary (config.json text_config.vocab_size) has {vocab_size}: the tokenizer "
        f"files ({', '.join(TOKENIZER_FILENAMES)}) are missing, broken or from another "
        "model. Copy them from the Hugging Face repository the weights came from.")
  return tokenizer


def _check_loading_info(info: Mapping[str, Any], path: str) -> None:
  def learned(keys):
    return sorted(k for k in keys if not k.endswith(_CONSTANT_BUFFER_SUFFIXES))

  problems = []
  missing = learned(info.get("missing_keys") or ())
  unexpected = learned(info.get("unexpected_keys") or ())
  mismatched = sorted(str(k) for k in (info.get("mismatched_keys") or ()))
  if missing:
    problems.append(f"missing tensors: {', '.join(missing)}")
  if unexpected:
    problems.append(f"unexpected tensors: {', '.join(unexpected)}")
  if mismatched:
    problems.append(f"tensors of the wrong shape: {', '.join(mismatched)}")
  if info.get("error_msgs"):
    problems.append("; ".join(str(m) for m in info["error_msgs"]))
  if problems:
    raise AssetError(f"{os.path.join(path, WEIGHTS_FILENAME)!r} does not hold the weights of the "
                     f"ClapModel its config.json describes ({'; '.join(problems)}). Use the "
                     "model.safetensors and config.json of one Hugging Face repository.")


def load_clap(path: str, device: str = "auto", *, allow_tf32: bool = False,
              params: ClapParams = DEFAULT_PARAMS):
  """Loads a validated local CLAP folder -> ``models.clap.model.ClapRunner`` (eval mode).

  ``device``: auto (CUDA when available), cpu or gpu. TF32 matmuls stay off unless
  ``allow_tf32``. Weights are read in float32 from ``model.safetensors`` only.
  """
  config = validate_checkpoint_dir(path, check_tokenizer=False, params=params)
  tokenizer = load_tokenizer(path, config)
  import torch
  from transformers import ClapFeatureExtractor, ClapModel

  from audiobeam.devices import set_torch_tf32, torch_device
  from models.clap.model import ClapRunner

  target = torch_device(device)
  set_torch_tf32(allow_tf32)
  try:
    extractor = ClapFeatureExtractor.from_pretrained(path, local_files_only=True)
  except (OSError, ValueError, TypeError) as error:
    raise AssetError(f"could not load {os.path.join(path, PREPROCESSOR_FILENAME)!r}: {error}") from None
  _check_extractor_settings({k: getattr(extractor, k) for k in _EXTRACTOR_DEFAULTS},
                            os.path.join(path, PREPROCESSOR_FILENAME), params)
  try:
    from audiobeam.quiet import quiet_transformers  # pylint: disable=import-outside-toplevel
    quiet_transformers()
    model, info = ClapModel.from_pretrained(
        path, local_files_only=True, use_safetensors=True, trust_remote_code=False,
        dtype=torch.float32, output_loading_info=True)
  except (OSError, ValueError, RuntimeError, TypeError) as error:
    raise AssetError(f"could not load the CLAP weights from {path!r}: {error}") from None
  _check_loading_info(info, path)
  model = model.to(target).eval()
  return ClapRunner(model, extractor, tokenizer, target, params)
