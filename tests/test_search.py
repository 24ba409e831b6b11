"""Search (explore.search, python -m pipelines.search): index, exact top-k, query vectors.

Outputs here are WRITTEN BY THE TEST, in the documented layout: synthetic vectors
(``explore.testing``) for the index mechanics, and, for ``--audio``, real VGGish
embeddings of the example clips computed with the library (``vggish.VGGish`` and the
deterministic TEST weights), because the multi-model pipeline is not merged yet.
``test_generic_bundle_path_with_a_test_only_fake_bundle`` uses a small fake bundle: the
bundle-based models (CLAP's text encoder) are not merged yet either.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pathlib

import numpy as np
import pyarrow as pa
import pytest

from audiobeam.bundle import Asset, Common, FrontEnd, InputBlock, ModelBundle, Option, Postprocessor
from audiobeam.bundle import pool_embedding
from audiobeam.errors import AssetError, ConfigError
from explore import search
from explore.testing import (synthetic_provenance, write_run_json, write_synthetic_output,
                             write_table)
from pipelines import search as search_cli

_REPO = pathlib.Path(__file__).resolve().parents[1]
_EXAMPLES = sorted(glob.glob(str(_REPO / "examples" / "audio" / "*")))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  """Test-written output: vggish + clap, 60 clips in 4 folders, frames, a leftover run."""
  root = tmp_path_factory.mktemp("search")
  return write_synthetic_output(str(root / "out"), n_clips=60, models=("vggish", "clap"))


@pytest.fixture()
def cache_dir(tmp_path):
  return str(tmp_path / "cache")


def _tree(path: str) -> list[tuple[str, int]]:
  return sorted((os.path.relpath(os.path.join(d, n), path), os.path.getsize(os.path.join(d, n)))
                for d, _, names in os.walk(path) for n in names)


def _brute_force(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
  """Independent float64 cosine similarities."""
  m = matrix.astype(np.float64)
  q = query.astype(np.float64)
  return (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))


def test_index_is_cached_outside_the_output_and_exact(synthetic, cache_dir):
  before = _tree(synthetic.output)
  index = search.open_index(synthetic.output, "clap", cache_dir=cache_dir)
  assert index.built and len(index) == 60 and index.dim == 512
  assert index.directory.startswith(os.path.join(cache_dir, "search"))
  assert _tree(synthetic.output) == before  # nothing written into the user's output
  assert index.matrix.dtype == np.float32 and isinstance(index.matrix, np.memmap)
  np.testing.assert_allclose(np.linalg.norm(index.matrix, axis=1), 1.0, rtol=1e-6)
  assert index.rows["uri"].to_pylist() == synthetic.uris  # leftover run not indexed

  embeddings = synthetic.clip_embeddings["clap"]
  query = embeddings[7] + 0.5 * np.random.default_rng(1).standard_normal(512).astype(np.float32)
  hits = index.query(query, top_k=10)
  expected = _brute_force(embeddings, query)
  order = np.argsort(-expected, kind="stable")[:10]
  assert [h.row for h in hits] == order.tolist()
  assert [h.uri for h in hits] == [synthetic.uris[i] for i in order]
  np.testing.assert_allclose([h.score for h in hits], expected[order], atol=2e-6)
  assert [h.rank for h in hits] == list(range(1, 11)) and hits[0].start_seconds is None

  again = search.open_index(synthetic.output, "clap", cache_dir=cache_dir)
  assert not again.built and again.directory == index.directory
  assert search.open_index(synthetic.output, "clap", cache_dir=cache_dir, rebuild=True).built
  assert len(index.query(query, top_k=1000)) == 60


def test_key_follows_the_committed_parts(tmp_path, cache_dir):
  out = str(tmp_path / "grow")
  write_synthetic_output(out, n_clips=8, models=("vggish",), leftover=False, write_frames=False)
  first = search.open_index(out, "vggish", cache_dir=cache_dir)
  run_json = os.path.join(out, "run.json")
  record = json.load(open(run_json))
  # A second committed run (incremental) adds rows: another key, a fresh build.
  extra = "20260310T000000Z-e0e0e0"
  write_table(pa.table({"uri": ["/data/audio/new.wav"], "embedding": pa.FixedSizeListArray.from_arrays(
      pa.array(np.ones(128, np.float32)), 128)}), os.path.join(out, "vggish", "clips"), extra,
      record["provenance"]["vggish"])
  record["committed_run_ids"] = [record["run_id"], extra]
  json.dump(record, open(run_json, "w"))
  second = search.open_index(out, "vggish", cache_dir=cache_dir)
  assert second.built and second.directory != first.directory and len(second) == 9
  hit = second.query(np.ones(128), top_k=1)[0]
  assert hit.uri == "/data/audio/new.wav" and hit.score == pytest.approx(1.0, abs=1e-6)
  # A broken cache entry is rebuilt, not trusted.
  with open(os.path.join(second.directory, "index.json"), "w") as f:
    f.write("{")
  assert search.open_index(out, "vggish", cache_dir=cache_dir).built


def test_frames_level_has_start_times(synthetic, cache_dir):
  index = search.open_index(synthetic.output, "vggish", "frames", cache_dir=cache_dir)
  assert len(index) == sum(synthetic.frame_counts) and index.info["column"] == "raw_embedding"
  uri = synthetic.uris[next(i for i, k in enumerate(synthetic.frame_counts) if k >= 2)]
  vector = search.query_vector_from_row(index, uri, start_seconds=0.96)
  hits = index.query(vector, top_k=3)
  assert (hits[0].uri, hits[0].start_seconds, hits[0].end_seconds) == (uri, 0.96, 0.96 + 0.975)
  assert hits[0].score == pytest.approx(1.0, abs=1e-6)
  with pytest.raises(ConfigError, match="no row for '/nope.wav'"):
    search.query_vector_from_row(index, "/nope.wav")


def test_bad_queries_and_mixed_settings_are_refused(synthetic, tmp_path, cache_dir):
  index = search.open_index(synthetic.output, "vggish", cache_dir=cache_dir)
  with pytest.raises(ConfigError, match="128 numbers"):
    index.query(np.ones(512), 5)
  with pytest.raises(ConfigError, match="non-zero"):
    index.query(np.zeros(128), 5)
  with pytest.raises(ConfigError, match="top_k"):
    index.query(np.ones(128), 0)
  with pytest.raises(ConfigError, match="level to be one of clips, frames"):
    search.open_index(synthetic.output, "vggish", "words", cache_dir=cache_dir)
  with pytest.raises(ConfigError, match="models in .* found 'yamnet'"):
    search.open_index(synthetic.output, "yamnet", cache_dir=cache_dir)
  # Two committed runs with different settings: not one embedding space.
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


def test_text_queries_need_a_text_model(synthetic, cache_dir):
  with pytest.raises(ConfigError, match="embeds audio only: search it with --audio"):
    search.query_vector_from_text(synthetic.output, "vggish", "a dog barking")
  with pytest.raises(ConfigError, match="clap model to be registered"):
    search.query_vector_from_text(synthetic.output, "clap", "a dog barking", cache_dir=cache_dir)


def test_cli_like_table_json_and_errors(synthetic, cache_dir, capsys):
  uri = synthetic.uris[0]
  assert search_cli.main(["--index", synthetic.output, "--model", "clap", "--like", uri,
                          "--top_k", "4", "--cache_dir", cache_dir]) == 0
  captured = capsys.readouterr()
  lines = captured.out.splitlines()
  assert lines[0].split() == ["rank", "score", "uri"] and len(lines) == 5
  assert lines[1].split() == ["1", "1.0000", uri]
  assert "building the search index of clap clips" in captured.err
  assert search_cli.main(["--index", synthetic.output, "--model", "vggish", "--like", uri,
                          "--frames", "--json", "--top_k", "3", "--cache_dir", cache_dir]) == 0
  result = json.loads(capsys.readouterr().out)
  assert result["index"]["level"] == "frames" and len(result["results"]) == 3
  assert result["results"][0]["uri"] == uri and result["results"][0]["start_seconds"] == 0.0
  assert search_cli.main(["--index", synthetic.output, "--text", "dogs", "--model", "vggish",
                          "--cache_dir", cache_dir]) == 2
  assert "embeds audio only" in capsys.readouterr().err
  assert search_cli.main(["--index", synthetic.output, "--like", uri, "--cache_dir",
                          cache_dir]) == 2
  assert "pick one of the models" in capsys.readouterr().err


# --- --audio with VGGish: real embeddings of the example clips (test weights) ---------------------

def _write_vggish_output(directory: str, model, files, *, checkpoint: str, pca_params: str,
                         recorded_checkpoint_sha256: str | None = None) -> dict[str, np.ndarray]:
  """Embeds ``files`` with the library and writes clips/frames in the documented layout
  (WRITTEN BY THE TEST, as the pipeline will); returns {uri: clip embedding}."""
  run_id = "20260304T120000Z-a0d10a"
  clips, frames = [], []
  for path in files:
    embedded = model.embed_file(path)
    clips.append((path, pool_embedding(embedded.raw, "mean", "none"), len(embedded)))
    frames += [(path, i, embedded.start_seconds[i], embedded.raw[i], embedded.quantized[i])
               for i in range(len(embedded))]
  provenance = synthetic_provenance(
      "vggish", run_id, asset_uris={"checkpoint": checkpoint, "pca_params": pca_params},
      asset_sha256={"checkpoint": recorded_checkpoint_sha256 or model.assets.checkpoint_sha256,
                    "pca_params": model.assets.pca_params_sha256},
      settings={"params": model.params.as_dict(), "resampler": model.resampler})

  def fsl(rows, value_type):
    rows = np.stack(rows)
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1), value_type), rows.shape[1])

  write_table(pa.table({"uri": [c[0] for c in clips], "num_frames": pa.array([c[2] for c in clips], pa.int32()),
                        "embedding": fsl([c[1] for c in clips], pa.float32())}),
              os.path.join(directory, "vggish", "clips"), run_id, provenance)
  write_table(pa.table({"uri": [f[0] for f in frames],
                        "frame_index": pa.array([f[1] for f in frames], pa.int32()),
                        "start_seconds": [float(f[2]) for f in frames],
                        "end_seconds": [float(f[2]) + 0.975 for f in frames],
                        "raw_embedding": fsl([f[3] for f in frames], pa.float32()),
                        "audio_embedding": fsl([f[4] for f in frames], pa.uint8())}),
              os.path.join(directory, "vggish", "frames"), run_id, provenance)
  write_run_json(directory, run_id, ["vggish"], {"vggish": provenance})
  return {c[0]: c[1] for c in clips}


@pytest.fixture(scope="module")
def vggish_outputs(tmp_path_factory, test_weights):
  from vggish.params import DEFAULT_PARAMS

  # The loader the query path uses (memoised): the queries below reuse this model.
  model = search._load_vggish(test_weights.checkpoint, test_weights.pca_params, DEFAULT_PARAMS,
                              "kaiser_best", None)
  files = [f for f in _EXAMPLES if "short" not in os.path.basename(f) and not f.endswith(".json")]
  root = tmp_path_factory.mktemp("vggish_search")
  good = str(root / "good")
  embeddings = _write_vggish_output(good, model, files, checkpoint=test_weights.checkpoint,
                                    pca_params=test_weights.pca_params)
  other = str(root / "other_weights")
  _write_vggish_output(other, model, files[:2], checkpoint=test_weights.checkpoint,
                       pca_params=test_weights.pca_params, recorded_checkpoint_sha256="f" * 64)
  return good, other, embeddings, files


def test_audio_query_with_the_index_weights_finds_the_file(vggish_outputs, cache_dir, capsys):
  good, _, embeddings, files = vggish_outputs
  query = next(f for f in files if "music" in f)
  vector = search.query_vector_from_audio(good, "vggish", query, cache_dir=cache_dir)
  np.testing.assert_allclose(vector, embeddings[query], atol=1e-5)  # same weights + settings
  assert search_cli.main(["--index", good, "--audio", query, "--json", "--top_k", "3",
                          "--cache_dir", cache_dir]) == 0
  results = json.loads(capsys.readouterr().out)["results"]
  assert results[0]["uri"] == query and results[0]["score"] > 0.9999
  assert len(results) == 3 and results[1]["score"] < results[0]["score"]
  assert search_cli.main(["--index", good, "--audio", query, "--frames", "--top_k", "2",
                          "--cache_dir", cache_dir]) == 0
  table = capsys.readouterr().out.splitlines()
  assert table[0].split() == ["rank", "score", "start_s", "end_s", "uri"]
  assert table[1].endswith(query)


def test_audio_query_refuses_other_weights(vggish_outputs, cache_dir, capsys):
  _, other, _, files = vggish_outputs
  with pytest.raises(AssetError, match=r"other weights: checkpoint: the index was made with "
                                       r"sha256 f{64}"):
    search.query_vector_from_audio(other, "vggish", files[0], cache_dir=cache_dir)
  assert search_cli.main(["--index", other, "--audio", files[0], "--cache_dir", cache_dir]) == 2
  assert "Pass the index's weights" in capsys.readouterr().err


# --- the generic path: a TEST-ONLY fake bundle, as CLAP's will plug in -------------------------

_FAKE_DIM = 6
_FAKE_WINDOW_SAMPLES = 800  # 0.1 s at 8 kHz


class _TestOnlyFakeFrontEnd(FrontEnd):
  """0.1 s windows; the rest of the file is dropped."""

  def __init__(self):
    self._pending = np.zeros(0)
    self.num_frames = 0

  def push(self, samples):
    self._pending = np.concatenate([self._pending, samples])
    k = len(self._pending) // _FAKE_WINDOW_SAMPLES
    if k:
      windows = self._pending[:k * _FAKE_WINDOW_SAMPLES].reshape(k, _FAKE_WINDOW_SAMPLES)
      self._pending = self._pending[k * _FAKE_WINDOW_SAMPLES:]
      self.num_frames += k
      yield InputBlock(self.num_frames - k, windows.astype(np.float32))

  def finish(self, duration_seconds):
    del duration_seconds
    return iter(())


class _TestOnlyFakePost(Postprocessor):
  def frame_columns(self, outputs_):
    return {"embedding": outputs_["embedding"]}

  def clip_columns(self, frames, common):
    return {"embedding": pool_embedding(frames["embedding"], common.pooling, common.normalize)}


class FakeBundleTestOnly(ModelBundle):
  """TEST-ONLY: a fake model (band energies through a weight matrix) with a fake text
  encoder, shaped like the real bundles, to exercise ``bundle_from_provenance``."""

  name = "testonly"
  options = (Option("testonly_weights", "weights .npz", kind="path"),)

  @property
  def sample_rate_hz(self):
    return 8000

  def resolve_assets(self, *, local_runner):
    path = self.values["testonly_weights"]
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return {"weights": Asset("weights", path, path, path, sha)}

  def settings(self, assets):
    return {"model": "testonly", "weights_sha256": assets["weights"].sha256,
            "resampler": self.common.resampler, "pooling": self.common.pooling,
            "normalize": self.common.normalize}

  def frontend(self):
    return _TestOnlyFakeFrontEnd()

  def frame_times(self, frame_index, duration_seconds):
    start = np.asarray(frame_index) * 0.1
    return start, start + 0.1

  def load_model(self, local_assets, device):
    weights = np.load(local_assets["weights"], allow_pickle=False)["audio"]  # [8, D]

    def call(inputs):
      spectrum = np.abs(np.fft.rfft(inputs, axis=1))[:, :400].reshape(len(inputs), 8, 50)
      return {"embedding": (np.log1p(spectrum.sum(axis=2)) @ weights).astype(np.float32)}
    return call

  def load_postprocessor(self, local_assets):
    return _TestOnlyFakePost()

  def frame_fields(self):
    return [pa.field("embedding", pa.list_(pa.float32(), _FAKE_DIM))]

  def clip_fields(self):
    return [pa.field("embedding", pa.list_(pa.float32(), _FAKE_DIM))]

  def text_embedder(self, local_assets, device):
    words = np.load(local_assets["weights"], allow_pickle=False)["text"]  # [4, D]
    vocabulary = ("low", "middle", "high", "noise")
    return lambda texts: np.stack([sum(words[i] for i, w in enumerate(vocabulary) if w in t)
                                   for t in texts]).astype(np.float32)


def test_generic_bundle_path_with_a_test_only_fake_bundle(tmp_path, monkeypatch, cache_dir):
  import soundfile
  from audiobeam import registry

  monkeypatch.setitem(registry.MODELS, "testonly", f"{__name__}:FakeBundleTestOnly")
  rng = np.random.default_rng(0)
  weights = str(tmp_path / "testonly.npz")
  audio_w = rng.standard_normal((8, _FAKE_DIM)).astype(np.float32)
  np.savez(weights, audio=audio_w, text=rng.standard_normal((4, _FAKE_DIM)).astype(np.float32))
  t = np.arange(8000) / 8000.0
  signals = {"low": np.sin(2 * np.pi * 300 * t), "middle": np.sin(2 * np.pi * 1500 * t),
             "high": np.sin(2 * np.pi * 3500 * t), "noise": rng.uniform(-1, 1, t.shape)}
  uris, vectors = [], []
  for name, signal in signals.items():
    path = str(tmp_path / f"{name}.wav")
    soundfile.write(path, 0.5 * signal, 8000, subtype="FLOAT")
    windows = (0.5 * signal).reshape(10, 800)  # independent computation of the clip vector
    bands = np.log1p(np.abs(np.fft.rfft(windows, axis=1))[:, :400].reshape(10, 8, 50).sum(axis=2))
    uris.append(path)
    vectors.append((bands @ audio_w).mean(axis=0))
  out = str(tmp_path / "out")
  bundle = FakeBundleTestOnly({"testonly_weights": weights}, Common())
  assets = bundle.resolve_assets(local_runner=True)
  provenance = {**synthetic_provenance("testonly", "20260304T000000Z-7e57aa",
                                       asset_uris={"weights": weights},
                                       asset_sha256={"weights": assets["weights"].sha256}),
                "settings": bundle.settings(assets), "options": {"testonly_weights": weights},
                "common": {"pooling": "mean", "normalize": "none", "resampler": "kaiser_best"}}
  write_table(pa.table({"uri": uris, "embedding": pa.FixedSizeListArray.from_arrays(
      pa.array(np.stack(vectors).astype(np.float32).reshape(-1)), _FAKE_DIM)}),
      os.path.join(out, "testonly", "clips"), "20260304T000000Z-7e57aa", provenance)
  write_run_json(out, "20260304T000000Z-7e57aa", ["testonly"], {"testonly": provenance})

  vector = search.query_vector_from_audio(out, "testonly", uris[2], cache_dir=cache_dir)
  np.testing.assert_allclose(vector, vectors[2], rtol=1e-4, atol=1e-4)
  index = search.open_index(out, "testonly", cache_dir=cache_dir)
  assert index.query(vector, 1)[0].uri == uris[2]
  monkeypatch.setattr(search, "TEXT_MODELS", ("testonly",))  # as CLAP is
  text = search.query_vector_from_text(out, "testonly", "noise", cache_dir=cache_dir)
  np.testing.assert_allclose(text, np.load(weights)["text"][3])
  # Other weights than the index's are refused; so is a provenance without options.
  np.savez(weights, audio=audio_w * 2, text=np.zeros((4, _FAKE_DIM), np.float32))
  with pytest.raises(AssetError, match="other weights: weights: the index was made with"):
    search.query_vector_from_audio(out, "testonly", uris[0], cache_dir=cache_dir)
  with pytest.raises(ConfigError, match="record the testonly options"):
    search.bundle_from_provenance("testonly", {k: v for k, v in provenance.items() if k != "options"})
