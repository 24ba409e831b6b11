"""The README stays true: every flag and every error type the code defines is documented."""

from __future__ import annotations

import pathlib
import re

from audiobeam.errors import ERROR_TYPES
from pipelines.options import SHARED_OPTIONS, model_options

_README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_error_type_is_in_the_readmes_error_table():
  table = _README[_README.index("| error_type | stage |"):]
  rows = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
      r"^\| `([a-z_]+)` \| ([a-z]+) \| (yes|no) \|", table, re.M)}
  for name, entry in ERROR_TYPES.items():
    assert name in rows, f"README lacks error type {name}"
    assert rows[name] == (entry.stage, "yes" if entry.content else "no"), name
  assert set(rows) == set(ERROR_TYPES)


def test_every_flag_is_documented():
  flags = [o.name for o in SHARED_OPTIONS] + list(model_options())
  missing = [f for f in flags if f"`--{f}`" not in _README]
  assert not missing, f"README lacks {missing}"
