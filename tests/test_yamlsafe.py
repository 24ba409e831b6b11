"""audiobeam.yamlsafe: config documents load as plain values; expansion attacks do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from audiobeam.errors import ConfigError
from audiobeam.yamlsafe import MAX_DEPTH, MAX_DOCUMENT_BYTES, load_document

REPO_ROOT = Path(__file__).resolve().parents[1]


def _billion_laughs(levels: int = 9) -> str:
  """The classic attack under a Beam option key: level k lists level k-1 nine times."""
  lines = ['labels:', '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  for k in range(1, levels):
    lines.append(f"  l{k}: &l{k} [" + ",".join([f"*l{k - 1}"] * 9) + "]")
  return "\n".join(lines) + "\n"


def test_the_billion_laughs_document_is_refused_before_anything_expands():
  attack = _billion_laughs(9)
  assert len(attack.encode()) < 600
  # What yaml.safe_load did: accept it (a 9**9 = 387,420,489-string tree in waiting).
  assert yaml.safe_load(attack)["labels"]["l8"][0][0][0][0][0][0][0][0][0] == "lol"
  with pytest.raises(ConfigError, match=r"anchor &l0 at line 2, column 7") as info:
    load_document(attack, "--config 'attack.yaml'")
  message = str(info.value)
  assert "--config 'attack.yaml'" in message and "Write the values out in full" in message


@pytest.mark.parametrize("text, found", [
    ("a: &x 1\nb: 2\n", "anchor &x"),
    ("base: {runner: x}\nother:\n  <<: *base\n", r"alias \*base"),
    ("a: !!python/object/apply:os.system ['echo pwned']\n", "unsupported tag"),
    ("a: [1, 2\n", "syntax error"),
    ("a: 1\n---\nb: 2\n", "several"),
])
def test_refusals_say_what_was_found(text, found):
  with pytest.raises(ConfigError, match=found):
    load_document(text, "--config x.yaml")


def test_deep_nesting_and_huge_documents_are_refused():
  with pytest.raises(ConfigError, match=f"at most {MAX_DEPTH} levels"):
    load_document("a: " + "[" * 200 + "]" * 200, "--config deep.yaml")
  with pytest.raises(ConfigError, match="deep.yaml"):  # libyaml's own limit (1000) first
    load_document("a: " + "[" * 10_000 + "]" * 10_000, "--config deep.yaml")
  with pytest.raises(ConfigError, match=f"at most {MAX_DOCUMENT_BYTES} bytes"):
    load_document("a: '" + "x" * MAX_DOCUMENT_BYTES + "'\n", "--config big.yaml")
  with pytest.raises(ConfigError, match="at most 100000 values"):
    load_document("a: [" + "1," * 100_001 + "1]\n", "--config many.yaml")


def test_every_shipped_config_loads_as_yaml_safe_load_does():
  configs = sorted((REPO_ROOT / "configs").glob("*.yaml"))
  assert configs
  for path in configs:
    text = path.read_text()
    assert load_document(text, str(path)) == yaml.safe_load(text), path


def test_json_run_records_and_empty_documents_load():
  record = {"kind": "audiobeam.run", "config": {"input": ["a.wav"], "batch_size": 64,
                                                "nested": {"x": [1.5, None, True]}}}
  assert load_document(json.dumps(record, indent=2), "run.json") == record
  assert load_document("", "empty.yaml") is None
  assert load_document("# only a comment\n", "c.yaml") is None
  with pytest.raises(ConfigError, match="expected text"):
    load_document(b"a: 1", "bytes.yaml")
