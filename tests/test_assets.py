"""Asset resolution: official download (served from loopback), cache, validation, errors.

No network: the "official" files are the test weights served by a local http.server on
an ephemeral 127.0.0.1 port; the no-network case points at a closed loopback port.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from cloud_emulators import closed_port_url, serve_directory
from vggish import assets
from audiobeam.errors import AssetError, CheckpointError


def _sha256(path) -> str:
  return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def served_weights(test_weights, tmp_path_factory):
  """A server root with weights/<official names> (hard links to the session test weights)."""
  root = tmp_path_factory.mktemp("served")
  (root / "weights").mkdir()
  for path in test_weights:
    os.link(path, root / "weights" / os.path.basename(path))
  with serve_directory(root, "weights/") as (base_url, log):
    yield base_url, log


def test_official_urls_and_defaults(monkeypatch):
  monkeypatch.delenv(assets.BASE_URL_ENV, raising=False)
  monkeypatch.delenv(assets.CACHE_DIR_ENV, raising=False)
  assert assets.official_urls() == (
      "https://storage.googleapis.com/audioset/vggish_model.ckpt",
      "https://storage.googleapis.com/audioset/vggish_pca_params.npz")
  assert assets.default_cache_dir() == os.path.expanduser("~/.cache/audiobeam")
  monkeypatch.setenv(assets.CACHE_DIR_ENV, "/somewhere")
  monkeypatch.setenv(assets.BASE_URL_ENV, "http://mirror/x")
  assert assets.default_cache_dir() == "/somewhere"
  assert assets.official_urls()[0] == "http://mirror/x/vggish_model.ckpt"


def test_downloads_once_validates_and_records_sha256(served_weights, test_weights, tmp_path,
                                                     monkeypatch):
  base_url, log = served_weights
  monkeypatch.setenv(assets.BASE_URL_ENV, base_url)
  monkeypatch.setenv(assets.CACHE_DIR_ENV, str(tmp_path / "cache"))
  del log[:]
  first = assets.resolve_assets()
  assert sorted(log) == ["/weights/vggish_model.ckpt", "/weights/vggish_pca_params.npz"]
  assert first.checkpoint_uri == base_url + "vggish_model.ckpt"
  assert first.checkpoint_path.startswith(str(tmp_path / "cache"))
  assert first.checkpoint_sha256 == _sha256(test_weights.checkpoint)
  assert first.pca_params_sha256 == _sha256(test_weights.pca_params)
  assert _sha256(first.checkpoint_path) == first.checkpoint_sha256
  record = json.load(open(first.checkpoint_path + ".json"))
  assert record["uri"] == first.checkpoint_uri and record["sha256"] == first.checkpoint_sha256
  # No temporary files left next to the cached copies.
  assert sorted(os.listdir(os.path.dirname(first.checkpoint_path))) == [
      "vggish_model.ckpt", "vggish_model.ckpt.json"]

  second = assets.resolve_assets()
  assert second == first
  assert len(log) == 2  # Served from the cache; no second download.


def test_no_network_error_says_how_to_pass_weights(tmp_path):
  with pytest.raises(AssetError) as info:
    assets.resolve_assets(cache_dir=str(tmp_path), base_url=closed_port_url("audioset/"))
  message = str(info.value)
  for needle in ("could not download", "--checkpoint", "--pca_params", "gs://", "s3://",
                 "never substitutes"):
    assert needle in message
  leftovers = [f for _, _, files in os.walk(tmp_path) for f in files]
  assert leftovers == []


def test_invalid_download_is_rejected_and_not_cached(tmp_path):
  (tmp_path / "srv" / "weights").mkdir(parents=True)
  (tmp_path / "srv" / "weights" / "vggish_model.ckpt").write_bytes(b"<html>error</html>")
  with serve_directory(tmp_path / "srv", "weights/") as (base_url, _):
    with pytest.raises(CheckpointError, match="invalid and was not cached") as info:
      assets.resolve_assets(cache_dir=str(tmp_path / "cache"), base_url=base_url)
  assert "not a readable TensorFlow checkpoint" in str(info.value)
  leftovers = [f for _, _, files in os.walk(tmp_path / "cache") for f in files]
  assert leftovers == []


def test_local_paths_are_used_in_place(test_weights, tmp_path):
  resolved = assets.resolve_assets(test_weights.checkpoint, "file://" + test_weights.pca_params,
                                   cache_dir=str(tmp_path), allow_download=False)
  assert resolved.checkpoint_path == test_weights.checkpoint
  assert resolved.pca_params_path == test_weights.pca_params
  assert resolved.pca_params_sha256 == _sha256(test_weights.pca_params)
  assert os.listdir(tmp_path) == []


def test_missing_local_file_and_no_download(test_weights, tmp_path):
  with pytest.raises(AssetError, match="does not exist"):
    assets.resolve_assets(str(tmp_path / "nope.ckpt"), test_weights.pca_params)
  with pytest.raises(AssetError, match="downloads are off") as info:
    assets.resolve_assets(cache_dir=str(tmp_path), allow_download=False)
  assert "--checkpoint" in str(info.value)


def test_wrong_file_for_the_pca_flag_is_an_asset_error(test_weights):
  with pytest.raises(AssetError, match="not a readable .npz"):
    assets.resolve_assets(test_weights.checkpoint, test_weights.checkpoint)


def test_gs_uris_are_copied_into_the_cache_through_beam(gcs_emulator, test_weights, tmp_path):
  bucket = gcs_emulator.create_bucket("audiobeam-assets-case")
  ckpt_uri = gcs_emulator.upload(test_weights.checkpoint, f"{bucket}/w/vggish_model.ckpt")
  pca_uri = gcs_emulator.upload(test_weights.pca_params, f"{bucket}/w/vggish_pca_params.npz")
  resolved = assets.resolve_assets(ckpt_uri, pca_uri, cache_dir=str(tmp_path))
  assert resolved.checkpoint_uri == ckpt_uri
  assert resolved.checkpoint_path.startswith(str(tmp_path / "remote"))
  assert resolved.checkpoint_sha256 == _sha256(test_weights.checkpoint)
  assert resolved.pca_params_sha256 == _sha256(test_weights.pca_params)
  missing = f"{bucket}/w/other.ckpt"
  with pytest.raises(AssetError, match="does not exist"):
    assets.resolve_assets(missing, pca_uri, cache_dir=str(tmp_path))


from cloud_emulators import gcs_emulator  # noqa: E402,F401  (session fixture)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_write_atomically_gives_new_files_the_umask_mode_and_leaves_no_temp(tmp_path, umask):
  from audiobeam.assets import write_atomically  # pylint: disable=import-outside-toplevel

  target = tmp_path / "run.json"
  target.write_bytes(b"old")
  previous = os.umask(umask)
  try:
    write_atomically(str(target), lambda f: f.write(b"new"))
  finally:
    os.umask(previous)
  assert target.read_bytes() == b"new"
  assert target.stat().st_mode & 0o777 == 0o666 & ~umask
  assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
