"""explore.outputs: find and read committed outputs (local, DAG partitions, s3://).

Most tests read a REAL output of ``pipelines.embed`` (``real_output`` of
``tests/explore_fixtures.py``: vggish, yamnet and clap over a small real corpus, test
weights) and compare what the readers return with the files read independently
(pyarrow, the run ledger, ``run.json``). Outputs WRITTEN BY THE TEST
(``explore.testing``, named ``..._written_by_the_test``) remain where a shape is needed
that the pipeline no longer writes: the VGGish-only layout and its ``_manifest/``
commits, and part files of two runs with different columns.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audiobeam.errors import ConfigError
from cloud_emulators import s3_emulator  # noqa: F401  (fixture)
from explore import outputs, summary
from explore.testing import write_synthetic_output, write_table

pytest_plugins = ("explore_fixtures",)

_MODELS = ("clap", "vggish", "yamnet")


def _run_json(output: str) -> dict:
  with open(os.path.join(output, "run.json"), encoding="utf-8") as f:
    return json.load(f)


def _independent(output: str, model: str, kind: str) -> pa.Table:
  """A folder of part files read by pyarrow alone (readable folders hold committed files)."""
  return pq.read_table(os.path.join(output, model, kind))


def test_real_output_models_tables_and_provenance(real_output):
  out = real_output.output
  record = _run_json(out)
  counts = record["counts"]["models"]
  assert outputs.models(out) == list(_MODELS)
  for model in _MODELS:
    clips = outputs.read_clips(out, model)
    expected = _independent(out, model, "clips")
    assert clips.num_rows == counts[model]["files_embedded"] == expected.num_rows
    assert sorted(clips["uri"].to_pylist()) == sorted(expected["uri"].to_pylist())
    assert set(clips["run_id"].to_pylist()) == {record["run_id"]}
    frames = outputs.read_frames(out, model)
    assert frames.num_rows == counts[model]["frames"]
    column = outputs.embedding_column(frames.schema, record["provenance"][model])
    assert column == record["provenance"][model]["embedding_column"]
    matrix = outputs.embedding_matrix(clips["embedding"])
    assert matrix.dtype == np.float32 and matrix.shape == (clips.num_rows, {
        "vggish": 128, "yamnet": 1024, "clap": 512}[model])
    np.testing.assert_array_equal(matrix, np.stack(clips["embedding"].to_numpy(zero_copy_only=False)))
    # Provenance: the footers carry what run.json records.
    assert outputs.provenances(out, model) == {record["run_id"]: record["provenance"][model]}
  assert outputs.embedding_column(outputs.read_frames(out, "vggish").schema) == "raw_embedding"
  subset = outputs.read_clips(out, "yamnet", ["uri", "top_labels", "no_such_column"])
  assert subset.column_names == ["uri", "top_labels"]
  assert subset["top_labels"].type.value_type == pa.struct(
      [("index", pa.int32()), ("display_name", pa.string()), ("score", pa.float32())])
  labels = outputs.read_labels(out, "clap")
  assert labels.num_rows == 4 * counts["clap"]["files_embedded"]  # 4 labels per clip
  errors = outputs.read_errors(out)
  by_model = {m: sorted(r["error_type"] for r in errors.to_pylist() if r["model"] == m)
              for m in _MODELS}
  assert by_model == {m: sorted(t for t, n in counts[m]["errors_by_type"].items()
                                for _ in range(n)) for m in _MODELS}
  # The 0.5 s example clip, the corrupt file, the pattern that matched nothing.
  assert by_model["vggish"] == ["no_match", "too_short", "unsupported_format"]
  assert by_model["clap"] == by_model["yamnet"] == ["no_match", "unsupported_format"]
  assert outputs.uncommitted_part_files(out) == []


def test_committed_run_ids_match_run_json_and_the_ledger(real_output, appended_output):
  for output in (real_output.output, appended_output[0].output):
    record = _run_json(output)
    records = [json.load(open(p)) for p in glob.glob(os.path.join(output, "_audiobeam", "runs", "*.json"))
               if not p.endswith(".started.json")]
    committed = outputs.committed_run_ids(output)
    assert committed == frozenset(record["committed_run_ids"]) == {r["run_id"] for r in records}
    assert outputs.open_output(output).committed == {"": committed}
    book = outputs.ledger(output)
    assert set(book.committed) == committed and book.unfinished == {} and book.lease is None
    # Every file a commit record names is read by exactly one reader, nothing else is there.
    named = sorted(f for r in records for f in r["files"] if f.endswith(".parquet"))
    read = sorted(os.path.relpath(p.path, output) for m in outputs.models(output)
                  for kind in ("clips", "frames", "labels") for p in outputs.part_files(output, m, kind))
    read += [os.path.relpath(p.path, output) for p in outputs.part_files(output, None, "errors")]
    assert sorted(read) == named
  appended, new_files = appended_output
  assert len(_run_json(appended.output)["committed_run_ids"]) == 2
  vggish = outputs.read_clips(appended.output, "vggish")
  first = outputs.read_clips(real_output.output, "vggish")
  assert sorted(vggish["uri"].to_pylist()) == sorted(first["uri"].to_pylist() + new_files)
  assert len(set(vggish["run_id"].to_pylist())) == 2
  # The second run embedded vggish only: the other models' rows are the first run's.
  assert outputs.read_clips(appended.output, "clap").num_rows == outputs.read_clips(
      real_output.output, "clap").num_rows
  assert set(outputs.provenances(appended.output, "vggish")) == set(_run_json(appended.output)[
      "committed_run_ids"])


def test_a_run_that_started_and_did_not_commit_is_not_read(real_output, tmp_path):
  """A run that started (the ledger's started record, a staged part file, the lease) as
  ``pipelines.lifecycle`` records one, then stopped: readers leave it out, the ledger and
  ``summary`` report it."""
  from pipelines.lifecycle import Lease, OutputLedger

  out = str(tmp_path / "out")
  shutil.copytree(real_output.output, out)
  before = outputs.read_clips(out, "yamnet")
  run_id = "20270101T000000Z-5ta9ed"
  ledger = OutputLedger(out)
  ledger.prepare(run_id, "append", ledger.list())
  staged = os.path.join(ledger.staging(run_id), "yamnet", "clips",
                        f"part-{run_id}-00000-of-00001.parquet")
  os.makedirs(os.path.dirname(staged))
  shutil.copy(glob.glob(os.path.join(out, "yamnet", "clips", "*.parquet"))[0], staged)
  lease = Lease(out, run_id)
  lease.acquire()
  try:
    assert outputs.read_clips(out, "yamnet").equals(before)
    book = outputs.ledger(out)
    assert list(book.unfinished) == [run_id] and book.staged == {run_id: (1, os.path.getsize(staged))}
    assert book.lease["run_id"] == run_id and book.lease["pid"] == os.getpid()
    assert [p.path for p in outputs.uncommitted_part_files(out)] == [staged]
    partition = summary.describe(out)["partitions"][0]
    assert partition["unfinished_runs"][run_id]["writing_now"] is True
    assert f"run {run_id} started" in summary.format_text(summary.describe(out))
  finally:
    lease.release()
  text = summary.format_text(summary.describe(out))
  assert "not committed: interrupted; the next run into this output removes its files" in text


def test_no_run_json_is_a_clear_error(real_output, tmp_path):
  out = tmp_path / "copy"
  shutil.copytree(real_output.output, out)
  os.remove(out / "run.json")
  with pytest.raises(ConfigError, match=r"no run\.json.*part files of run\(s\) "
                                        + real_output.summary.run_id + ".*in progress"):
    outputs.read_clips(str(out), "vggish")
  with pytest.raises(ConfigError, match="no run.json"):
    outputs.models(str(tmp_path / "empty"))


def test_vggish_only_pipeline_commits_by_manifest_written_by_the_test(tmp_path):
  """The VGGish-only pipeline wrote part files in place and committed ``--skip_existing``
  runs with ``_manifest/run-<id>.jsonl`` (its run.json had no committed_run_ids)."""
  out = str(tmp_path / "inc")
  first = write_synthetic_output(out, n_clips=4, models=("vggish",), leftover=False,
                                 run_id="20260301T000000Z-aaaaaa", root="/a")
  run_json = os.path.join(out, "run.json")
  with open(run_json) as f:
    first_record = json.load(f)
  second = write_synthetic_output(out, n_clips=3, models=("vggish",), leftover=False,
                                  run_id="20260302T000000Z-bbbbbb", root="/b")
  # run.json now names only the second run: the first one's parts are not committed ...
  assert outputs.read_clips(out, "vggish")["uri"].to_pylist() == second.uris
  # ... unless an incremental-run manifest commits it (what --skip_existing writes) ...
  os.makedirs(os.path.join(out, "_manifest"))
  with open(os.path.join(out, "_manifest", "run-20260301T000000Z-aaaaaa.jsonl"), "w") as f:
    f.write(json.dumps({"uri": first.uris[0]}) + "\n")
  both = sorted(first.uris + second.uris)
  assert sorted(outputs.read_clips(out, "vggish")["uri"].to_pylist()) == both
  # ... or run.json lists the committed runs itself (which then alone decides).
  record = {**first_record, "committed_run_ids": ["20260302T000000Z-bbbbbb"]}
  with open(run_json, "w") as f:
    json.dump(record, f)
  assert outputs.read_clips(out, "vggish")["uri"].to_pylist() == second.uris
  with open(run_json, "w") as f:
    json.dump({**record, "committed_run_ids": "nope"}, f)
  with pytest.raises(ConfigError, match="list of strings"):
    outputs.read_clips(out, "vggish")


def test_dag_partitions_read_alone_and_together(real_output, appended_output, tmp_path):
  root = tmp_path / "daily"
  shutil.copytree(real_output.output, root / "dt=2026-03-04")
  shutil.copytree(appended_output[0].output, root / "dt=2026-03-05")
  day1 = outputs.read_clips(real_output.output, "vggish")["uri"].to_pylist()
  day2 = outputs.read_clips(appended_output[0].output, "vggish")["uri"].to_pylist()
  assert outputs.output_dirs(str(root)) == [str(root / "dt=2026-03-04"), str(root / "dt=2026-03-05")]
  assert outputs.read_clips(str(root / "dt=2026-03-05"), "vggish")["uri"].to_pylist() == day2
  assert outputs.read_clips(str(root) + "/", "vggish")["uri"].to_pylist() == day1 + day2
  assert outputs.read_clips("file://" + str(root), "vggish").num_rows == len(day1) + len(day2)
  assert outputs.models(str(root)) == list(_MODELS)


def test_schemas_of_different_runs_are_unified_written_by_the_test(tmp_path):
  out = str(tmp_path / "mixed")
  write_synthetic_output(out, n_clips=4, models=("vggish",), leftover=False)
  old_run = "20260201T000000Z-o1d000"
  write_table(pa.table({"uri": ["/old/x.wav"], "duration_seconds": [1.5],
                        "embedding": pa.FixedSizeListArray.from_arrays(
                            pa.array(np.zeros(128, np.float32)), 128)}),
              os.path.join(out, "vggish", "clips"), old_run, None)
  with open(os.path.join(out, "run.json")) as f:
    record = json.load(f)
  record["committed_run_ids"] = [record["run_id"], old_run]
  with open(os.path.join(out, "run.json"), "w") as f:
    json.dump(record, f)
  table = outputs.read_clips(out, "vggish")
  assert table.num_rows == 5 and table["container"].null_count == 1
  assert outputs.provenances(out, "vggish")[old_run] == {}


def test_embedding_matrix_types_and_errors():
  fixed = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 3)
  np.testing.assert_array_equal(outputs.embedding_matrix(fixed), [[0, 1, 2], [3, 4, 5]])
  quantized = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(4, dtype=np.uint8)), 2)
  assert outputs.embedding_matrix(quantized).dtype == np.float32
  variable = pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64()))
  assert outputs.embedding_matrix(pa.chunked_array([variable])).shape == (2, 2)
  with pytest.raises(ConfigError, match="same length.*not comparable"):
    outputs.embedding_matrix(pa.array([[1.0], [1.0, 2.0]]))
  with pytest.raises(ConfigError, match="1 null rows"):
    outputs.embedding_matrix(pa.array([[1.0], None]))
  with pytest.raises(ConfigError, match="list of numbers"):
    outputs.embedding_matrix(pa.array(["a"]))


def test_reads_s3_output_through_beam_filesystems(s3_emulator, real_output):
  bucket = s3_emulator.create_bucket("explore-out")
  for directory, _, names in os.walk(real_output.output):
    for name in names:
      local = os.path.join(directory, name)
      s3_emulator.upload(local, f"{bucket}/out/{os.path.relpath(local, real_output.output)}")
  outputs.set_filesystem_options(s3_emulator.beam_flags)
  remote = outputs.open_output(f"{bucket}/out/")  # resolved once: each S3 call costs ~0.5 s
  assert outputs.output_dirs(remote) == [f"{bucket}/out"]
  assert outputs.models(remote) == list(_MODELS)
  assert remote.committed == {"": frozenset([real_output.summary.run_id])}
  clips = outputs.read_clips(remote, "clap", ["uri", "embedding"])
  assert clips.equals(outputs.read_clips(real_output.output, "clap", ["uri", "embedding"]))
  assert outputs.provenances(remote, "yamnet") == outputs.provenances(real_output.output, "yamnet")
  assert set(outputs.ledger(remote).committed) == {real_output.summary.run_id}


def test_vggish_only_layout_reads_as_model_vggish_written_by_the_test(tmp_path):
  """The VGGish-only pipeline's layout (clips/, frames/, tfrecord/, errors/ at the top,
  errors without a model column) and provenance (``checkpoint_uri``, ``pca_params_uri``,
  their sha256 in ``settings``; no ``options``): read as model ``vggish`` by every reader;
  searchable with --like, not with --audio (how to embed a query is not recorded)."""
  from explore import search, sql
  from explore.testing import synthetic_provenance, write_run_json

  out = str(tmp_path / "legacy")
  run_id = "20261121T154003Z-76ed42"
  new_style = synthetic_provenance("vggish", run_id)
  provenance = {"run_id": run_id, "settings": new_style["settings"],
                "settings_sha256": new_style["settings_sha256"], "versions": new_style["versions"],
                **{f"{name}_uri": a["uri"] for name, a in new_style["assets"].items()}}
  vectors = np.random.default_rng(0).standard_normal((3, 128)).astype(np.float32)
  uris = [f"/data/a{i}.wav" for i in range(3)]
  write_table(pa.table({"uri": uris, "run_id": [run_id] * 3,
                        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 128)}),
              os.path.join(out, "clips"), run_id, provenance)
  write_table(pa.table({"uri": uris, "frame_index": pa.array([0, 0, 0], pa.int32()),
                        "raw_embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 128)}),
              os.path.join(out, "frames"), run_id, provenance)
  write_table(pa.table({"uri": ["/data/short.wav"], "stage": ["frontend"], "error_type": ["too_short"],
                        "run_id": [run_id]}), os.path.join(out, "errors"), run_id, provenance)
  write_run_json(out, run_id, ["vggish"], {"vggish": provenance})
  assert outputs.models(out) == ["vggish"]
  assert outputs.read_clips(out, "vggish")["uri"].to_pylist() == uris
  assert outputs.read_frames(out, "vggish").num_rows == 3
  record = summary.describe(out)["partitions"][0]["models"]["vggish"]
  assert (record["clips"], record["frames"], record["errors_by_type"]) == (3, 3, {"too_short": 1})
  assert record["runs"][run_id]["assets"] == new_style["assets"]
  con = sql.connect(out)
  assert con.sql("SELECT count(*) FROM vggish_clips").fetchone() == (3,)
  assert con.sql("SELECT count(*) FROM errors").fetchone() == (1,)
  index = search.open_index(out, "vggish", cache_dir=str(tmp_path / "cache"))
  assert index.query(search.query_vector_from_row(index, uris[1]), 1)[0].uri == uris[1]
  with pytest.raises(ConfigError, match="record the vggish options .* search with --like"):
    search.query_vector_from_audio(index, "vggish", "/data/a0.wav")
