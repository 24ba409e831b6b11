"""Loading user-written YAML/JSON config documents without letting them expand.

``yaml.safe_load`` constructs no arbitrary objects, but it does resolve anchors and
aliases: a 403-byte document whose nine anchored lists each repeat the previous one
nine times (the "billion laughs") loads as a small graph of shared lists, and the first
thing that walks it as a tree -- ``json.dumps`` writing ``run.json`` -- expands it
(measured with ``yaml.safe_load`` + ``json.dumps(indent=2)``: 7 levels, 362 bytes ->
157 MB of JSON, 29 s, 732 MB RSS; each level multiplies by 9, so nine levels exhaust
memory; the pipeline's own run.json reached 170 MB and 2.9 GB RSS from 403 bytes). Run
configs have no use for anchors, so ``load_document`` refuses them, and bounds what is
left:

* anchors (``&a``) and aliases (``*a``), including merge keys (``<<: *a``): refused;
* documents over ``MAX_DOCUMENT_BYTES`` (1 MiB; our configs are a few KB);
* nesting deeper than ``MAX_DEPTH`` (64) and more than ``MAX_NODES`` (100,000) nodes;
* more than one document in the text (``---`` separators);
* everything ``yaml.safe_load`` already refuses (Python object tags, syntax errors).

Every refusal is an ``audiobeam.errors.ConfigError`` saying what was expected, what was
found (with line and column) and what to do. JSON is YAML, so run records load too.
"""

from __future__ import annotations

from typing import Any

import yaml

from audiobeam.errors import ConfigError

__all__ = ["load_document", "MAX_DOCUMENT_BYTES", "MAX_DEPTH", "MAX_NODES"]

MAX_DOCUMENT_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000


# libyaml's C parser when PyYAML was built with it (it is, in our wheels): ~50x faster
# than the pure-Python one, which needs ~30 s for a 100,000-value document.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _where(mark) -> str:
  return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"


def _check_events(text: str, what: str) -> None:
  """One pass over the parser's events: no anchors/aliases, bounded depth and size."""
  depth = nodes = 0
  for event in yaml.parse(text, Loader=_LOADER):
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
      kind = "an alias *" if isinstance(event, yaml.AliasEvent) else "an anchor &"
      raise ConfigError(
          f"expected plain values in {what}, found {kind}{event.anchor} at "
          f"{_where(event.start_mark)}: YAML anchors (&) and aliases (*, also in '<<' merge "
          "keys) are not accepted, because a few hundred bytes of them can expand to "
          "gigabytes. Write the values out in full.")
    if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
      depth += 1
      if depth > MAX_DEPTH:
        raise ConfigError(
            f"expected at most {MAX_DEPTH} levels of nesting in {what}, found more at "
            f"{_where(event.start_mark)}; a run config is a flat mapping of options.")
    elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
      depth -= 1
    if isinstance(event, yaml.NodeEvent):
      nodes += 1
      if nodes > MAX_NODES:
        raise ConfigError(
            f"expected at most {MAX_NODES} values in {what}, found more by "
            f"{_where(event.start_mark)}; a run config holds options, not data.")


def load_document(text: str, what: str) -> Any:
  """The one YAML/JSON document in ``text`` as plain Python values, or ``ConfigError``.

  ``what`` names the source in messages (e.g. ``"--config 'run.yaml'"``). An empty
  document is ``None``. See the module docstring for what is refused.
  """
  if not isinstance(text, str):
    raise ConfigError(f"expected text in {what}, found {type(text).__name__}; decode the "
                      "file as UTF-8 first.")
  size = len(text.encode("utf-8", "surrogatepass"))
  if size > MAX_DOCUMENT_BYTES:
    raise ConfigError(
        f"expected a config document of at most {MAX_DOCUMENT_BYTES} bytes in {what}, found "
        f"{size} bytes; a run config is a few KB. Pass data files by path instead.")
  try:
    _check_events(text, what)          # before anything is constructed
    return yaml.load(text, Loader=_LOADER)  # safe constructors only; no aliases left
  except ConfigError:
    raise
  except yaml.composer.ComposerError as error:
    if "expected a single document" in str(error):
      raise ConfigError(f"expected one YAML document in {what}, found several ('---' "
                        "separators); keep one.") from error
    raise ConfigError(f"expected YAML or JSON in {what}, found: {error}") from error
  except yaml.YAMLError as error:
    raise ConfigError(f"expected YAML or JSON in {what}, found a syntax error or an "
                      f"unsupported tag: {error}") from error
