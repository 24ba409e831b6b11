"""``--model NAME`` -> the model's bundle class. Adding a model adds one line here.

Entries are import strings so that listing models (and building the command line) imports
only the light bundle modules, never TensorFlow or torch.
"""

from __future__ import annotations

import importlib

from audiobeam.errors import ConfigError

__all__ = ["MODELS", "DEFAULT_MODEL", "bundle_class", "parse_models"]

MODELS: dict[str, str] = {
    "vggish": "vggish.bundle:VGGishBundle",
    "yamnet": "models.yamnet.bundle:YAMNetBundle",
    "clap": "models.clap.bundle:ClapBundle",
    "ast": "models.ast.bundle:ASTBundle",
    "clmr": "models.clmr.bundle:CLMRBundle",
}
"""Model name -> ``module:Class`` of its ``audiobeam.bundle.ModelBundle``."""

DEFAULT_MODEL = "vggish"


def bundle_class(name: str):
  """The bundle class registered as ``name``; ConfigError for an unknown name."""
  try:
    target = MODELS[name]
  except KeyError:
    raise ConfigError(f"expected --model to name one of {', '.join(MODELS)}, found {name!r}") from None
  module_name, class_name = target.split(":")
  return getattr(importlib.import_module(module_name), class_name)


def parse_models(value) -> tuple[str, ...]:
  """``"vggish,yamnet"`` or ``["vggish", "yamnet"]`` -> ("vggish", "yamnet"): known names,
  in the order given, without duplicates. ConfigError for an empty or unknown list."""
  if isinstance(value, str):
    names = [v.strip() for v in value.split(",")]
  elif isinstance(value, (list, tuple)):
    names = []
    for item in value:
      if not isinstance(item, str):
        raise ConfigError(f"expected model names as strings in --model, found {item!r}")
      names.extend(v.strip() for v in item.split(","))
  else:
    raise ConfigError(f"expected --model NAME[,NAME...], found {value!r}")
  names = [n for n in names if n]
  if not names:
    raise ConfigError(f"expected at least one model in --model (one of {', '.join(MODELS)}), "
                      "found none")
  unknown = [n for n in names if n not in MODELS]
  if unknown:
    raise ConfigError(f"expected --model to name models among {', '.join(MODELS)}, found "
                      f"unknown {', '.join(repr(n) for n in unknown)}")
  return tuple(dict.fromkeys(names))
