"""Many models, one pipeline: every file decoded once, every model's outputs written and
equal to running that model's bundle on the file directly; one model's failure never
loses another's rows; per model, clips + errors rows account for every matched file.

One real run of all five models (test weights each written by the model's own tool in
its published layout) over the pipeline test corpus, read back with pyarrow.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import pipeline_fixtures as pf
from audiobeam.api import Embedder
from audiobeam.bundle import Common
from pipelines import embed

__all__: list[str] = []

MODELS = ("vggish", "yamnet", "clap", "ast", "clmr")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  return pf.write_corpus(tmp_path_factory.mktemp("multimodel_corpus"))


@pytest.fixture(scope="module")
def all_models_run(corpus, model_weights, tmp_path_factory):
  """The models' weights (and CLAP's labels, one holding a comma) come from a YAML run
  config, as a Dataflow or DAG user passes them."""
  import yaml
  output = tmp_path_factory.mktemp("out_all_models")
  config = output.parent / "all_models.yaml"
  config.write_text(yaml.safe_dump({k: v for m in MODELS for k, v in model_weights[m].items()}))
  argv = ["--config", str(config), "--input", str(corpus / "**"), "--output", str(output),
          "--model", ",".join(MODELS), "--short_clips", "reference"]
  return embed.run(argv), output


def _table(output, model, sub):
  return pq.read_table(output / model / sub)


def test_each_file_is_decoded_once_for_all_models(all_models_run, corpus):
  summary, _ = all_models_run
  files = [p for p in corpus.rglob("*") if p.is_file()]
  decoded_or_failed = summary.metrics["files_decoded"] + summary.metrics.get("files_failed", 0)
  assert decoded_or_failed == summary.counts["files_matched"] == len(files)
  for model in MODELS:
    assert summary.metrics[f"{model}_model_calls"] >= 1


def test_every_model_accounts_for_every_matched_file(all_models_run, corpus):
  summary, output = all_models_run
  matched = {str(p) for p in corpus.rglob("*") if p.is_file()}
  errors = pq.read_table(output / "errors").to_pylist()
  for model in MODELS:
    clips = _table(output, model, "clips").column("uri").to_pylist()
    failed = [r["uri"] for r in errors if r["model"] == model]
    assert len(clips) == len(set(clips)) and len(failed) == len(set(failed)), model
    assert set(clips) | set(failed) == matched and not set(clips) & set(failed), model
    counts = summary.counts["models"][model]
    assert (counts["files_embedded"], counts["errors"]) == (len(clips), len(failed))
    assert "accounting_mismatches" not in counts


def test_one_models_failure_does_not_lose_the_other_models_rows(all_models_run, corpus):
  _, output = all_models_run
  short = str(corpus / pf.SHORT_FILE)  # 0.5 s: under one VGGish patch and one CLMR window
  errors = {(r["uri"], r["model"]): r for r in pq.read_table(output / "errors").to_pylist()}
  assert errors[(short, "vggish")]["error_type"] == "too_short"
  assert errors[(short, "clmr")]["error_type"] == "too_short"
  for model in ("yamnet", "clap", "ast"):  # their references pad short clips
    assert short in _table(output, model, "clips").column("uri").to_pylist(), model
  corrupt = str(corpus / pf.CORRUPT_FILE)
  assert {m for (u, m) in errors if u == corrupt} == set(MODELS)


# Each model's own contract bounds how far batch composition may move a value (torch's CPU
# convolutions pick kernels by batch size: CLMR moves by up to ~3e-5 of values ~10).
_TOLERANCE = {"vggish": 1e-5, "yamnet": 1e-5, "clap": 1e-5, "ast": 1e-5, "clmr": 1e-4}


@pytest.mark.parametrize("model", MODELS)
def test_pipeline_rows_equal_the_model_run_directly(all_models_run, corpus, model_weights, model):
  _, output = all_models_run
  embedder = Embedder(model, Common(), **model_weights[model])
  frames = _table(output, model, "frames").to_pylist()
  clips = {r["uri"]: r for r in _table(output, model, "clips").to_pylist()}
  column = embedder.bundle.embedding_column()
  names = [n for n in ("tone_16k_mono.wav", "music_44k_stereo.flac", "chirp_48k_stereo.mp3")
           if str(corpus / n) in clips]  # CLMR needs 2.68 s: the 2.2 s file is too short
  assert names
  for name in names:
    uri = str(corpus / name)
    direct = embedder.embed_file(uri)
    rows = sorted((r for r in frames if r["uri"] == uri), key=lambda r: r["frame_index"])
    assert len(rows) == len(direct) == clips[uri]["num_frames"], (model, name)
    tolerance = _TOLERANCE[model]
    np.testing.assert_allclose([r[column] for r in rows], direct.frame_columns[column],
                               atol=tolerance, rtol=0, err_msg=f"{model} {name}")
    np.testing.assert_allclose([r["start_seconds"] for r in rows], direct.start_seconds)
    np.testing.assert_allclose(clips[uri]["embedding"], direct.clip_columns["embedding"],
                               atol=tolerance, rtol=0)


def test_model_specific_columns_and_extras(all_models_run, corpus):
  summary, output = all_models_run
  yamnet = _table(output, "yamnet", "clips")
  assert yamnet.schema.field("mean_scores").type.list_size == 521
  top = yamnet.column("top_labels").to_pylist()[0]
  assert len(top) == 5 and {"index", "display_name", "score"} <= set(top[0])
  metadata = pq.read_schema(next((output / "yamnet" / "clips").glob("*.parquet"))).metadata
  assert len(json.loads(metadata[b"audiobeam.yamnet.class_names"])) == 521
  clap = _table(output, "clap", "clips").to_pylist()
  assert all(r["normalize"] == "l2" for r in clap)
  np.testing.assert_allclose([np.linalg.norm(r["embedding"]) for r in clap], 1.0, atol=1e-5)
  labels = pq.read_table(output / "clap" / "labels").to_pylist()
  assert {r["label"] for r in labels} == {"speech", "music", "noise, hiss"}  # a YAML-safe comma
  assert len(labels) == 3 * len(clap)
  assert (output / "vggish" / "tfrecord").is_dir()
  for model in ("yamnet", "clap", "ast", "clmr"):
    assert not (output / model / "tfrecord").exists()
  provenance = summary.provenance
  assert set(provenance) == set(MODELS)
  assert len({p["settings_sha256"] for p in provenance.values()}) == len(MODELS)
