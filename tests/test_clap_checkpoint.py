"""CLAP checkpoint folders: the test-weights tool writes the published layout
deterministically; bad folders are refused with AssetErrors that say what to do."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from cloud_emulators import serve_directory
from audiobeam.bundle import Common
from audiobeam.errors import AssetError
from clap_fixtures import checkpoint_dir, unfused_checkpoint  # noqa: F401 (fixture)
from models.clap import loading
from models.clap.bundle import ClapBundle
from models.clap.params import REQUIRED_FILENAMES

pytest.importorskip("transformers")


def _copy(src: str, tmp_path, name: str = "ckpt") -> str:
  dst = str(tmp_path / name)
  shutil.copytree(src, dst)
  return dst


def test_test_checkpoint_has_the_published_layout_and_values(unfused_checkpoint):
  names = set(os.listdir(unfused_checkpoint))
  assert set(REQUIRED_FILENAMES) <= names
  with open(os.path.join(unfused_checkpoint, "preprocessor_config.json")) as f:
    pre = json.load(f)
  assert {k: pre[k] for k in ("feature_size", "sampling_rate", "hop_length", "max_length_s",
                              "fft_window_size", "padding", "truncation", "frequency_min",
                              "frequency_max")} == {
      "feature_size": 64, "sampling_rate": 48000, "hop_length": 480, "max_length_s": 10,
      "fft_window_size": 1024, "padding": "repeatpad", "truncation": "rand_trunc",
      "frequency_min": 50, "frequency_max": 14000}
  config = loading.validate_checkpoint_dir(unfused_checkpoint)
  assert config["model_type"] == "clap" and config["projection_dim"] == 512
  assert config["audio_config"]["enable_fusion"] is False
  fused = loading.validate_checkpoint_dir(checkpoint_dir(True))
  assert fused["audio_config"]["enable_fusion"] is True
  with open(os.path.join(checkpoint_dir(True), "preprocessor_config.json")) as f:
    assert json.load(f)["truncation"] == "fusion"


def test_test_checkpoint_is_deterministic(unfused_checkpoint, tmp_path):
  from models.clap.testing import main

  assert main([str(tmp_path / "again"), "--seed", "0"]) == 0
  assert (loading.checkpoint_sha256(str(tmp_path / "again"))
          == loading.checkpoint_sha256(unfused_checkpoint))
  assert main([str(tmp_path / "other"), "--seed", "1"]) == 0
  assert (loading.checkpoint_sha256(str(tmp_path / "other"))
          != loading.checkpoint_sha256(unfused_checkpoint))


def test_missing_folder(tmp_path):
  with pytest.raises(AssetError, match="not a folder.*hf download"):
    loading.localize_checkpoint(str(tmp_path / "absent"))
  with pytest.raises(AssetError, match="no folder"):
    loading.validate_checkpoint_dir(str(tmp_path / "absent"))


def test_pickle_only_weights_are_refused(unfused_checkpoint, tmp_path):
  path = _copy(unfused_checkpoint, tmp_path)
  os.rename(os.path.join(path, "model.safetensors"), os.path.join(path, "pytorch_model.bin"))
  with pytest.raises(AssetError, match="only as pytorch_model.bin.*never.*model.safetensors"):
    loading.localize_checkpoint(path)


def test_missing_weights_or_tokenizer_files_are_named(unfused_checkpoint, tmp_path):
  path = _copy(unfused_checkpoint, tmp_path)
  os.unlink(os.path.join(path, "model.safetensors"))
  with pytest.raises(AssetError, match="lacks model.safetensors"):
    loading.validate_checkpoint_dir(path)
  path = _copy(unfused_checkpoint, tmp_path, "tok")
  os.unlink(os.path.join(path, "merges.txt"))
  os.unlink(os.path.join(path, "special_tokens_map.json"))
  with pytest.raises(AssetError, match="lacks merges.txt, special_tokens_map.json"):
    loading.validate_checkpoint_dir(path)


def test_missing_preprocessor_config_is_refused(unfused_checkpoint, tmp_path):
  path = _copy(unfused_checkpoint, tmp_path)
  os.unlink(os.path.join(path, "preprocessor_config.json"))
  with pytest.raises(AssetError, match="lacks preprocessor_config.json.*frequency_min 0 vs 50"):
    loading.validate_checkpoint_dir(path)


@pytest.mark.parametrize("key,value,message", [
    ("max_length_s", 5, "10 s windows"),
    ("sampling_rate", 44100, "sampling_rate 48000"),
    ("padding", "pad", "repeatpad"),
    ("truncation", "crop", "rand_trunc, fusion"),
    ("feature_extractor_type", "WhisperFeatureExtractor", "ClapFeatureExtractor"),
])
def test_unusable_preprocessor_settings_are_refused(unfused_checkpoint, tmp_path, key, value,
                                                    message):
  path = _copy(unfused_checkpoint, tmp_path)
  pre_path = os.path.join(path, "preprocessor_config.json")
  with open(pre_path) as f:
    pre = json.load(f)
  pre[key] = value
  with open(pre_path, "w") as f:
    json.dump(pre, f)
  with pytest.raises(AssetError, match=message):
    loading.validate_checkpoint_dir(path, check_tokenizer=False)


def test_config_of_another_model_is_refused(unfused_checkpoint, tmp_path):
  path = _copy(unfused_checkpoint, tmp_path)
  config_path = os.path.join(path, "config.json")
  with open(config_path) as f:
    config = json.load(f)
  with open(config_path, "w") as f:
    json.dump(dict(config, model_type="whisper"), f)
  with pytest.raises(AssetError, match="model_type 'clap'.*found model_type 'whisper'"):
    loading.validate_checkpoint_dir(path)
  with open(config_path, "w") as f:
    f.write("{not json")
  with pytest.raises(AssetError, match="as JSON"):
    loading.validate_checkpoint_dir(path)


def test_tokenizer_without_vocabulary_is_refused_not_silently_tiny(unfused_checkpoint, tmp_path):
  # transformers 5 returns a 5-token RobertaTokenizer for a folder without vocab files.
  path = _copy(unfused_checkpoint, tmp_path)
  for name in ("vocab.json", "merges.txt"):
    os.unlink(os.path.join(path, name))
  with pytest.raises(AssetError, match=r"has 5 tokens but .* has 400"):
    loading.load_tokenizer(path)


def test_tokenizer_of_another_size_is_refused(unfused_checkpoint, tmp_path):
  path = _copy(unfused_checkpoint, tmp_path)
  with open(os.path.join(path, "vocab.json")) as f:
    vocab = json.load(f)
  last = max(vocab, key=vocab.get)
  del vocab[last]
  with open(os.path.join(path, "vocab.json"), "w") as f:
    json.dump(vocab, f)
  merges = [m for m in open(os.path.join(path, "merges.txt")).read().splitlines()
            if m.replace(" ", "") != last]
  with open(os.path.join(path, "merges.txt"), "w") as f:
    f.write("\n".join(merges) + "\n")
  with pytest.raises(AssetError, match=r"has 399 tokens but the text model's vocabulary.*has 400"):
    loading.validate_checkpoint_dir(path)


def test_weights_missing_a_learned_tensor_are_refused(unfused_checkpoint, tmp_path):
  from safetensors.numpy import load_file, save_file

  path = _copy(unfused_checkpoint, tmp_path)
  weights_path = os.path.join(path, "model.safetensors")
  tensors = load_file(weights_path)
  del tensors["audio_projection.linear2.weight"]
  del tensors["text_model.embeddings.position_ids"]  # a constant buffer: tolerated
  save_file(tensors, weights_path, metadata={"format": "pt"})
  with pytest.raises(AssetError, match="missing tensors: audio_projection.linear2.weight\\)"):
    loading.load_clap(path, "cpu")


def test_resolve_assets_hashes_the_files_it_reads(unfused_checkpoint, tmp_path):
  path = _copy(unfused_checkpoint, tmp_path)
  bundle = ClapBundle({"clap_checkpoint": path}, Common())
  asset = bundle.resolve_assets(local_runner=True)["checkpoint"]
  assert asset.kind == "directory" and asset.local_path == path and asset.worker_uri == path
  assert asset.sha256 == loading.checkpoint_sha256(unfused_checkpoint)
  with open(os.path.join(path, "README.md"), "w") as f:
    f.write("not read, not hashed")
  assert bundle.resolve_assets(local_runner=False)["checkpoint"].sha256 == asset.sha256
  assert bundle.resolve_assets(local_runner=False)["checkpoint"].worker_uri == path
  with pytest.raises(AssetError, match="expected --clap_checkpoint"):
    ClapBundle({"clap_checkpoint": None}, Common()).resolve_assets(local_runner=True)


def test_remote_folder_is_copied_into_the_cache_and_validated(unfused_checkpoint, tmp_path):
  # A real HTTP server on localhost serves the folder; the copy lands in the cache.
  with serve_directory(os.path.dirname(unfused_checkpoint)) as (base, _):
    uri = base + os.path.basename(unfused_checkpoint)
    local = loading.localize_checkpoint(uri, str(tmp_path / "cache"))
    assert local.startswith(str(tmp_path / "cache"))
    assert loading.checkpoint_sha256(local) == loading.checkpoint_sha256(unfused_checkpoint)
    with pytest.raises(AssetError, match="hf download"):
      loading.localize_checkpoint(base + "absent", str(tmp_path / "cache"))
