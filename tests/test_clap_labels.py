"""CLAP zero-shot labels without a model: option parsing and validation in the bundle's
``__init__`` (before any job), and the scoring arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from audiobeam.bundle import Common
from audiobeam.errors import ConfigError
from models.clap import labels as lt
from models.clap.bundle import ClapBundle

DEFAULTS = {o.name: o.default for o in ClapBundle.options}


def _bundle(**values) -> ClapBundle:
  return ClapBundle(dict(DEFAULTS, clap_checkpoint="/nowhere", **values), Common())


def test_labels_from_a_comma_separated_flag_or_a_list():
  assert _bundle(clap_labels="dog barking, rain ,train").labels == ("dog barking", "rain", "train")
  assert _bundle(clap_labels=["dog, barking", "rain"]).labels == ("dog, barking", "rain")
  assert _bundle().labels == ()


def test_labels_file_one_per_line(tmp_path):
  path = tmp_path / "labels.txt"
  path.write_text("\ufeffdog barking\nrain\n  train  \n", encoding="utf-8")
  bundle = _bundle(clap_labels_file=str(path))
  assert bundle.labels == ("dog barking", "rain", "train")
  assert bundle.settings({"checkpoint": _asset()})["labels"] == ["dog barking", "rain", "train"]


def _asset():
  from audiobeam.bundle import Asset

  return Asset(name="checkpoint", uri="u", local_path="p", worker_uri="p", sha256="0" * 64,
               kind="directory")


@pytest.mark.parametrize("text,message", [
    ("dog\n\nrain\n", "blank line 2"),
    ("dog\nrain\n \n", "blank line 3"),
    ("dog\nrain\ndog\n", "'dog' on line 3 again \\(first on line 1\\)"),
    ("", "empty file"),
])
def test_bad_labels_files_name_the_line(tmp_path, text, message):
  path = tmp_path / "labels.txt"
  path.write_text(text, encoding="utf-8")
  with pytest.raises(ConfigError, match=message):
    _bundle(clap_labels_file=str(path))


@pytest.mark.parametrize("value,message", [
    ("", "label 1 of --clap_labels to be non-empty"),
    ("dog,,rain", "label 2 of --clap_labels to be non-empty"),
    ("dog,rain,", "label 3"),
    ("dog,rain,dog", "'dog' twice"),
    ([], "at least one label"),
    ([3], "to be a string"),
])
def test_bad_label_lists_are_config_errors(value, message):
  with pytest.raises(ConfigError, match=message):
    _bundle(clap_labels=value)


@pytest.mark.parametrize("template,message", [
    ("This is a sound of.", "contain '\\{\\}'"),
    ("{} and {}", "single"),
    ("{0} {0} {}", "single|once"),
    ("a {name} {}", "single"),
    ("{}{0}", "single|once"),
    (None, "contain"),
])
def test_bad_templates_are_config_errors(template, message):
  values = dict(DEFAULTS, clap_checkpoint="/x", clap_labels="dog", clap_label_template=template)
  if template is None:
    with pytest.raises(ConfigError, match=message):
      lt.check_template(template)
    return
  with pytest.raises(ConfigError, match=message):
    ClapBundle(values, Common())


def test_template_with_literal_braces_is_accepted():
  assert lt.label_texts(["dog"], "{{sound}}: {}") == ["{sound}: dog"]
  assert _bundle(clap_labels="dog", clap_label_template="A {} sound.").label_template == "A {} sound."


def test_both_labels_and_labels_file_is_an_error(tmp_path):
  path = tmp_path / "labels.txt"
  path.write_text("dog\n", encoding="utf-8")
  with pytest.raises(ConfigError, match="either --clap_labels or --clap_labels_file"):
    _bundle(clap_labels="rain", clap_labels_file=str(path))


def test_missing_or_binary_labels_file_is_a_config_error(tmp_path):
  with pytest.raises(ConfigError, match="readable UTF-8"):
    _bundle(clap_labels_file=str(tmp_path / "absent.txt"))
  path = tmp_path / "binary.txt"
  path.write_bytes(b"\xff\xfe\x00dog")
  with pytest.raises(ConfigError, match="readable UTF-8"):
    _bundle(clap_labels_file=str(path))


def test_zero_shot_is_a_softmax_of_scaled_cosines_with_ranks():
  rng = np.random.default_rng(0)
  text = rng.standard_normal((4, 512))
  text /= np.linalg.norm(text, axis=1, keepdims=True)
  clip = text[2] + 0.5 * text[0]
  clip /= np.linalg.norm(clip)
  scores, cosines, ranks = lt.zero_shot(clip, text, 14.0)
  logits = 14.0 * (text @ clip)
  want = np.exp(logits) / np.exp(logits).sum()
  np.testing.assert_allclose(scores, want, rtol=1e-6)
  np.testing.assert_allclose(cosines, text @ clip, rtol=1e-6)
  assert scores.dtype == np.float32 and cosines.dtype == np.float32 and ranks.dtype == np.int32
  assert ranks[2] == 1 and ranks[0] == 2 and sorted(ranks.tolist()) == [1, 2, 3, 4]
  assert abs(float(scores.sum()) - 1.0) < 1e-6


def test_zero_shot_ties_rank_in_label_order():
  text = np.eye(3)
  _, _, ranks = lt.zero_shot(np.array([0.0, 0.0, 0.0]), text, 10.0)
  assert ranks.tolist() == [1, 2, 3]


def test_bundle_without_labels_has_no_label_columns_or_extras():
  bundle = _bundle()
  assert [f.name for f in bundle.clip_fields()] == ["embedding"]
  assert bundle.extras(["parquet"]) == []
  assert "labels" not in bundle.settings({"checkpoint": _asset()})
  labelled = _bundle(clap_labels="dog,rain")
  assert [f.name for f in labelled.clip_fields()] == ["embedding", "top_label", "top_label_score"]
  (extra,) = labelled.extras(["parquet"])
  assert extra.name == "labels" and extra.kind == "parquet"
  assert [f.name for f in extra.fields()] == ["uri", "label", "score", "cosine_similarity", "rank"]


def test_bundle_identity_and_frame_times():
  bundle = _bundle(clap_hop_seconds=2.5)
  assert bundle.name == "clap" and bundle.sample_rate_hz == 48000
  assert bundle.resampler == "soxr_hq" and bundle.resample_length_rule == "librosa"
  start, end = bundle.frame_times(np.arange(4), 13.0)
  np.testing.assert_array_equal(start, [0.0, 2.5, 5.0, 7.5])
  np.testing.assert_array_equal(end, [10.0, 12.5, 13.0, 13.0])
  assert start.dtype == np.float64 and end.dtype == np.float64
  with pytest.raises(ConfigError, match="clap_hop_seconds"):
    _bundle(clap_hop_seconds=12.0)
