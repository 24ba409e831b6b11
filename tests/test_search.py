"""Search (explore.search, python -m pipelines.search) on REAL pipeline outputs.

``real_output`` (``tests/explore_fixtures.py``) is one real run of vggish, yamnet and clap
over a small corpus with test weights. Expected answers are computed independently: clip
embeddings read with pyarrow, cosines in float64 numpy, CLAP's text tower loaded with
``models.clap.load_clap``. The command line is run as a user runs it, in a subprocess.
Outputs WRITTEN BY THE TEST (``explore.testing``, in tests named so) remain only where a
shape is needed that one real run does not give: committed runs with different settings,
and part files added to an output between two searches.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audiobeam.errors import AssetError, ConfigError
from explore import search
from explore.testing import synthetic_provenance, write_synthetic_output, write_table
from pipelines import search as search_cli

pytest_plugins = ("explore_fixtures",)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TOLERANCE = 1e-5  # the pipeline's rows vs the same computation run directly (test_multimodel)


@pytest.fixture()
def cache_dir(tmp_path):
  return str(tmp_path / "cache")


def _tree(path: str) -> list[tuple[str, int, int]]:
  return sorted((os.path.relpath(os.path.join(d, n), path), os.path.getsize(os.path.join(d, n)),
                 os.stat(os.path.join(d, n)).st_mtime_ns)
                for d, _, names in os.walk(path) for n in names)


def _clips(output: str, model: str) -> tuple[list[str], np.ndarray]:
  """(uris, float64 [N, D] embeddings) of a model's clips, read with pyarrow alone."""
  table = pq.read_table(os.path.join(output, model, "clips"), columns=["uri", "embedding"])
  return table["uri"].to_pylist(), np.stack(table["embedding"].to_numpy(zero_copy_only=False)).astype(np.float64)


def _cosines(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
  query = np.asarray(query, np.float64)
  return (matrix @ query) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))


