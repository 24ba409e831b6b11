"""CLMR (models.clmr): windows over whole files, the numerical contract against an
independent float64 numpy SampleCNN, checkpoint layouts and validation, short clips, the
bundle on real decoded files.

Oracle (test-only, independent of our code): ``numpy_samplecnn`` below, written from the
published layer description of CLMR's SampleCNN (github.com/Spijkervet/CLMR,
clmr/models/sample_cnn.py; Lee et al. 2018): a stride-3 conv to 128 channels, nine
conv(3, pad 1) + batch norm + ReLU + max-pool(3) blocks with channels 128, 128, 256, 256,
256, 256, 256, 256, 512, a last conv(3, pad 1) 512 -> 512 block, flattened. It reads the
tensors straight from the checkpoint dict (``torch.load(weights_only=True)``) by their
published names, not through our loader.

Weights: random TEST checkpoints in the published layouts (``models.clmr.testing``).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf

import audio_fixtures as fx
from cloud_emulators import serve_directory
from audiobeam.audio import open_audio, to_mono
from audiobeam.bundle import Common, FrontEnd, ModelBundle
from audiobeam.errors import AssetError, CheckpointError, ConfigError, TooShortError
from audiobeam.resample import StreamingResampler, resample
from models.clmr import checkpoint as ckpt
from models.clmr import testing
from models.clmr.bundle import CLMRBundle
from models.clmr.frontend import CLMRFrontEnd, whole_file_windows
from models.clmr.params import DEFAULT_PARAMS as P
from models.clmr.params import CLMRParams

RATE = 22050
WINDOW = 59049
CONTRACT_TOLERANCE = 1e-4
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples", "audio")


# --- the independent oracle ------------------------------------------------------------------

_CHANNELS = [1, 128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]


def _conv1d(x, weight, bias, stride, padding):
  """x [N, C, L], weight [O, C, K] -> [N, O, L_out] (cross-correlation, float64)."""
  if padding:
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
  n, c, length = x.shape
  kernel = weight.shape[2]
  out_length = (length - kernel) // stride + 1
  cols = np.lib.stride_tricks.as_strided(
      x, shape=(n, out_length, c, kernel),
      strides=(x.strides[0], stride * x.strides[2], x.strides[1], x.strides[2]))
  y = cols.reshape(n * out_length, c * kernel) @ weight.reshape(weight.shape[0], -1).T
  return y.reshape(n, out_length, -1).transpose(0, 2, 1) + bias[None, :, None]


def numpy_samplecnn(state, prefix, windows):
  """float64 SampleCNN encoder from tensors ``state[prefix + 'sequential.i.j.name']``."""
  def get(name):
    return state[prefix + name].double().numpy()

  x = np.asarray(windows, dtype=np.float64)[:, None, :]
  for i in range(11):
    first, last = i == 0, i == 10
    x = _conv1d(x, get(f"sequential.{i}.0.weight"), get(f"sequential.{i}.0.bias"),
                stride=3 if first else 1, padding=0 if first else 1)
    mean, var = get(f"sequential.{i}.1.running_mean"), get(f"sequential.{i}.1.running_var")
    scale, shift = get(f"sequential.{i}.1.weight"), get(f"sequential.{i}.1.bias")
    x = (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5) * scale[:, None] + shift[:, None]
    x = np.maximum(x, 0.0)
    if not (first or last):
      usable = x.shape[2] // 3 * 3
      x = x[:, :, :usable].reshape(x.shape[0], x.shape[1], -1, 3).max(axis=3)
    assert x.shape[1] == _CHANNELS[i + 1]
  assert x.shape[2] == 1
  return x.reshape(x.shape[0], -1)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  """(.pt path, .ckpt path): TEST checkpoints, seed 0, written by the CLI."""
  directory = tmp_path_factory.mktemp("clmr_ckpt")
  result = subprocess.run([sys.executable, "-m", "models.clmr.testing", str(directory)],
                          capture_output=True, text=True, check=True, cwd=REPO)
  assert "--clmr_checkpoint" in result.stdout and "TEST" in result.stdout
  return str(directory / testing.PT_FILENAME), str(directory / testing.CKPT_FILENAME)


@pytest.fixture(scope="module")
def raw_state(checkpoints):
  import torch

  return torch.load(checkpoints[0], map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def audio_file(tmp_path_factory):
  """A real 7.5 s 44.1 kHz stereo WAV, decoded and resampled to 22050 Hz by the pipeline's
  pieces -> (path, samples float64 [n], duration_seconds); 2 windows + a partial one."""
  rate = 44100
  n = int(7.5 * rate)
  left = fx.music_like(n, rate)
  right = fx.speech_like(n, rate) + fx.noise(n, seed=4, amplitude=0.01)
  path = str(tmp_path_factory.mktemp("clmr_audio") / "music.wav")
  sf.write(path, np.stack([left, right], axis=1) * 0.8, rate, subtype="PCM_24")
  with open_audio(path) as stream:
    converter = StreamingResampler(stream.info.sample_rate_hz, RATE)
    pieces = [converter.process(to_mono(block)) for block in stream.blocks(50000)]
    pieces.append(converter.flush())
    duration = stream.frames_decoded / stream.info.sample_rate_hz
  return path, np.concatenate(pieces), duration


def _bundle(checkpoint, common: Common = Common(), **values) -> CLMRBundle:
  return CLMRBundle({"clmr_checkpoint": checkpoint, **values}, common)


@pytest.fixture(scope="module")
def loaded(checkpoints):
  bundle = _bundle(checkpoints[0])
  assets = bundle.resolve_assets(local_runner=True)
  local = {name: a.local_path for name, a in assets.items()}
  return bundle, assets, bundle.load_model(local, "cpu"), bundle.load_postprocessor(local)


# --- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hop_seconds", [None, 1.0, 4.0])
def test_streaming_equals_whole_file(audio_file, hop_seconds):
  _, samples, _ = audio_file
  params = CLMRParams.from_hop_seconds(hop_seconds)
  whole, padded = whole_file_windows(samples, params)
  assert whole.shape == (params.num_windows(samples.shape[0]), WINDOW) and not padded
  for i in range(whole.shape[0]):
    np.testing.assert_array_equal(whole[i], samples[i * params.hop:i * params.hop + WINDOW]
                                  .astype(np.float32))
  rng = np.random.default_rng(7)
  front = CLMRFrontEnd(params)
  blocks, position = [], 0
  while position < samples.shape[0]:
    size = int(rng.integers(1, 70000))
    blocks += list(front.push(samples[position:position + size]))
    position += size
  blocks += list(front.finish(7.5))
  streamed = np.concatenate([b.inputs for b in blocks])
  assert streamed.dtype == np.float32
  np.testing.assert_array_equal(streamed, whole)
  assert [b.start_index for b in blocks] == list(np.cumsum([0] + [len(b.inputs) for b in blocks])[:-1])
  assert front.num_frames == whole.shape[0] and not front.padded


@pytest.mark.parametrize("num_samples,hop,expected", [
    (WINDOW - 1, WINDOW, 0), (WINDOW, WINDOW, 1), (2 * WINDOW - 1, WINDOW, 1),
    (2 * WINDOW, WINDOW, 2), (WINDOW + 22050, 22050, 2), (3 * WINDOW, 2 * WINDOW, 2)])
def test_num_windows(num_samples, hop, expected):
  params = CLMRParams(hop_samples=hop)
  assert params.num_windows(num_samples) == expected
  assert expected == sum(1 for i in range(num_samples) if i * hop + WINDOW <= num_samples)


def test_short_clip_policies(checkpoints, loaded):
  _, _, model, _ = loaded
  short = fx.sine(40000, RATE, 330.0)
  front = _bundle(checkpoints[0]).frontend()
  assert list(front.push(short)) == []
  with pytest.raises(TooShortError, match="--short_clips pad") as error:
    list(front.finish(40000 / RATE))
  assert error.value.error_type == "too_short"
  front = _bundle(checkpoints[0], Common(short_clips="pad")).frontend()
  blocks = [*front.push(short[:1000]), *front.push(short[1000:]), *front.finish(40000 / RATE)]
  assert front.padded and front.num_frames == 1 and len(blocks) == 1
  expected = np.zeros((1, WINDOW), np.float32)
  expected[0, :40000] = short
  np.testing.assert_array_equal(blocks[0].inputs, expected)
  np.testing.assert_array_equal(whole_file_windows(short, P, "pad")[0], expected)
  assert np.isfinite(model(expected)["embedding"]).all()
  with pytest.raises(TooShortError):
    whole_file_windows(short, P)
  # Exactly one window needs no padding.
  front = _bundle(checkpoints[0], Common(short_clips="pad")).frontend()
  assert len([*front.push(fx.sine(WINDOW, RATE)), *front.finish(WINDOW / RATE)]) == 1
  assert not front.padded


# --- numerical contract -----------------------------------------------------------------------


def test_contract_equals_numpy_samplecnn(loaded, raw_state, audio_file):
  _, _, model, _ = loaded
  _, samples, _ = audio_file
  windows, _ = whole_file_windows(samples, P)
  windows = np.concatenate([windows, np.zeros((1, WINDOW), np.float32)])   # + silence
  ours = model(windows)["embedding"]
  oracle = numpy_samplecnn(raw_state, "encoder.", windows)
  assert ours.shape == (3, 512) and ours.dtype == np.float32
  assert np.abs(ours - oracle).max() <= CONTRACT_TOLERANCE
  assert np.abs(oracle).max() > 0.1                 # not a trivially zero network


def test_batch_invariance_and_determinism(loaded, audio_file):
  _, _, model, _ = loaded
  windows, _ = whole_file_windows(audio_file[1], P)
  together = model(windows)["embedding"]
  alone = np.concatenate([model(windows[i:i + 1])["embedding"] for i in range(len(windows))])
  # CPU convolution kernels sum in a batch-size dependent order: float32 rounding only,
  # within the contract's tolerance (measured up to ~3e-5 on embeddings of size ~10).
  np.testing.assert_allclose(alone, together, rtol=0, atol=CONTRACT_TOLERANCE)
  assert np.array_equal(model(windows)["embedding"], together)
  assert np.isfinite(together).all()


# --- checkpoints ------------------------------------------------------------------------------


def test_published_layouts_load_the_same_encoder(checkpoints, tmp_path, raw_state):
  import torch

  from_pt, layout_pt = ckpt.read_checkpoint(checkpoints[0])
  from_ckpt, layout_ckpt = ckpt.read_checkpoint(checkpoints[1])
  assert (layout_pt, layout_ckpt) == ("state_dict", "lightning")
  assert sorted(from_pt) == sorted(from_ckpt) and len(from_pt) == 66
  for name in from_pt:
    np.testing.assert_array_equal(from_pt[name], from_ckpt[name])
  assert {k for k in raw_state if not k.startswith("encoder.")} == {"projector.0.weight",
                                                                    "projector.2.weight"}
  # A bare SampleCNN state dict with its classifier (what CLMR's load_encoder_checkpoint
  # returns) loads too; fc.* is not part of the encoder.
  bare = collections.OrderedDict((k[len("encoder."):], v) for k, v in raw_state.items()
                                 if k.startswith("encoder."))
  bare["fc.weight"], bare["fc.bias"] = torch.zeros(50, 512), torch.zeros(50)
  torch.save(bare, tmp_path / "bare.pt")
  from_bare, layout = ckpt.read_checkpoint(str(tmp_path / "bare.pt"))
  assert layout == "samplecnn" and all(np.array_equal(from_bare[k], from_pt[k]) for k in from_pt)


def test_lightning_hyperparameter_objects_load_without_unpickling_them(checkpoints, tmp_path):
  """Lightning pickles its AttributeDict and argparse.Namespace: read through stand-ins."""
  import torch

  raw = torch.load(checkpoints[1], map_location="cpu", weights_only=True)
  fake = types.ModuleType("pytorch_lightning.utilities.parsing")

  class AttributeDict(dict):
    pass

  AttributeDict.__module__ = fake.__name__
  AttributeDict.__qualname__ = "AttributeDict"
  fake.AttributeDict = AttributeDict
  modules = {name: types.ModuleType(name) for name in ("pytorch_lightning",
                                                       "pytorch_lightning.utilities")}
  modules[fake.__name__] = fake
  saved = {name: sys.modules.get(name) for name in modules}
  sys.modules.update(modules)
  try:
    raw["hyper_parameters"] = AttributeDict(batch_size=96, dataset="magnatagatune")
    raw["args"] = argparse.Namespace(projection_dim=64)
    torch.save(raw, tmp_path / "lightning.ckpt")
  finally:
    for name, module in saved.items():
      if module is None:
        del sys.modules[name]
      else:
        sys.modules[name] = module
  weights, layout = ckpt.read_checkpoint(str(tmp_path / "lightning.ckpt"))
  assert layout == "lightning" and len(weights) == 66
  loaded_raw = ckpt.load_raw(str(tmp_path / "lightning.ckpt"))
  assert dict(loaded_raw["hyper_parameters"]) == {"batch_size": 96, "dataset": "magnatagatune"}
  assert type(loaded_raw["args"]).__name__ == "_Record" and loaded_raw["args"].projection_dim == 64


def test_arbitrary_objects_are_never_unpickled(tmp_path, raw_state):
  import torch

  evil = dict(raw_state)
  evil["callback"] = collections.Counter  # a class: a global the file asks to import
  evil["data"] = np.arange(3)             # a numpy array: numpy globals
  torch.save(evil, tmp_path / "evil.pt")
  with pytest.raises(CheckpointError, match="never unpickled") as error:
    ckpt.read_checkpoint(str(tmp_path / "evil.pt"))
  assert "--clmr_checkpoint" in str(error.value)


def test_checkpoint_errors_name_every_bad_tensor(tmp_path, raw_state):
  import torch

  state = collections.OrderedDict(raw_state)
  del state["encoder.sequential.3.0.weight"]
  del state["encoder.sequential.10.1.running_var"]
  state["encoder.sequential.5.0.bias"] = torch.zeros(128)
  state["encoder.sequential.11.0.weight"] = torch.zeros(3)
  state["encoder.sequential.2.1.weight"] = torch.ones(128, dtype=torch.int32)
  del state["encoder.sequential.7.1.num_batches_tracked"]              # optional: fine
  torch.save(state, tmp_path / "bad.pt")
  with pytest.raises(CheckpointError) as error:
    ckpt.read_checkpoint(str(tmp_path / "bad.pt"))
  message = str(error.value)
  for text in ("2 missing", "sequential.3.0.weight", "sequential.10.1.running_var",
               "1 unexpected", "sequential.11.0.weight", "1 misshapen",
               "sequential.5.0.bias [128] (expected [256])", "not floating point",
               "sequential.2.1.weight torch.int32", "--clmr_checkpoint"):
    assert text in message, text
  assert "num_batches_tracked" not in message
  with pytest.raises(AssetError):
    _bundle(str(tmp_path / "bad.pt")).resolve_assets(local_runner=True)


def test_not_a_clmr_checkpoint(tmp_path):
  import torch

  torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
  with pytest.raises(CheckpointError, match="no SampleCNN encoder found: .*found conv.weight"):
    ckpt.read_checkpoint(str(tmp_path / "other.pt"))
  torch.save([torch.zeros(3)], tmp_path / "list.pt")
  with pytest.raises(CheckpointError, match="found list"):
    ckpt.read_checkpoint(str(tmp_path / "list.pt"))
  (tmp_path / "text.pt").write_text("not a checkpoint")
  with pytest.raises(CheckpointError, match="not a readable torch checkpoint|never unpickled"):
    ckpt.read_checkpoint(str(tmp_path / "text.pt"))
  with pytest.raises(AssetError, match="does not exist"):
    _bundle(str(tmp_path / "missing.pt")).resolve_assets(local_runner=True)
  with pytest.raises(AssetError, match="pass --clmr_checkpoint PATH"):
    _bundle(None).resolve_assets(local_runner=True)


# --- bundle -----------------------------------------------------------------------------------


def test_bundle_interface(loaded, checkpoints):
  import pyarrow as pa

  bundle, assets, _, _ = loaded
  assert isinstance(bundle, ModelBundle) and bundle.name == "clmr"
  assert bundle.sample_rate_hz == 22050 and bundle.resampler == "kaiser_best"
  assert {o.name for o in CLMRBundle.options} == {"clmr_checkpoint", "clmr_hop_seconds"}
  asset = assets["checkpoint"]
  assert asset.kind == "file" and asset.local_path == checkpoints[0]
  assert asset.sha256 == hashlib.sha256(open(checkpoints[0], "rb").read()).hexdigest()
  settings = bundle.settings(assets)
  assert settings["hop_samples"] == WINDOW and settings["checkpoint_sha256"] == asset.sha256
  field = pa.field("embedding", pa.list_(pa.float32(), 512))
  assert bundle.frame_fields() == [field] and bundle.clip_fields() == [field]
  assert bundle.schema_metadata(assets) == {} and isinstance(bundle.frontend(), FrontEnd)
  start, end = bundle.frame_times(np.arange(3), 8.0)
  np.testing.assert_allclose(start, np.arange(3) * WINDOW / RATE)
  np.testing.assert_allclose(end, np.minimum(start + WINDOW / RATE, 8.0))
  hop = _bundle(checkpoints[1], clmr_hop_seconds=1.0)
  assert hop.params.hop == 22050 and hop.settings(hop.resolve_assets(local_runner=True))[
      "hop_samples"] == 22050
  np.testing.assert_allclose(hop.frame_times(np.arange(2), 9.0)[0], [0.0, 1.0])
  short_start, short_end = bundle.frame_times(np.array([0]), 1.5)
  import pickle

  shipped = pickle.loads(pickle.dumps(bundle))
  assert shipped.frame_fields() == bundle.frame_fields() and shipped.params == bundle.params
  assert short_start[0] == 0.0 and short_end[0] == 1.5


@pytest.mark.parametrize("value", [0.0, -1.0, "2", 1e-6])
def test_bundle_option_errors(value):
  with pytest.raises(ConfigError, match="clmr_hop_seconds"):
    CLMRBundle({"clmr_checkpoint": "x", "clmr_hop_seconds": value}, Common())


@pytest.mark.parametrize("name", ["music_44k_stereo.flac", "noise_pink_22k_mono.ogg"])
def test_bundle_on_real_decoded_files(loaded, name):
  bundle, _, model, post = loaded
  path = os.path.join(EXAMPLES, name)
  front = bundle.frontend()
  blocks, decoded = [], []
  with open_audio(path) as stream:
    rate = stream.info.sample_rate_hz
    converter = StreamingResampler(rate, RATE)
    for block in stream.blocks(40000):
      decoded.append(to_mono(block))
      blocks += front.push(converter.process(decoded[-1]))
    blocks += front.push(converter.flush())
    duration = stream.frames_decoded / rate
  blocks += front.finish(duration)
  inputs = np.concatenate([b.inputs for b in blocks])
  expected, _ = whole_file_windows(resample(np.concatenate(decoded), rate, RATE), P)
  np.testing.assert_allclose(inputs, expected, rtol=0, atol=1e-6)
  frames = post.frame_columns(model(inputs))
  assert frames["embedding"].shape == (int(duration * RATE) // WINDOW, 512)
  clip = post.clip_columns(frames, Common())
  np.testing.assert_allclose(clip["embedding"], frames["embedding"].mean(axis=0), rtol=1e-6)
  clip_max = post.clip_columns(frames, Common(pooling="max", normalize="l2"))
  peak = frames["embedding"].max(axis=0)
  np.testing.assert_allclose(clip_max["embedding"], peak / np.linalg.norm(peak), rtol=1e-6)


# --- test weights and imports -----------------------------------------------------------------


def test_test_weights_are_deterministic(checkpoints):
  """The same seed gives the same tensors in this process as in the CLI's."""
  again = testing.make_encoder_state(seed=0)
  written, _ = ckpt.read_checkpoint(checkpoints[0])
  assert sorted(written) == sorted(k for k in again if not k.endswith("num_batches_tracked"))
  assert all(np.array_equal(written[k], again[k]) for k in written)
  assert ckpt.read_checkpoint(checkpoints[1])[1] == "lightning"


