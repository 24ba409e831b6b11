"""YAMNetBundle: assets (local, served from loopback, unreachable), settings, front end ->
model -> postprocessor on real decoded files, Arrow schemas, light imports.

No network: remote assets are the TEST weights served by a local http.server on an
ephemeral 127.0.0.1 port; the no-network case points at a closed loopback port.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from cloud_emulators import closed_port_url, serve_directory
from audiobeam.audio import open_audio, to_mono
from audiobeam.bundle import Common, FrontEnd
from audiobeam.errors import AssetError, CheckpointError, ConfigError
from audiobeam.resample import StreamingResampler
from models.yamnet import bundle as yb
from models.yamnet.bundle import YAMNetBundle
from yamnet_fixtures import yamnet_assets, yamnet_tf_model  # noqa: F401

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "audio"


def _bundle(weights=None, class_map=None, **common) -> YAMNetBundle:
  return YAMNetBundle({"yamnet_weights": weights, "yamnet_class_map": class_map},
                      Common(**common))


def _sha256(path) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


# --- identity and options ----------------------------------------------------------------

def test_identity_and_options():
  bundle = _bundle()
  assert (bundle.name, bundle.sample_rate_hz, bundle.resampler) == ("yamnet", 16000, "kaiser_best")
  assert [(o.name, o.kind) for o in bundle.options] == [("yamnet_weights", "path"),
                                                        ("yamnet_class_map", "path")]
  assert _bundle(resampler="soxr_hq").resampler == "soxr_hq"
  with pytest.raises(ConfigError, match="--backend"):
    _bundle(backend="onnx")
  with pytest.raises(ConfigError, match="--yamnet_weights"):
    _bundle(weights=3)


def test_official_urls(monkeypatch):
  monkeypatch.delenv(yb.BASE_URL_ENV, raising=False)
  assert yb.official_urls() == (
      "https://storage.googleapis.com/audioset/yamnet.h5",
      "https://raw.githubusercontent.com/tensorflow/models/master/research/audioset/yamnet/"
      "yamnet_class_map.csv")
  monkeypatch.setenv(yb.BASE_URL_ENV, "gs://mirror/yamnet")
  assert yb.official_urls() == ("gs://mirror/yamnet/yamnet.h5",
                                "gs://mirror/yamnet/yamnet_class_map.csv")


# --- assets ------------------------------------------------------------------------------------

def test_resolve_local_assets(yamnet_assets):
  bundle = _bundle(yamnet_assets.weights, yamnet_assets.class_map)
  for local_runner in (True, False):
    resolved = bundle.resolve_assets(local_runner=local_runner)
    assert set(resolved) == {"weights", "class_map"}
    for name, path in (("weights", yamnet_assets.weights), ("class_map", yamnet_assets.class_map)):
      asset = resolved[name]
      assert (asset.name, asset.uri, asset.local_path, asset.kind) == (name, path, path, "file")
      assert asset.sha256 == _sha256(path)
      assert asset.worker_uri == path          # A local path is its own URI.
  settings = bundle.settings(resolved)
  assert settings["model"] == "yamnet"
  assert settings["weights_sha256"] == _sha256(yamnet_assets.weights)
  assert settings["class_map_sha256"] == _sha256(yamnet_assets.class_map)
  assert settings["params"]["patch_hop_seconds"] == 0.48
  assert (settings["resampler"], settings["pooling"], settings["normalize"]) == (
      "kaiser_best", "mean", "none")
  json.dumps(settings)


def test_resolve_local_assets_validates_them(tmp_path, yamnet_assets):
  garbage = tmp_path / "yamnet.h5"
  garbage.write_bytes(b"\x89HDF-not-really")
  with pytest.raises(CheckpointError, match="not an HDF5 file"):
    _bundle(str(garbage), yamnet_assets.class_map).resolve_assets(local_runner=True)
  with pytest.raises(AssetError, match="does not exist"):
    _bundle(str(tmp_path / "absent.h5"), yamnet_assets.class_map).resolve_assets(local_runner=True)
  bad_map = tmp_path / "yamnet_class_map.csv"
  bad_map.write_text("index,mid,display_name\n0,/m/a,A\n")
  with pytest.raises(AssetError, match="expected 521 classes, found 1"):
    _bundle(yamnet_assets.weights, str(bad_map)).resolve_assets(local_runner=True)


def test_mirror_download_is_validated_and_cached(tmp_path, monkeypatch, yamnet_assets):
  served = tmp_path / "served"
  served.mkdir()
  for path in yamnet_assets:
    os.link(path, served / os.path.basename(path))
  cache_dir = tmp_path / "cache"
  with serve_directory(served) as (base_url, log):
    monkeypatch.setenv(yb.BASE_URL_ENV, base_url)
    bundle = _bundle(cache_dir=str(cache_dir))
    resolved = bundle.resolve_assets(local_runner=False)
    assert sorted(log) == ["/yamnet.h5", "/yamnet_class_map.csv"]
    again = bundle.resolve_assets(local_runner=False)       # From the cache: no request.
    assert len(log) == 2 and again == resolved
  weights = resolved["weights"]
  assert weights.uri == base_url + "yamnet.h5" and weights.worker_uri == weights.uri
  assert weights.local_path.startswith(str(cache_dir / "remote"))
  assert weights.sha256 == _sha256(yamnet_assets.weights)
  assert resolved["class_map"].sha256 == _sha256(yamnet_assets.class_map)


def test_official_files_cache_under_yamnet(tmp_path, monkeypatch, yamnet_assets):
  # The official URLs replaced by loopback ones (no network here): the same code path.
  served = tmp_path / "served"
  served.mkdir()
  for path in yamnet_assets:
    os.link(path, served / os.path.basename(path))
  monkeypatch.delenv(yb.BASE_URL_ENV, raising=False)
  with serve_directory(served) as (base_url, _):
    monkeypatch.setattr(yb, "OFFICIAL_WEIGHTS_URL", base_url + "yamnet.h5")
    monkeypatch.setattr(yb, "OFFICIAL_CLASS_MAP_URL", base_url + "yamnet_class_map.csv")
    resolved = _bundle(cache_dir=str(tmp_path / "cache")).resolve_assets(local_runner=True)
  assert resolved["weights"].local_path == str(tmp_path / "cache" / "yamnet" / "yamnet.h5")
  assert resolved["class_map"].local_path == str(tmp_path / "cache" / "yamnet" / "yamnet_class_map.csv")
  assert resolved["weights"].worker_uri == resolved["weights"].local_path


def test_invalid_download_is_not_cached(tmp_path, monkeypatch, yamnet_assets):
  served = tmp_path / "served"
  served.mkdir()
  (served / "yamnet.h5").write_bytes(b"<html>not found</html>")
  shutil.copy(yamnet_assets.class_map, served)
  with serve_directory(served) as (base_url, _):
    monkeypatch.setenv(yb.BASE_URL_ENV, base_url)
    with pytest.raises(CheckpointError, match="is invalid and was not cached"):
      _bundle(cache_dir=str(tmp_path / "cache")).resolve_assets(local_runner=True)
  cached = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
  assert "yamnet.h5" not in cached


def test_unreachable_assets_say_how_to_pass_them(tmp_path, monkeypatch):
  monkeypatch.setenv(yb.BASE_URL_ENV, closed_port_url("yamnet/"))
  with pytest.raises(AssetError) as error:
    _bundle(cache_dir=str(tmp_path / "cache")).resolve_assets(local_runner=True)
  message = str(error.value)
  assert "could not download the YAMNet weights" in message
  assert "--yamnet_weights PATH/yamnet.h5 --yamnet_class_map PATH/yamnet_class_map.csv" in message
  assert "never substitutes" in message
  assert not list((tmp_path / "cache").rglob("yamnet.h5"))


# --- front end -> model -> postprocessor on real files ---------------------------------------

def _frontend_inputs(bundle: YAMNetBundle, path) -> tuple[FrontEnd, np.ndarray, float]:
  """Decodes ``path`` block by block, resamples to 16 kHz as the pipeline does, feeds a
  fresh front end; returns (front end, inputs [N, 96, 64], duration_seconds)."""
  frontend = bundle.frontend()
  blocks = []
  with open_audio(str(path)) as stream:
    rate = stream.info.sample_rate_hz
    converter = StreamingResampler(rate, bundle.sample_rate_hz, bundle.resampler)
    for block in stream.blocks(12_345):
      blocks += frontend.push(converter.process(to_mono(block)))
    blocks += frontend.push(converter.flush())
    duration = stream.frames_decoded / rate
  blocks += frontend.finish(duration)
  assert [b.start_index for b in blocks] == list(
      np.cumsum([0] + [b.inputs.shape[0] for b in blocks[:-1]]))
  return frontend, np.concatenate([b.inputs for b in blocks]), duration


@pytest.mark.parametrize("name, frames, padded", [
    ("speech_16k_mono.wav", 8, False),          # 64000 samples: 1 + ceil(48400 / 7680)
    ("music_44k_stereo.flac", 10, False),       # 5 s at 44.1 kHz -> 80000 samples
    ("short_16k_mono.wav", 1, True),            # 0.5 s: padded to one patch
])
def test_bundle_end_to_end_on_example(name, frames, padded, yamnet_assets, yamnet_tf_model):
  bundle = _bundle(yamnet_assets.weights, yamnet_assets.class_map)
  frontend, inputs, duration = _frontend_inputs(bundle, EXAMPLES / name)
  assert inputs.shape == (frames, 96, 64) and inputs.dtype == np.float32
  assert (frontend.num_frames, frontend.padded) == (frames, padded)
  start, end = bundle.frame_times(np.arange(frames), duration)
  np.testing.assert_allclose(start, 0.48 * np.arange(frames), rtol=0, atol=1e-12)
  np.testing.assert_allclose(end - start, 0.975, rtol=0, atol=1e-12)

  model = bundle.load_model({"weights": yamnet_assets.weights}, "cpu")
  outputs = model(inputs)
  np.testing.assert_array_equal(outputs["scores"], yamnet_tf_model(inputs)["scores"])
  post = bundle.load_postprocessor({"class_map": yamnet_assets.class_map})
  frame_columns = post.frame_columns(outputs)
  frame_table = pa.Table.from_pydict(
      {k: list(v) for k, v in frame_columns.items()}, schema=pa.schema(bundle.frame_fields()))
  assert frame_table.num_rows == frames

  clip = post.clip_columns(frame_columns, bundle.common)
  mean_scores = outputs["scores"].astype(np.float64).mean(axis=0)
  np.testing.assert_allclose(clip["embedding"], outputs["embedding"].mean(axis=0), atol=1e-6)
  np.testing.assert_allclose(clip["mean_scores"], mean_scores, atol=1e-7)
  np.testing.assert_array_equal(clip["max_scores"], outputs["scores"].max(axis=0))
  top = clip["top_labels"]
  assert [t["index"] for t in top] == list(np.argsort(-mean_scores, kind="stable")[:5])
  assert all(t["display_name"] == (f"Test class {t['index']}, with a comma" if t["index"] % 50 == 0
                                   else f"Test class {t['index']}") for t in top)
  clip_table = pa.Table.from_pylist([clip], schema=pa.schema(bundle.clip_fields()))
  assert clip_table.column("top_labels")[0][0]["index"].as_py() == top[0]["index"]


def test_clip_pooling_options(yamnet_assets):
  bundle = _bundle(yamnet_assets.weights, yamnet_assets.class_map, pooling="max", normalize="l2")
  post = bundle.load_postprocessor({"class_map": yamnet_assets.class_map})
  rng = np.random.default_rng(0)
  frames = {"embedding": rng.random((3, 1024), dtype=np.float32),
            "scores": rng.random((3, 521), dtype=np.float32)}
  clip = post.clip_columns(post.frame_columns(frames), bundle.common)
  expected = frames["embedding"].max(axis=0)
  np.testing.assert_allclose(clip["embedding"], expected / np.linalg.norm(expected), atol=1e-6)
  with pytest.raises(ValueError, match=r"\[N, 521\]"):
    post.frame_columns({"embedding": frames["embedding"], "scores": frames["scores"][:, :520]})


def test_torch_backend_matches_tf(yamnet_assets, yamnet_tf_model):
  pytest.importorskip("torch")
  bundle = _bundle(yamnet_assets.weights, yamnet_assets.class_map, backend="torch")
  _, inputs, _ = _frontend_inputs(bundle, EXAMPLES / "speech_8k_mono.wav")
  ours, tf_out = bundle.load_model({"weights": yamnet_assets.weights}, "cpu")(inputs), yamnet_tf_model(inputs)
  for name in ("embedding", "scores"):
    np.testing.assert_allclose(ours[name], tf_out[name], rtol=0, atol=1e-5)


def test_schema_metadata_holds_class_names(yamnet_assets):
  bundle = _bundle(yamnet_assets.weights, yamnet_assets.class_map)
  metadata = bundle.schema_metadata(bundle.resolve_assets(local_runner=True))
  names = json.loads(metadata["audiobeam.yamnet.class_names"])
  assert len(names) == 521 and names[50] == "Test class 50, with a comma"
  fields = {f.name: f.type for f in bundle.frame_fields() + bundle.clip_fields()}
  assert fields["embedding"] == pa.list_(pa.float32(), 1024)
  assert fields["scores"] == fields["mean_scores"] == pa.list_(pa.float32(), 521)


def test_importing_yamnet_is_light():
  code = ("import sys, models.yamnet, models.yamnet.bundle, models.yamnet.network, "
          "models.yamnet.model, models.yamnet.torch_model, models.yamnet.features, "
          "models.yamnet.stream, models.yamnet.weights, models.yamnet.testing\n"
          "heavy = [m for m in ('tensorflow', 'torch', 'h5py', 'keras') if m in sys.modules]\n"
          "assert not heavy, heavy\n"
          "import audiobeam.bundle as b, models.yamnet.bundle as y\n"
          "y.YAMNetBundle({}, b.Common())\n"
          "assert 'tensorflow' not in sys.modules\n")
  subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