def _cli(*args: str, env_cache: str) -> subprocess.CompletedProcess:
  """``python -m pipelines.search ...`` in a child process, from the repository root."""
  env = {**os.environ, "AUDIOBEAM_CACHE_DIR": env_cache}
  return subprocess.run([sys.executable, "-m", "pipelines.search", *args], cwd=_REPO, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def _example(real_output, name: str) -> str:
  return next(f for f in real_output.files if f.endswith(name))


# --- the index ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["vggish", "yamnet", "clap"])
def test_like_is_exact_cosine_over_the_real_clips(real_output, cache_dir, model):
  uris, matrix = _clips(real_output.output, model)
  index = search.open_index(real_output.output, model, cache_dir=cache_dir)
  assert index.built and len(index) == len(uris) and index.dim == matrix.shape[1]
  assert sorted(index.rows["uri"].to_pylist()) == sorted(uris)
  query_uri = _example(real_output, "tone_440hz.wav")
  vector = search.query_vector_from_row(index, query_uri)
  hits = index.query(vector, top_k=len(uris) + 5)
  expected = _cosines(matrix, matrix[uris.index(query_uri)])
  assert hits[0].uri == query_uri and hits[0].score == pytest.approx(1.0, abs=1e-6)
  assert len(hits) == len(uris) and [h.rank for h in hits] == list(range(1, len(uris) + 1))
  np.testing.assert_allclose([h.score for h in hits], [expected[uris.index(h.uri)] for h in hits],
                             atol=2e-6)
  assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
  assert hits[0].start_seconds is None


def test_index_is_cached_outside_the_output_and_rebuilt_when_broken(real_output, cache_dir):
  before = _tree(real_output.output)
  index = search.open_index(real_output.output, "yamnet", cache_dir=cache_dir)
  assert index.directory.startswith(os.path.join(cache_dir, "search"))
  assert _tree(real_output.output) == before  # nothing written into the user's output
  assert index.matrix.dtype == np.float32 and isinstance(index.matrix, np.memmap)
  np.testing.assert_allclose(np.linalg.norm(index.matrix, axis=1), 1.0, rtol=1e-6)
  assert index.info["run_ids"] == [real_output.summary.run_id]
  assert index.provenance["settings_sha256"] == real_output.summary.provenance["yamnet"]["settings_sha256"]
  again = search.open_index(real_output.output, "yamnet", cache_dir=cache_dir)
  assert not again.built and again.directory == index.directory
  with open(os.path.join(index.directory, "index.json"), "w") as f:
    f.write("{")
  assert search.open_index(real_output.output, "yamnet", cache_dir=cache_dir).built
  assert search.open_index(real_output.output, "yamnet", cache_dir=cache_dir, rebuild=True).built


def test_a_second_committed_run_is_searched_with_the_first(appended_output, cache_dir):
  appended, new_files = appended_output
  index = search.open_index(appended.output, "vggish", cache_dir=cache_dir)
  assert len(index.info["run_ids"]) == 2 and set(new_files) <= set(index.rows["uri"].to_pylist())
  hit = index.query(search.query_vector_from_row(index, new_files[1]), 1)[0]
  assert hit.uri == new_files[1] and hit.score == pytest.approx(1.0, abs=1e-6)


def test_frames_have_start_times(real_output, cache_dir):
  frames = pq.read_table(os.path.join(real_output.output, "vggish", "frames"))
  index = search.open_index(real_output.output, "vggish", "frames", cache_dir=cache_dir)
  assert len(index) == frames.num_rows and index.info["column"] == "raw_embedding"
  uri = _example(real_output, "music_44k_stereo.flac")
  vector = search.query_vector_from_row(index, uri, start_seconds=0.96)
  hit = index.query(vector, top_k=3)[0]
  assert (hit.uri, hit.start_seconds, hit.end_seconds) == (uri, 0.96, 0.96 + 0.975)
  assert hit.score == pytest.approx(1.0, abs=1e-6)
  with pytest.raises(ConfigError, match="no row for '/nope.wav'"):
    search.query_vector_from_row(index, "/nope.wav")


def test_bad_queries_are_refused(real_output, cache_dir):
  index = search.open_index(real_output.output, "vggish", cache_dir=cache_dir)
  with pytest.raises(ConfigError, match="128 numbers"):
    index.query(np.ones(512), 5)
  with pytest.raises(ConfigError, match="non-zero"):
    index.query(np.zeros(128), 5)
  with pytest.raises(ConfigError, match="top_k"):
    index.query(np.ones(128), 0)
  with pytest.raises(ConfigError, match="level to be one of clips, frames"):
    search.open_index(real_output.output, "vggish", "words", cache_dir=cache_dir)
  with pytest.raises(ConfigError, match=r"models in .* \(clap, vggish, yamnet\), found 'ast'"):
    search.open_index(real_output.output, "ast", cache_dir=cache_dir)


def test_key_follows_the_committed_parts_written_by_the_test(tmp_path, cache_dir):
  out = str(tmp_path / "grow")
  write_synthetic_output(out, n_clips=8, models=("vggish",), leftover=False, write_frames=False)
  first = search.open_index(out, "vggish", cache_dir=cache_dir)
  run_json = os.path.join(out, "run.json")
  record = json.load(open(run_json))
  # A second committed run adds rows: another key, a fresh build.
  extra = "20260310T000000Z-e0e0e0"
  write_table(pa.table({"uri": ["/data/audio/new.wav"], "embedding": pa.FixedSizeListArray.from_arrays(
      pa.array(np.ones(128, np.float32)), 128)}), os.path.join(out, "vggish", "clips"), extra,
      record["provenance"]["vggish"])
  record["committed_run_ids"] = [record["run_id"], extra]
  json.dump(record, open(run_json, "w"))
  second = search.open_index(out, "vggish", cache_dir=cache_dir)
  assert second.built and second.directory != first.directory and len(second) == 9


def test_mixed_settings_are_refused_written_by_the_test(tmp_path, cache_dir):
  out = str(tmp_path / "mixed")
  write_synthetic_output(out, n_clips=4, models=("vggish",), leftover=False, write_frames=False)
  other = "20260311T000000Z-0the12"
  write_table(pa.table({"uri": ["/x.wav"], "embedding": pa.FixedSizeListArray.from_arrays(
      pa.array(np.ones(128, np.float32)), 128)}), os.path.join(out, "vggish", "clips"), other,
      synthetic_provenance("vggish", other, settings={"pooling": "max"}))
  record = json.load(open(os.path.join(out, "run.json")))
  record["committed_run_ids"] = [record["run_id"], other]
  json.dump(record, open(os.path.join(out, "run.json"), "w"))
  with pytest.raises(ConfigError, match="one setting .* not comparable"):
    search.open_index(out, "vggish", cache_dir=cache_dir)


# --- --audio: the query embedded as the index's clips were ------------------------------------

@pytest.mark.parametrize("model", ["vggish", "yamnet", "clap"])
def test_audio_query_finds_the_file_first(real_output, cache_dir, model):
  uris, matrix = _clips(real_output.output, model)
  query = _example(real_output, "music_44k_stereo.flac")
  vector = search.query_vector_from_audio(real_output.output, model, query, cache_dir=cache_dir)
  np.testing.assert_allclose(vector, matrix[uris.index(query)], atol=_TOLERANCE, rtol=0)
  hits = search.open_index(real_output.output, model, cache_dir=cache_dir).query(vector, 3)
  assert hits[0].uri == query and hits[0].score > 0.9999
  assert hits[1].score < hits[0].score


def test_audio_query_of_frames_finds_the_moment(real_output, cache_dir):
  query = _example(real_output, "tone_880hz.wav")
  index = search.open_index(real_output.output, "vggish", "frames", cache_dir=cache_dir)
  vector = search.query_vector_from_audio(index, "vggish", query, level="frames")
  hits = index.query(vector, 3)
  assert hits[0].uri == query and hits[0].start_seconds is not None


def test_audio_query_refuses_other_weights_with_both_sha256(real_output, other_weights, cache_dir):
  query = _example(real_output, "speech_16k_mono.wav")
  recorded = real_output.summary.provenance
  with pytest.raises(AssetError, match=(
      r"other weights: checkpoint: the index was made with sha256 "
      + recorded["vggish"]["assets"]["checkpoint"]["sha256"] + r" .*, the query would use [0-9a-f]{64}")):
    search.query_vector_from_audio(real_output.output, "vggish", query, cache_dir=cache_dir,
                                   overrides=other_weights["vggish"])
  # An asset name as pipelines.inspect shows it ("weights") stands for its option.
  with pytest.raises(AssetError, match="weights: the index was made with sha256 "
                                       + recorded["yamnet"]["assets"]["weights"]["sha256"]):
    search.query_vector_from_audio(real_output.output, "yamnet", query, cache_dir=cache_dir,
                                   overrides={"weights": other_weights["yamnet"]["yamnet_weights"]})
  with pytest.raises(ConfigError, match=r"--asset NAME=PATH with NAME one of yamnet's file "
                                        r"options \(yamnet_weights, yamnet_class_map\).*'checkpoint'"):
    search.query_vector_from_audio(real_output.output, "yamnet", query, cache_dir=cache_dir,
                                   overrides={"checkpoint": other_weights["vggish"]["checkpoint"]})
  # Local copies of the SAME weights are accepted (a user searching on another machine).
  vector = search.query_vector_from_audio(real_output.output, "yamnet", query, cache_dir=cache_dir,
                                          overrides={"weights": real_output.weights["yamnet"]["yamnet_weights"]})
  assert vector.shape == (1024,)


def test_audio_query_with_other_settings_is_refused(real_output, cache_dir):
  provenance = json.loads(json.dumps(real_output.summary.provenance["vggish"]))
  provenance["common"]["pooling"] = "max"  # the index says mean; max pooling is another space
  with pytest.raises(ConfigError, match=r"other settings \(pooling: index 'mean', query 'max'\)"):
    search.embedder_for("vggish", provenance, cache_dir=cache_dir)


# --- --text: CLAP's text tower, in the space of its clips ---------------------------------------

def test_text_query_ranks_clips_by_cosine_with_the_text_embedding(real_output, cache_dir):
  from models.clap import load_clap

  text = "a pure tone"
  vector = search.query_vector_from_text(real_output.output, "clap", text, cache_dir=cache_dir)
  hits = search.open_index(real_output.output, "clap", cache_dir=cache_dir).query(vector, 20)
  # Independently: the checkpoint's text tower, and the clip rows read with pyarrow.
  runner = load_clap(real_output.weights["clap"]["clap_checkpoint"], "cpu")
  expected_text = runner.embed_text([text])[0]
  np.testing.assert_allclose(vector, expected_text, atol=1e-6)
  uris, matrix = _clips(real_output.output, "clap")
  expected = _cosines(matrix, expected_text)
  assert sorted(h.uri for h in hits) == sorted(uris)
  # Each hit's score is its clip's cosine with the text, and they come best first (that
  # is the ranking, whatever the order of float32 near-ties).
  np.testing.assert_allclose([h.score for h in hits], [expected[uris.index(h.uri)] for h in hits],
                             atol=1e-5)
  np.testing.assert_allclose([h.score for h in hits], np.sort(expected)[::-1], atol=1e-5)


def test_text_queries_need_a_text_model_and_the_index_weights(real_output, other_weights, cache_dir):
  with pytest.raises(ConfigError, match=r"embeds audio only: search it with --audio .* --model clap"):
    search.query_vector_from_text(real_output.output, "vggish", "a dog barking")
  with pytest.raises(ConfigError, match="non-empty description"):
    search.query_vector_from_text(real_output.output, "clap", "  ")
  with pytest.raises(AssetError, match="other weights: checkpoint: the index was made with"):
    search.query_vector_from_text(real_output.output, "clap", "a dog", cache_dir=cache_dir,
                                  overrides={"checkpoint": other_weights["clap"]["clap_checkpoint"]})
  assert search.text_models() == ("clap",)


# --- the command line, as a user runs it ----------------------------------------------------------

def test_cli_text_json_like_table_and_audio_frames(real_output, tmp_path, capsys):
  cache = str(tmp_path / "cache")
  done = _cli("--index", real_output.output, "--text", "noise, hiss", "--json", "--top_k", "3",
              env_cache=cache)
  assert done.returncode == 0, done.stderr
  result = json.loads(done.stdout)
  assert result["index"]["model"] == "clap"
  assert result["index"]["rows"] == len(_clips(real_output.output, "clap")[0])
  assert result["query"]["text"] == "noise, hiss" and len(result["results"]) == 3
  assert result["index"]["directory"].startswith(os.path.join(cache, "search"))
  scores = [r["score"] for r in result["results"]]
  assert scores == sorted(scores, reverse=True) and result["results"][0]["rank"] == 1
  direct = search.open_index(real_output.output, "clap", cache_dir=cache).query(
      search.query_vector_from_text(real_output.output, "clap", "noise, hiss", cache_dir=cache), 3)
  assert [r["uri"] for r in result["results"]] == [h.uri for h in direct]

  uri = _example(real_output, "noise_0.wav")
  done = _cli("--index", real_output.output, "--like", uri, "--top_k", "4", env_cache=cache)
  assert done.returncode == 0, done.stderr
  lines = done.stdout.splitlines()
  assert lines[0].split() == ["rank", "score", "uri"] and len(lines) == 5
  assert lines[1].split() == ["1", "1.0000", uri]
  # No --model: the run's first model (it ran with --model vggish,yamnet,clap).
  assert "building the search index of vggish clips" in done.stderr

  # In this process (the VGGish model stays loaded from the tests above; a child would
  # spend seconds importing TensorFlow): the table of frames.
  query = _example(real_output, "tone_220hz.wav")
  assert search_cli.main(["--index", real_output.output, "--model", "vggish", "--audio", query,
                          "--frames", "--top_k", "2", "--cache_dir", cache]) == 0
  table = capsys.readouterr().out.splitlines()
  assert table[0].split() == ["rank", "score", "start_s", "end_s", "uri"] and table[1].endswith(query)


@pytest.mark.parametrize("args, message", [
    (["--model", "ast", "--like", "x.wav"],
     r"expected --model to be one of the models in .* \(clap, vggish, yamnet\), found 'ast'"),
    (["--model", "vggish", "--text", "a dog"], r"embeds audio only: search it with --audio"),
    (["--like", "x.wav", "--top_k", "0"], r"expected --top_k >= 1, found 0"),
    (["--model", "yamnet", "--audio", "QUERY", "--asset", "nonsense"],
     r"expected --asset NAME=PATH, found 'nonsense'"),
    (["--model", "yamnet", "--like", "/not/in/the/index.wav"], r"no row for '/not/in/the/index.wav'"),
    (["--model", "vggish", "--audio", "QUERY", "--checkpoint", "OTHER", "--pca_params", "OTHERPCA"],
     r"found other weights: checkpoint: the index was made with sha256 [0-9a-f]{64}"),
])
def test_cli_bad_input_exits_2_with_one_clear_line(real_output, other_weights, tmp_path, args, message):
  replace = {"QUERY": _example(real_output, "speech_8k_mono.wav"),
             "OTHER": other_weights["vggish"]["checkpoint"],
             "OTHERPCA": other_weights["vggish"]["pca_params"]}
  done = _cli("--index", real_output.output, *[replace.get(a, a) for a in args],
              env_cache=str(tmp_path / "cache"))
  assert done.returncode == 2 and done.stdout == ""
  errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and errors[0].startswith("error: expected"), done.stderr
  assert re.search(message, errors[0]), errors[0]


def test_cli_missing_output_exits_2(tmp_path):
  done = _cli("--index", str(tmp_path / "nowhere"), "--text", "a dog", env_cache=str(tmp_path / "c"))
  assert done.returncode == 2
  assert "error: expected an audiobeam output with run.json" in done.stderr
  assert not (tmp_path / "nowhere").exists() and not (tmp_path / "c").exists()


def test_cli_text_on_an_output_without_a_text_model_written_by_the_test(tmp_path, capsys):
  out = write_synthetic_output(str(tmp_path / "out"), n_clips=4, models=("vggish", "yamnet"),
                               leftover=False, write_frames=False).output
  assert search_cli.main(["--index", out, "--text", "a dog", "--cache_dir", str(tmp_path)]) == 2
  error = capsys.readouterr().err
  assert error.startswith("error: expected --text to search a model that embeds text and audio "
                          "in one space (clap), found only vggish, yamnet")