def test_importing_the_package_imports_no_torch():
  code = ("import sys, models.clmr, models.clmr.bundle, models.clmr.frontend, "
          "models.clmr.network, models.clmr.checkpoint, models.clmr.testing; "
          "sys.exit(1 if 'torch' in sys.modules or 'tensorflow' in sys.modules else 0)")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_towhee_style_chain_matches_ours(checkpoints):
  """bench's Towhee-style chain (whole-file read, split, its own torch SampleCNN from the
  Lightning checkpoint) and our bundle give the same embeddings for a 22050 Hz file."""
  from bench.chains_ast_clmr import ours_chain, towhee_clmr_chain

  path = os.path.join(EXAMPLES, "noise_pink_22k_mono.ogg")
  theirs = towhee_clmr_chain([path], checkpoints[1])
  ours = ours_chain(_bundle(checkpoints[0], Common(device="cpu")), [path])
  assert theirs.embeddings[0].shape == ours.embeddings[0].shape == (1, 512)
  np.testing.assert_allclose(ours.embeddings[0], theirs.embeddings[0], rtol=0, atol=2e-5)
  assert theirs.audio_seconds == pytest.approx(3.0) and "model" in theirs.seconds


def test_remote_checkpoint_is_copied_validated_and_cached(checkpoints, raw_state, tmp_path):
  """A checkpoint at a URI (loopback HTTP here; gs:// and s3:// go through Beam's
  FileSystems the same way) is validated before it is cached; a bad one is not cached."""
  import shutil

  import torch

  root = tmp_path / "served"
  root.mkdir()
  shutil.copy(checkpoints[1], root / "good.ckpt")
  bad = collections.OrderedDict(raw_state)
  del bad["encoder.sequential.4.0.bias"]
  torch.save(bad, root / "bad.pt")
  cache = Common(cache_dir=str(tmp_path / "cache"))
  with serve_directory(root) as (base, _):
    base = base.rstrip("/")
    asset = _bundle(f"{base}/good.ckpt", cache).resolve_assets(local_runner=False)["checkpoint"]
    assert asset.worker_uri == f"{base}/good.ckpt"
    assert asset.local_path.startswith(str(tmp_path / "cache"))
    assert asset.sha256 == hashlib.sha256(open(checkpoints[1], "rb").read()).hexdigest()
    with pytest.raises(CheckpointError, match="(?s)invalid and was not cached.*sequential.4.0.bias"):
      _bundle(f"{base}/bad.pt", cache).resolve_assets(local_runner=False)
  again = _bundle(f"{base}/good.ckpt", cache).resolve_assets(local_runner=False)["checkpoint"]
  assert again.local_path == asset.local_path
