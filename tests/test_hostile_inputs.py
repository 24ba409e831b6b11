"""The real pipeline over the hostile corpus: every input accounted for, as documented.

One ``python -m pipelines.embed`` run (local runner, subprocess, module-scoped) over every
case of ``hostile_corpus.CASES``; outputs read back with pyarrow. When the tests run as
root the run is started without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (``setpriv``) so
that the chmod-000 case is really unreadable (root otherwise reads through mode 000).

Also here: security checks on hostile *weights* (pickles must never be unpickled) and
on hostile *URIs* (credentials never reach logs, errors rows or run.json).
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import hostile_corpus
import robust_fixtures
from hostile_corpus import EMBEDDED, ERROR

_CORPUS_TIMEOUT_SECONDS = 600
# Larger than the corpus' ~40 patches: every patch, the injected fault's included, goes
# into one model call, so the fault really has good neighbours in its batch.
_BATCH_SIZE = 64


@pytest.fixture(scope="module")
def hostile_run(test_weights, tmp_path_factory):
  """(corpus, outputs, run, unprivileged): one real run over the whole hostile corpus."""
  root = tmp_path_factory.mktemp("hostile")
  drop = robust_fixtures.can_drop_file_permission_override()
  unprivileged = drop or os.geteuid() != 0
  corpus = hostile_corpus.write_corpus(root / "corpus", include_non_root_cases=unprivileged)
  out = root / "out"
  argv = ["--output", str(out), "--checkpoint", test_weights.checkpoint,
          "--pca_params", test_weights.pca_params, "--batch_size", str(_BATCH_SIZE)]
  for pattern in corpus.input_patterns:
    argv += ["--input", pattern]
  run = robust_fixtures.run_embed(
      argv, home=root / "home", drop_file_permission_override=drop,
      extra_env={"AUDIOBEAM_TEST_ONLY_INFERENCE_FAULT_URIS": json.dumps(corpus.fault_uris)},
      timeout_seconds=_CORPUS_TIMEOUT_SECONDS)
  assert run.returncode == 0, f"the run failed (a bad file must never fail it):\n{run.stderr[-4000:]}"
  return corpus, robust_fixtures.read_outputs(out), run, unprivileged


@pytest.fixture(scope="module")
def pad_run(test_weights, tmp_path_factory):
  """(corpus, outputs): ``--short_clips pad`` over the cases whose outcome depends on it."""
  root = tmp_path_factory.mktemp("hostile_pad")
  corpus = hostile_corpus.write_corpus(root / "corpus", include_non_root_cases=False)
  names = [c.name for c in corpus.cases if c.expected_pad is not None] + ["exactly_one_patch"]
  argv = ["--output", str(root / "out"), "--checkpoint", test_weights.checkpoint,
          "--pca_params", test_weights.pca_params, "--short_clips", "pad", "--format", "parquet"]
  for name in names:
    argv += ["--input", corpus.uri(name)]
  run = robust_fixtures.run_embed(argv, home=root / "home")
  assert run.returncode == 0, run.stderr[-3000:]
  return corpus, names, robust_fixtures.read_outputs(root / "out")


def _by_uri(rows):
  grouped = collections.defaultdict(list)
  for row in rows:
    grouped[row["uri"]].append(row)
  return grouped


@pytest.mark.parametrize("case", hostile_corpus.CASES, ids=lambda c: c.name)
def test_hostile_input_has_its_documented_outcome(hostile_run, case):
  corpus, outputs, _, _ = hostile_run
  if case.name in corpus.skipped:
    pytest.skip(f"{case.name} needs a non-root process and this run could not drop root")
  uri = corpus.uri(case.name)
  clips = _by_uri(outputs.rows("clips"))[uri]
  errors = _by_uri(outputs.rows("errors"))[uri]
  frames = _by_uri(outputs.rows("frames"))[uri]
  expected = case.expected
  if expected.outcome == EMBEDDED:
    assert not errors, f"{case.description}: expected embedded, got errors {errors}"
    assert len(clips) == 1, clips
    assert clips[0]["num_frames"] == expected.num_frames
    assert sorted(f["frame_index"] for f in frames) == list(range(expected.num_frames))
    raw = np.array([f["raw_embedding"] for f in frames], dtype=np.float32)
    assert np.isfinite(raw).all()
    assert np.isfinite(np.asarray(clips[0]["embedding"], dtype=np.float32)).all()
  else:
    assert not clips and not frames, f"{case.description}: expected an errors row only"
    assert len(errors) == 1, errors
    row = errors[0]
    assert (row["stage"], row["error_type"]) == (expected.stage, expected.error_type), row
    assert row["message"], "an errors row must say what went wrong"


def test_injected_inference_fault_is_isolated_so_batch_neighbours_still_embed(hostile_run):
  """TEST-ONLY fault hook: the fault file's patches reach the model as NaN, so the batch
  call holding them (with every other file's patches) fails for real; the handler retries
  per patch, the fault file becomes one ``inference`` errors row, the rest embed."""
  corpus, outputs, _, _ = hostile_run
  (fault_uri,) = corpus.fault_uris
  metrics = outputs.run_record["metrics"]
  assert metrics.get("vggish_inference_batches_isolated", 0) >= 1, metrics
  errors = [r for r in outputs.rows("errors") if r["uri"] == fault_uri]
  assert [(r["stage"], r["error_type"]) for r in errors] == [("inference", "inference_failed")]
  assert "finite" in errors[0]["message"]
  embedded = [c for c in corpus.cases if c.expected.outcome == EMBEDDED]
  assert len(outputs.rows("clips")) == len(embedded) > 10
  frames = outputs.tables["frames"].num_rows
  assert frames < _BATCH_SIZE, "all patches must fit one batch for this test to mean anything"


def test_short_clips_pad_embeds_clips_under_one_patch_as_one_padded_frame(pad_run):
  corpus, names, outputs = pad_run
  clips = {r["uri"]: r for r in outputs.rows("clips")}
  assert not outputs.rows("errors")
  for name in names:
    case = next(c for c in corpus.cases if c.name == name)
    expected = case.expected_for("pad")
    assert expected.outcome == EMBEDDED
    row = clips[corpus.uri(name)]
    assert row["num_frames"] == expected.num_frames == 1
    assert row["padded"] == (name != "exactly_one_patch")
  one_ms = clips[corpus.uri("clip_1ms")]
  assert one_ms["duration_seconds"] == pytest.approx(0.001)


def test_every_matched_input_lands_in_exactly_one_of_clips_or_errors(hostile_run):
  corpus, outputs, _, _ = hostile_run
  clip_uris = [r["uri"] for r in outputs.rows("clips")]
  error_uris = [r["uri"] for r in outputs.rows("errors")]
  assert len(clip_uris) == len(set(clip_uris)), "a file embedded twice"
  assert len(error_uris) == len(set(error_uris)), "a file with two errors rows"
  assert not set(clip_uris) & set(error_uris), "a file both embedded and an error"
  matched = {str(p) for p in corpus.paths.values()}
  assert set(clip_uris) | set(error_uris) == matched
  expected_embedded = {corpus.uri(c.name) for c in corpus.cases if c.expected.outcome == EMBEDDED}
  assert set(clip_uris) == expected_embedded
  frame_uris = {r["uri"] for r in outputs.rows("frames")}
  assert frame_uris == set(clip_uris), "frames of a file that is not in clips/"


def test_summary_counts_equal_the_rows_written(hostile_run):
  corpus, outputs, run, _ = hostile_run
  counts = outputs.model_counts
  clips, errors = outputs.rows("clips"), outputs.rows("errors")
  assert counts["files_embedded"] == len(clips)
  assert counts["errors"] == len(errors)
  assert counts["frames"] == outputs.tables["frames"].num_rows == sum(c["num_frames"] for c in clips)
  no_match = [c for c in corpus.cases if c.expected.error_type == "no_match"]
  files_matched = outputs.run_record["counts"]["files_matched"]
  assert files_matched == len(corpus.paths) - len(no_match)
  assert "accounting_mismatches" not in counts
  by_type = collections.Counter(r["error_type"] for r in errors)
  assert counts["errors_by_type"] == dict(by_type)
  assert f"{files_matched} files matched" in run.stdout, run.stdout
  assert f"vggish: {len(clips)} embedded, {len(errors)} errors" in run.stdout, run.stdout


def test_summary_only_lists_part_files_of_this_run(hostile_run):
  _, outputs, _, _ = hostile_run
  run_id = outputs.run_record["run_id"]
  for sub in ("frames", "clips", "errors"):
    present = outputs.part_files[sub]
    assert present, sub
    assert all(Path(p).name.startswith(f"part-{run_id}-") for p in present), present


def test_a_file_matched_by_two_patterns_is_embedded_once(hostile_run):
  corpus, outputs, _, _ = hostile_run
  uri = corpus.uri("exactly_one_patch")
  assert sum(1 for p in corpus.input_patterns if p.endswith("*") or "exact" in p) >= 2
  assert [r["uri"] for r in outputs.rows("clips")].count(uri) == 1
  assert [r["uri"] for r in outputs.rows("frames")].count(uri) == 1


def test_non_ascii_uri_is_kept_byte_for_byte(hostile_run):
  corpus, outputs, _, _ = hostile_run
  uri = corpus.uri("non_ascii_and_spaces")
  assert unicodedata.normalize("NFC", uri) != uri, "the name must keep its combining accent"
  assert uri in {r["uri"] for r in outputs.rows("clips")}


def test_mode_000_file_is_an_unreadable_errors_row_for_a_run_without_dac_override(hostile_run):
  """chmod 000 only stops a process without root's CAP_DAC_OVERRIDE: as root, the corpus
  run is started with that capability dropped (setpriv). If it cannot be, this case is
  skipped, never faked."""
  corpus, outputs, _, unprivileged = hostile_run
  if "unreadable_chmod_000" in corpus.skipped:
    pytest.skip("running as root without the ability to start an unprivileged child")
  uri = corpus.uri("unreadable_chmod_000")
  assert os.stat(uri).st_mode & 0o777 == 0
  rows = [r for r in outputs.rows("errors") if r["uri"] == uri]
  assert [(r["stage"], r["error_type"]) for r in rows] == [("decode", "permission_denied")]
  assert unprivileged


def test_output_file_names_are_never_derived_from_input_names(hostile_run):
  corpus, outputs, _, _ = hostile_run
  names = [p.name for p in outputs.directory.rglob("*")]
  stems = {Path(c.filename).stem for c in corpus.cases}
  allowed = re.compile(r"^(vggish|frames|clips|errors|tfrecord|run\.json|_audiobeam|runs|manifests|"
                       r"[0-9TZ]+-[0-9a-f]+\.json|run-[0-9TZ]+-[0-9a-f]+\.jsonl|"
                       r"part-[0-9TZ]+-[0-9a-f]+-\d{5}-of-\d{5}\.(parquet|tfrecord))$")
  for name in names:
    assert allowed.match(name), f"unexpected output name {name!r}"
    assert not any(stem and stem in name for stem in stems if len(stem) > 3), name


# --- hostile weights: never unpickle ---------------------------------------------------------


class _Detonator:
  """Unpickling this creates a marker file: proof that a loader executed pickled code."""

  def __init__(self, marker: str):
    self.marker = marker

  def __reduce__(self):
    return (Path.touch, (Path(self.marker),))


def test_pickled_object_array_in_pca_npz_is_rejected_without_unpickling(tmp_path):
  from audiobeam.errors import AssetError
  from vggish.postprocess import PCAParams

  marker = tmp_path / "pwned"
  path = tmp_path / "vggish_pca_params.npz"
  np.savez(path, pca_eigen_vectors=np.array([_Detonator(str(marker))], dtype=object),
           pca_means=np.zeros(128))
  with pytest.raises(AssetError, match=r"(?i)pickle|object|readable"):
    PCAParams.load(str(path))
  assert not marker.exists(), "PCAParams.load executed pickled code"


def test_plain_pickle_renamed_npz_is_rejected_without_unpickling(tmp_path):
  from audiobeam.errors import AssetError
  from vggish.postprocess import PCAParams

  marker = tmp_path / "pwned"
  path = tmp_path / "vggish_pca_params.npz"
  path.write_bytes(pickle.dumps({"pca_eigen_vectors": _Detonator(str(marker))}))
  with pytest.raises(AssetError):
    PCAParams.load(str(path))
  assert not marker.exists(), "PCAParams.load executed pickled code"


def test_pickle_renamed_as_checkpoint_is_rejected_without_unpickling(tmp_path):
  from vggish.checkpoint import read_checkpoint
  from audiobeam.errors import AssetError

  marker = tmp_path / "pwned"
  path = tmp_path / "vggish_model.ckpt"
  path.write_bytes(pickle.dumps({"vggish/conv1/weights": _Detonator(str(marker))}))
  with pytest.raises(AssetError):
    read_checkpoint(str(path))
  assert not marker.exists(), "read_checkpoint executed pickled code"


# --- hostile URIs: no credentials in logs, errors rows or run.json ---------------------------

_SECRET = "hunter2-SECRET"


def test_credentials_in_input_uris_never_reach_logs_errors_or_run_json(test_weights, tmp_path):
  """A URI with user:password@ and a signed-URL query. The run must not fail for it, and
  the secret must appear nowhere a user or log collector can read."""
  root = tmp_path
  good = root / "good.wav"
  hostile_corpus.CASES[[c.name for c in hostile_corpus.CASES].index("exactly_one_patch")].make(good)
  out = root / "out"
  secret_uris = [f"https://alice:{_SECRET}@example.invalid/a.wav?X-Goog-Signature={_SECRET}"]
  argv = ["--output", str(out), "--checkpoint", test_weights.checkpoint,
          "--pca_params", test_weights.pca_params, "--input", str(good)]
  for uri in secret_uris:
    argv += ["--input", uri]
  run = robust_fixtures.run_embed(argv, home=root / "home")
  assert _SECRET not in run.stdout
  assert _SECRET not in run.stderr
  if run.returncode == 0:
    outputs = robust_fixtures.read_outputs(out)
    assert [r["uri"] for r in outputs.rows("clips")] == [str(good)]
    for row in outputs.rows("errors"):
      assert _SECRET not in " ".join(str(v) for v in row.values())
    assert _SECRET not in (out / "run.json").read_text()
    assert len(outputs.rows("errors")) == 1  # the https:// pattern
  else:  # refused up front: then as a clear configuration error, before any output
    assert run.returncode == 2, run.stderr[-3000:]
    assert "error:" in run.stderr
  for path in out.rglob("*") if out.exists() else []:
    if path.is_file():
      assert _SECRET.encode() not in path.read_bytes(), path
