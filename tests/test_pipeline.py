"""Real pipeline runs on the local runner over real files; outputs read back.

One default run (module fixture) serves most assertions; a second run (pad + max +
parquet only) and its re-run serve the short-clip, pooling, config round-trip and
re-run tests; one small run uses the multi-processing local runner.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from audiobeam.bundle import Common
from pipelines import embed
from pipelines.lifecycle import ForeignFilesError
import pipeline_fixtures as pf
from transforms import records
from vggish.bundle import VGGishBundle
from vggish.params import DEFAULT_PARAMS

E = DEFAULT_PARAMS.embedding_size


def _argv(corpus, output, weights, *extra):
  # The tone file is matched twice (once spelled with '..'); it must be embedded once.
  return ["--input", str(corpus / "*.*"),
          "--input", str(corpus / "sub" / ".." / "tone_16k_mono.wav"),
          "--input", str(corpus / "sub/**"), "--input", str(corpus / "missing_*.wav"),
          "--output", str(output), "--checkpoint", weights.checkpoint,
          "--pca_params", weights.pca_params, "--batch_size", "8", *extra]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  return pf.write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def default_run(corpus, test_weights, tmp_path_factory):
  output = tmp_path_factory.mktemp("out_default")
  summary = embed.run(_argv(corpus, output, test_weights))
  return summary, output


@pytest.fixture(scope="module")
def outputs(default_run):
  _, output = default_run
  frames, frames_schema = pf.read_parquet_dir(output / "vggish" / "frames")
  clips, clips_schema = pf.read_parquet_dir(output / "vggish" / "clips")
  errors, errors_schema = pf.read_parquet_dir(output / "errors")
  return {"frames": frames, "clips": clips, "errors": errors, "schemas": {
      "frames": frames_schema, "clips": clips_schema, "errors": errors_schema}}


@pytest.fixture(scope="module")
def library(test_weights):
  from vggish.api import VGGish
  return VGGish.load(checkpoint=test_weights.checkpoint, pca_params=test_weights.pca_params)


def _uri(corpus, name):
  return str(corpus / name)


def _frames_of(frames: pa.Table, uri: str):
  rows = [r for r in frames.to_pylist() if r["uri"] == uri]
  rows.sort(key=lambda r: r["frame_index"])
  return rows


# --- accounting ---------------------------------------------------------------------------


def test_every_matched_input_is_in_exactly_one_of_clips_or_errors(corpus, outputs):
  clip_uris = outputs["clips"].column("uri").to_pylist()
  error_uris = [u for u, s in zip(outputs["errors"].column("uri").to_pylist(),
                                  outputs["errors"].column("stage").to_pylist()) if s != "match"]
  matched = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
  assert sorted(clip_uris + error_uris) == matched
  assert len(set(clip_uris)) == len(clip_uris)  # the file matched by two patterns: once
  assert sorted(clip_uris) == sorted(_uri(corpus, n) for n in pf.GOOD_FILES)


def test_bad_inputs_become_error_rows_with_stage_and_type(corpus, outputs):
  rows = {r["uri"]: r for r in outputs["errors"].to_pylist()}
  short = rows[_uri(corpus, pf.SHORT_FILE)]
  assert (short["stage"], short["error_type"]) == ("frontend", "too_short")
  corrupt = rows[_uri(corpus, pf.CORRUPT_FILE)]
  assert corrupt["stage"] == "decode"
  assert corrupt["error_type"] and not corrupt["error_type"].startswith("unexpected_")
  assert corrupt["message"] and _uri(corpus, pf.CORRUPT_FILE) in corrupt["message"]
  no_match = rows[str(corpus / "missing_*.wav")]
  assert (no_match["stage"], no_match["error_type"]) == ("match", "no_match")
  assert corrupt["size_bytes"] == os.path.getsize(_uri(corpus, pf.CORRUPT_FILE))


def test_summary_counts_equal_rows_written(default_run, outputs, corpus):
  summary, output = default_run
  counts = summary.counts["models"]["vggish"]
  assert counts["files_embedded"] == outputs["clips"].num_rows == len(pf.GOOD_FILES)
  assert counts["errors"] == outputs["errors"].num_rows == 3
  assert set(outputs["errors"].column("model").to_pylist()) == {"vggish"}
  assert counts["frames"] == outputs["frames"].num_rows
  assert counts["frames"] == sum(outputs["clips"].column("num_frames").to_pylist())
  assert summary.counts["files_matched"] == len([p for p in corpus.rglob("*") if p.is_file()])
  assert counts["errors_by_type"]["no_match"] == 1
  assert counts["tfrecord_records"] == len(pf.GOOD_FILES)
  assert "accounting_mismatches" not in counts
  assert summary.metrics["vggish_files_embedded"] == counts["files_embedded"]
  assert summary.metrics["vggish_frames"] == counts["frames"]
  audio_seconds = sum(outputs["clips"].column("duration_seconds").to_pylist())
  assert counts["audio_seconds"] == pytest.approx(audio_seconds, abs=1e-6)
  text = summary.format()
  assert f"{counts['files_embedded']} embedded" in text and "too_short=1" in text


def test_patches_from_many_files_are_packed_into_full_batches(default_run):
  summary, _ = default_run
  frames = summary.counts["models"]["vggish"]["frames"]  # 6 files, batch_size 8: one call per 8 patches
  assert summary.metrics["vggish_model_call_inputs"] == frames
  assert summary.metrics["vggish_model_calls"] == -(-frames // 8) < len(pf.GOOD_FILES)
  assert "model calls" in summary.format()


# --- schemas --------------------------------------------------------------------------------


def test_frames_schema_is_exactly_the_contract(outputs):
  schema = outputs["schemas"]["frames"]
  assert [(f.name, f.type) for f in schema] == [
      ("uri", pa.string()), ("frame_index", pa.int32()), ("start_seconds", pa.float64()),
      ("end_seconds", pa.float64()), ("raw_embedding", pa.list_(pa.float32(), E)),
      ("audio_embedding", pa.list_(pa.uint8(), E))]


def test_clips_and_errors_schemas(outputs):
  clips = outputs["schemas"]["clips"]
  assert clips.field("embedding").type == pa.list_(pa.float32(), E)
  for name, type_ in [("uri", pa.string()), ("duration_seconds", pa.float64()),
                      ("sample_rate", pa.int32()), ("channels", pa.int32()),
                      ("num_frames", pa.int32()), ("pooling", pa.string())]:
    assert clips.field(name).type == type_
  assert clips.names == records.clips_schema(VGGishBundle({}, Common()).clip_fields()).names
  assert clips.field("normalize").type == pa.string()
  assert outputs["schemas"]["errors"].names[:5] == ["uri", "model", "stage", "error_type",
                                                    "message"]


def test_parquet_is_compressed_and_carries_provenance(default_run, test_weights):
  import pyarrow.parquet as pq
  from vggish.assets import sha256_of

  summary, output = default_run
  for sub in ("vggish/frames", "vggish/clips", "errors"):
    path = sorted((output / sub).glob("part-*.parquet"))[0]
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    provenance = json.loads(pq.read_schema(path).metadata[b"audiobeam.provenance"])
    if sub == "errors":
      assert provenance == {"run_id": summary.run_id, "models": summary.provenance}
    else:
      assert provenance == summary.provenance["vggish"]
  vggish = summary.provenance["vggish"]
  settings = vggish["settings"]
  assert settings["checkpoint_sha256"] == sha256_of(test_weights.checkpoint, checkpoint=True)
  assert settings["pca_params_sha256"] == sha256_of(test_weights.pca_params)
  assert vggish["assets"]["checkpoint"]["sha256"] == settings["checkpoint_sha256"]
  assert settings["resampler"] == "kaiser_best" and settings["params"]["patch_hop_seconds"] == 0.96
  assert vggish["versions"]["apache-beam"]


# --- values ---------------------------------------------------------------------------------


def test_frames_are_numbered_and_timed_like_the_reference(corpus, outputs):
  frames = outputs["frames"]
  by_uri = {}
  for row in frames.select(["uri", "frame_index", "start_seconds", "end_seconds"]).to_pylist():
    by_uri.setdefault(row["uri"], []).append(row)
  clips = {r["uri"]: r for r in outputs["clips"].to_pylist()}
  assert set(by_uri) == set(clips)
  for uri, rows in by_uri.items():
    rows.sort(key=lambda r: r["frame_index"])
    assert [r["frame_index"] for r in rows] == list(range(clips[uri]["num_frames"]))
    for r in rows:
      assert r["start_seconds"] == pytest.approx(r["frame_index"] * 0.96, abs=1e-9)
      assert r["end_seconds"] == pytest.approx(r["start_seconds"] + 0.975, abs=1e-9)
  tone = clips[_uri(corpus, "tone_16k_mono.wav")]
  assert tone["num_frames"] == DEFAULT_PARAMS.num_patches(int(3.1 * 16000)) == 3
  assert (tone["sample_rate"], tone["channels"]) == (16000, 1)
  assert tone["duration_seconds"] == pytest.approx(3.1)
  music = clips[_uri(corpus, "music_44k_stereo.flac")]
  assert (music["sample_rate"], music["channels"]) == (44100, 2)
  assert music["num_frames"] == DEFAULT_PARAMS.num_patches(int(2.2 * 16000))


def test_pipeline_embeddings_equal_the_library_api(corpus, outputs, library):
  frames = outputs["frames"]
  for name in pf.GOOD_FILES:
    expected = library.embed_file(_uri(corpus, name))
    rows = _frames_of(frames, _uri(corpus, name))
    assert len(rows) == len(expected), name
    raw = np.array([r["raw_embedding"] for r in rows], np.float32)
    quantized = np.array([r["audio_embedding"] for r in rows], np.uint8)
    np.testing.assert_allclose(raw, expected.raw, atol=1e-4, rtol=0, err_msg=name)
    assert np.mean(quantized == expected.quantized) >= 0.999, name
    np.testing.assert_allclose([r["start_seconds"] for r in rows], expected.start_seconds)


def test_embeddings_vary_and_are_finite(outputs):
  raw = np.array(outputs["frames"].column("raw_embedding").to_pylist(), np.float32)
  assert raw.shape[1] == E and np.all(np.isfinite(raw))
  assert np.std(raw, axis=0).mean() > 1e-3  # different inputs, different embeddings


def test_clip_embedding_is_the_mean_of_its_frames(corpus, outputs):
  for clip in outputs["clips"].to_pylist():
    rows = _frames_of(outputs["frames"], clip["uri"])
    raw = np.array([r["raw_embedding"] for r in rows], np.float64)
    np.testing.assert_allclose(clip["embedding"], raw.mean(axis=0), rtol=1e-6, atol=1e-6)
    assert clip["pooling"] == "mean" and not clip["padded"]


def test_tfrecords_are_audioset_sequence_examples(default_run, corpus, outputs):
  import tensorflow as tf

  _, output = default_run
  serialized = pf.read_tfrecords(output / "vggish" / "tfrecord")
  assert len(serialized) == len(pf.GOOD_FILES)
  clips = {r["uri"]: r for r in outputs["clips"].to_pylist()}
  for example in serialized:
    context, sequence = tf.io.parse_single_sequence_example(
        example,
        context_features={"video_id": tf.io.FixedLenFeature([], tf.string),
                          "start_time_seconds": tf.io.FixedLenFeature([], tf.float32),
                          "end_time_seconds": tf.io.FixedLenFeature([], tf.float32),
                          "labels": tf.io.VarLenFeature(tf.int64)},
        sequence_features={"audio_embedding": tf.io.FixedLenSequenceFeature([], tf.string)})
    uri = context["video_id"].numpy().decode()
    embedding = tf.io.decode_raw(sequence["audio_embedding"], tf.uint8).numpy()
    rows = _frames_of(outputs["frames"], uri)
    assert embedding.shape == (clips[uri]["num_frames"], E)
    np.testing.assert_array_equal(embedding, np.array([r["audio_embedding"] for r in rows]))
    assert context["start_time_seconds"].numpy() == 0.0
    assert context["end_time_seconds"].numpy() == pytest.approx(clips[uri]["duration_seconds"])
    assert context["labels"].values.numpy().size == 0


def test_part_file_names_do_not_derive_from_input_names(default_run):
  summary, output = default_run
  for path in output.rglob("*"):
    if path.is_file() and path.name != "run.json" and "_audiobeam" not in path.parts:
      assert path.name.startswith(f"part-{summary.run_id}-"), path


# --- pad + max + parquet only, then a re-run from run.json ----------------------------------


@pytest.fixture(scope="module")
def pad_run(corpus, test_weights, tmp_path_factory):
  output = tmp_path_factory.mktemp("out_pad")
  summary = embed.run(_argv(corpus, output, test_weights, "--short_clips", "pad",
                            "--pooling", "max", "--format", "parquet"))
  return summary, output


def test_short_clips_pad_embeds_a_short_clip_as_one_padded_frame(pad_run, corpus):
  _, output = pad_run
  clips, _ = pf.read_parquet_dir(output / "vggish" / "clips")
  short = [r for r in clips.to_pylist() if r["uri"] == _uri(corpus, pf.SHORT_FILE)]
  assert len(short) == 1 and short[0]["num_frames"] == 1 and short[0]["padded"]
  assert short[0]["duration_seconds"] == pytest.approx(0.5)
  errors, _ = pf.read_parquet_dir(output / "errors")
  assert _uri(corpus, pf.SHORT_FILE) not in errors.column("uri").to_pylist()


def test_pooling_max_and_parquet_only(pad_run):
  _, output = pad_run
  clips, _ = pf.read_parquet_dir(output / "vggish" / "clips")
  frames, _ = pf.read_parquet_dir(output / "vggish" / "frames")
  for clip in clips.to_pylist():
    rows = _frames_of(frames, clip["uri"])
    np.testing.assert_array_equal(
        clip["embedding"], np.array([r["raw_embedding"] for r in rows], np.float32).max(axis=0))
    assert clip["pooling"] == "max"
  assert not (output / "vggish" / "tfrecord").exists()


def test_run_records_are_readable_like_the_parquet_parts(pad_run):
  # run.json and the ledger's records get what open() gives a new file (0o666 less the
  # umask), as the Parquet parts beside them do: colleagues and services that can read
  # the rows can read which weights made them.
  _, output = pad_run
  part_mode = next((output / "vggish" / "clips").glob("part-*")).stat().st_mode & 0o777
  records = [output / "run.json", *(output / "_audiobeam").rglob("*.json*")]
  assert len(records) >= 3
  assert {str(r.relative_to(output)): r.stat().st_mode & 0o777 for r in records} == {
      str(r.relative_to(output)): part_mode for r in records}


@pytest.fixture(scope="module")
def rerun(pad_run):
  """Re-runs pad_run from its run.json into the same output, after planting files that
  look like another run's leftovers but that audiobeam did not write (no record of their
  run id): the re-run is refused until --output_mode replace, and they stay untouched."""
  first, output = pad_run
  planted_part = output / "vggish" / "frames" / "part-19990101T000000Z-dead00-00000-of-00001.parquet"
  planted_part.write_bytes(b"partial")
  planted_temp = output / "vggish" / "clips" / "beam-temp-part-19990101T000000Z-dead00-0123"
  planted_temp.mkdir()
  (planted_temp / "shard").write_bytes(b"partial")
  with pytest.raises(ForeignFilesError, match="did not write"):
    embed.run(["--config", str(output / "run.json")])
  second = embed.run(["--config", str(output / "run.json"), "--output_mode", "replace"])
  return first, second, output, (planted_part, planted_temp / "shard")


def test_run_json_round_trips_as_config(rerun):
  first, second, output, _ = rerun
  assert second.config == {**first.config, "output_mode": "replace"}
  assert pf.read_run_json(output)["config"] == second.config
  assert (second.provenance["vggish"]["settings_sha256"]
          == first.provenance["vggish"]["settings_sha256"])


def test_rerun_replaces_outputs_without_duplicates_and_leaves_foreign_files(rerun):
  first, second, output, planted = rerun
  assert second.run_id != first.run_id
  for path in planted:
    assert path.read_bytes() == b"partial"  # not ours: never deleted
  for sub in ("vggish/frames", "vggish/clips", "errors"):
    ours = [p.name for p in (output / sub).glob("part-*") if p not in planted]
    assert ours and all(n.startswith(f"part-{second.run_id}-") for n in ours), ours
  clips, _ = pf.read_parquet_dir(output / "vggish" / "clips")
  first_counts, second_counts = (r.counts["models"]["vggish"] for r in (first, second))
  assert clips.num_rows == first_counts["files_embedded"] == second_counts["files_embedded"]
  assert pf.read_run_json(output)["run_id"] == second.run_id
  assert pf.read_run_json(output)["committed_run_ids"] == [second.run_id]


# --- the multi-processing local runner ------------------------------------------------------


@pytest.mark.parametrize("shape", [[], ["--model_copies", "1"]],
                         ids=["model_per_worker", "one_model_shared_by_workers"])
def test_multi_processing_runner_gives_the_same_rows(corpus, test_weights, outputs,
                                                     tmp_path_factory, shape):
  # --model_copies 1: one worker process holds the model, the other calls it through
  # Beam's MultiProcessShared (the Dataflow GPU config's shape).
  output = tmp_path_factory.mktemp("out_mp")
  names = ["tone_16k_mono.wav", "music_44k_stereo.flac", pf.CORRUPT_FILE]
  argv = ["--output", str(output), "--checkpoint", test_weights.checkpoint,
          "--pca_params", test_weights.pca_params, "--format", "parquet",
          "--direct_running_mode=multi_processing", "--direct_num_workers=2", *shape]
  for name in names:
    argv += ["--input", _uri(corpus, name)]
  summary = embed.run(argv)
  counts = summary.counts["models"]["vggish"]
  assert (counts["files_embedded"], counts["errors"]) == (2, 1)
  assert summary.metrics.get("vggish_files_embedded") == 2  # metrics come back from workers
  frames, _ = pf.read_parquet_dir(output / "vggish" / "frames")
  for name in names[:2]:
    got = _frames_of(frames, _uri(corpus, name))
    want = _frames_of(outputs["frames"], _uri(corpus, name))
    np.testing.assert_allclose([r["raw_embedding"] for r in got],
                               [r["raw_embedding"] for r in want], atol=1e-5)
