"""explore.outputs: find and read committed outputs (local, DAG partitions, s3://).

The outputs read here are WRITTEN BY THE TEST (``explore.testing.write_synthetic_output``:
Parquet files in exactly the documented layout, with an uncommitted leftover run), not by
the pipeline: the multi-model pipeline that writes this layout is not merged yet.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from audiobeam.errors import ConfigError, InputError
from cloud_emulators import s3_emulator  # noqa: F401  (fixture)
from explore import outputs
from explore.testing import LEFTOVER_RUN_ID, write_synthetic_output, write_table


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  """Test-written output: vggish, yamnet, clap; 40 clips; 3 errors; one uncommitted run."""
  root = tmp_path_factory.mktemp("explore_outputs")
  return write_synthetic_output(str(root / "out"), n_clips=40)


def test_models_and_committed_clips_only(synthetic):
  assert outputs.models(synthetic.output) == ["clap", "vggish", "yamnet"]
  clips = outputs.read_clips(synthetic.output, "vggish")
  assert clips["uri"].to_pylist() == synthetic.uris
  assert not set(synthetic.leftover_uris) & set(clips["uri"].to_pylist())
  assert set(clips["run_id"].to_pylist()) == {synthetic.run_id}
  leftovers = outputs.uncommitted_part_files(synthetic.output)
  assert [p.run_id for p in leftovers] == [LEFTOVER_RUN_ID]
  embedding = outputs.embedding_matrix(clips["embedding"])
  assert embedding.dtype == np.float32 and embedding.shape == (40, 128)
  np.testing.assert_array_equal(embedding, synthetic.clip_embeddings["vggish"])


def test_frames_labels_errors_and_provenance(synthetic):
  frames = outputs.read_frames(synthetic.output, "vggish")
  assert frames.num_rows == sum(synthetic.frame_counts)
  assert outputs.embedding_column(frames.schema) == "raw_embedding"
  assert outputs.embedding_column(outputs.read_frames(synthetic.output, "clap").schema) == "embedding"
  labels = outputs.read_labels(synthetic.output, "clap")
  assert labels.num_rows == 3 * len(synthetic.uris)
  errors = outputs.read_errors(synthetic.output)
  assert sorted(set(errors["model"].to_pylist())) == ["clap", "vggish", "yamnet"]
  assert errors.num_rows == 3 * len(synthetic.error_uris)
  provs = outputs.provenances(synthetic.output, "vggish")
  run = outputs.read_run_json(synthetic.output)
  assert provs == {synthetic.run_id: run["provenance"]["vggish"]}
  assert provs[synthetic.run_id]["assets"]["checkpoint"]["sha256"]


def test_columns_subset_and_missing_columns(synthetic):
  table = outputs.read_clips(synthetic.output, "yamnet", ["uri", "top_labels", "no_such_column"])
  assert table.column_names == ["uri", "top_labels"]
  assert table["top_labels"].type == pa.list_(pa.string())


def test_no_run_json_is_a_clear_error(tmp_path):
  out = tmp_path / "running"
  write_synthetic_output(str(out), n_clips=4, models=("vggish",), leftover=False)
  os.remove(out / "run.json")
  with pytest.raises(ConfigError, match=r"no run\.json.*20260304T010203Z-abc123.*in progress"):
    outputs.read_clips(str(out), "vggish")
  with pytest.raises(ConfigError, match="neither|no run.json"):
    outputs.models(str(tmp_path / "empty"))


def test_committed_run_ids_from_run_json_list_and_from_manifests(tmp_path):
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


def test_dag_partitions_read_alone_and_together(tmp_path):
  root = tmp_path / "daily"
  day1 = write_synthetic_output(str(root / "dt=2026-03-04"), n_clips=5, models=("vggish",),
                                run_id="20260304T020000Z-d00001", root="/d1")
  day2 = write_synthetic_output(str(root / "dt=2026-03-05"), n_clips=6, models=("vggish",),
                                run_id="20260305T020000Z-d00002", root="/d2")
  assert outputs.output_dirs(str(root)) == [str(root / "dt=2026-03-04"), str(root / "dt=2026-03-05")]
  assert outputs.read_clips(str(root / "dt=2026-03-05"), "vggish")["uri"].to_pylist() == day2.uris
  assert outputs.read_clips(str(root) + "/", "vggish")["uri"].to_pylist() == day1.uris + day2.uris
  assert outputs.read_clips("file://" + str(root), "vggish").num_rows == 11


def test_schemas_of_different_runs_are_unified(tmp_path):
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
  with pytest.raises(InputError, match="same length"):
    outputs.embedding_matrix(pa.array([[1.0], [1.0, 2.0]]))
  with pytest.raises(InputError, match="1 null rows"):
    outputs.embedding_matrix(pa.array([[1.0], None]))
  with pytest.raises(InputError, match="list of numbers"):
    outputs.embedding_matrix(pa.array(["a"]))


def test_reads_s3_output_through_beam_filesystems(s3_emulator, synthetic):
  bucket = s3_emulator.create_bucket("explore-out")
  for directory, _, names in os.walk(synthetic.output):
    for name in names:
      local = os.path.join(directory, name)
      s3_emulator.upload(local, f"{bucket}/out/{os.path.relpath(local, synthetic.output)}")
  outputs.set_filesystem_options(s3_emulator.beam_flags)
  remote = outputs.open_output(f"{bucket}/out/")  # resolved once: each S3 call costs ~0.5 s
  assert outputs.output_dirs(remote) == [f"{bucket}/out"]
  assert outputs.models(remote) == ["clap", "vggish", "yamnet"]
  clips = outputs.read_clips(remote, "vggish", ["uri", "embedding"])
  assert clips["uri"].to_pylist() == synthetic.uris
  assert outputs.provenances(remote, "vggish") == outputs.provenances(synthetic.output, "vggish")


def test_vggish_only_layout_reads_as_model_vggish(tmp_path):
  """The VGGish-only pipeline's layout (clips/, frames/, tfrecord/, errors/ at the top,
  errors without a model column): read as model ``vggish`` by every reader."""
  from explore import sql, summary
  from explore.testing import synthetic_provenance, write_run_json

  out = str(tmp_path / "legacy")
  run_id = "20261121T154003Z-76ed42"
  provenance = synthetic_provenance("vggish", run_id)
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
  con = sql.connect(out)
  assert con.sql("SELECT count(*) FROM vggish_clips").fetchone() == (3,)
  assert con.sql("SELECT count(*) FROM errors").fetchone() == (1,)
