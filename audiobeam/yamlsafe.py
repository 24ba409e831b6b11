"""YAML run configs without alias expansion ("billion laughs") or unbounded documents.

``yaml.safe_load`` expands aliases: a 403-byte document whose anchors refer to each other
becomes hundreds of megabytes in memory (and in ``run.json``). Run configs never need
anchors, so ``load_document`` refuses any anchor or alias outright, with a
``ConfigError`` that says so.
"""

from __future__ import annotations

from typing import Any

import yaml

from audiobeam.errors import ConfigError

__all__ = ["load_document"]


class _NoAliasLoader(yaml.SafeLoader):
  """SafeLoader that refuses anchors and aliases instead of expanding them."""

  def compose_node(self, parent, index):
    event = self.peek_event()
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
      mark = event.start_mark
      raise ConfigError(
          f"expected plain YAML without anchors or aliases (&name / *name), found one at line "
          f"{mark.line + 1}, column {mark.column + 1}; write the values out")
    return super().compose_node(parent, index)


def load_document(text: str, what: str) -> Any:
  """Parses YAML (or JSON) ``text`` from ``what`` (for messages); ConfigError on syntax
  errors and on anchors/aliases."""
  try:
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
  except ConfigError as error:
    raise ConfigError(f"{what}: {error}") from None
  except yaml.YAMLError as error:
    raise ConfigError(f"expected YAML or JSON in {what}, found a syntax error: {error}") from error
