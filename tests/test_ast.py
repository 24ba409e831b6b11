"""AST (models.ast): fbank vs torchaudio's Kaldi oracle, windows over whole files, the
numerical contract against transformers' extractor + model, checkpoint validation, the
bundle on real decoded files.

Oracles (test-only, independent of our code):
- fbank: torchaudio's ``compliance/kaldi.py`` (pure torch) extracted from the torchaudio
  wheel without installing it (``tests/kaldi_oracle.py``), run on the same float64 samples.
- extractor + model: transformers' ``ASTFeatureExtractor`` made to use that oracle (as it
  does when torchaudio is installed) and the ``ASTForAudioClassification``/``ASTModel``
  loaded from the same TEST checkpoint, called directly on each window's samples.

Weights: random TEST checkpoints in the published folder layout (``models.ast.testing``):
the published architecture at width 64, depth 2, so that everything runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import audio_fixtures as fx
import kaldi_oracle
from cloud_emulators import serve_directory
from audiobeam.audio import open_audio, to_mono
from audiobeam.bundle import Common, FrontEnd, ModelBundle
from audiobeam.errors import AssetError, CheckpointError, ConfigError, TooShortError
from audiobeam.resample import StreamingResampler, resample
from models.ast import checkpoint as ckpt
from models.ast import fbank as fbank_lib
from models.ast import testing
from models.ast.bundle import CLASS_NAMES_KEY, ASTBundle
from models.ast.frontend import ASTFrontEnd, whole_file_inputs
from models.ast.params import DEFAULT_PARAMS as P
from models.ast.params import ASTParams

RATE = 16000
CONTRACT_TOLERANCE = 1e-5
FBANK_TOLERANCE = 1e-4
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples", "audio")


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  """(classification folder, base folder): TEST checkpoints, seed 0."""
  return testing.write_test_checkpoints(str(tmp_path_factory.mktemp("ast_ckpt")), seed=0)


@pytest.fixture(scope="module")
def kaldi():
  return kaldi_oracle.kaldi_or_skip()


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
  """A real 23 s 44.1 kHz stereo FLAC (music + speech-like), decoded and resampled to 16 kHz
  by the pipeline's own pieces -> (path, samples16 float64 [n], duration_seconds)."""
  rate = 44100
  n = 23 * rate
  left = fx.music_like(n, rate) + 0.3 * fx.speech_like(n, rate)
  right = 0.5 * fx.chirp(n, rate, 200.0, 9000.0) + fx.noise(n, seed=3, amplitude=0.02)
  path = str(tmp_path_factory.mktemp("ast_audio") / "long.flac")
  sf.write(path, np.stack([left, right], axis=1) * 0.7, rate, subtype="PCM_16")
  samples, duration = _decode_resampled(path)
  return path, samples, duration


def _decode_resampled(path: str, block_frames: int = 65536):
  with open_audio(path) as stream:
    converter = StreamingResampler(stream.info.sample_rate_hz, RATE)
    pieces = [converter.process(to_mono(block)) for block in stream.blocks(block_frames)]
    pieces.append(converter.flush())
    duration = stream.frames_decoded / stream.info.sample_rate_hz
  return np.concatenate(pieces), duration


def _bundle(checkpoint: str, common: Common = Common(), **values) -> ASTBundle:
  return ASTBundle({"ast_checkpoint": checkpoint, **values}, common)


def _loaded(bundle: ASTBundle):
  assets = bundle.resolve_assets(local_runner=True)
  local = {name: a.local_path for name, a in assets.items()}
  return assets, bundle.load_model(local, "cpu"), bundle.load_postprocessor(local)


@pytest.fixture(scope="module")
def cls_bundle(checkpoints):
  bundle = _bundle(checkpoints[0])
  assets, model, post = _loaded(bundle)
  return bundle, assets, model, post


@pytest.fixture(scope="module")
def reference(checkpoints, kaldi):
  """The reference: transformers' extractor using the Kaldi oracle + the HF models."""
  import torch
  import transformers
  from transformers.models.audio_spectrogram_transformer import (
      feature_extraction_audio_spectrogram_transformer as fe_module)

  patch = pytest.MonkeyPatch()
  patch.setattr(fe_module, "is_speech_available", lambda: True)
  patch.setattr(fe_module, "ta_kaldi", kaldi, raising=False)
  extractor = transformers.ASTFeatureExtractor.from_pretrained(checkpoints[0])
  cls_model = transformers.ASTForAudioClassification.from_pretrained(checkpoints[0]).eval()
  base_model = transformers.ASTModel.from_pretrained(checkpoints[1]).eval()

  def features(samples: np.ndarray):
    return extractor(samples, sampling_rate=RATE, return_tensors="pt")["input_values"]

  yield features, cls_model, base_model, torch
  patch.undo()


# --- fbank ------------------------------------------------------------------------------


def _signals():
  n = 3 * RATE + 123
  speech, rate = sf.read(os.path.join(EXAMPLES, "speech_16k_mono.wav"))
  assert rate == RATE
  return {
      "noise": fx.noise(n, seed=5),
      "tone_440": fx.sine(n, RATE, 440.0),
      "chirp": fx.chirp(n, RATE, 50.0, 7900.0),
      "music": fx.music_like(n, RATE),
      "speech_example": speech,
      "quiet_noise": fx.noise(n, seed=6, amplitude=1e-4),
      "silence": np.zeros(n),
  }


@pytest.mark.parametrize("name", list(_signals()))
def test_fbank_matches_torchaudio_kaldi_oracle(kaldi, name):
  import torch

  signal = _signals()[name]
  ours = fbank_lib.fbank(signal, P)
  theirs = kaldi.fbank(torch.from_numpy(signal)[None], sample_frequency=RATE,
                       window_type="hanning", num_mel_bins=128).numpy()
  assert ours.shape == theirs.shape == (P.num_fbank_frames(signal.shape[0]), 128)
  assert ours.dtype == np.float64
  assert np.abs(ours - theirs).max() <= FBANK_TOLERANCE


def test_mel_filter_bank_matches_oracle_to_float32_rounding(kaldi):
  banks, _ = kaldi.get_mel_banks(128, 512, float(RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
  ours = fbank_lib.mel_filter_bank(P)
  assert ours.shape == (128, 257) and not ours[:, 256].any()
  assert np.abs(ours[:, :256] - banks.double().numpy()).max() < 2e-5
  assert ((ours[:, :256] > 0) == (banks.numpy() > 0)).all()


def test_fbank_known_values():
  # Silence: every energy is floored at float32 epsilon.
  assert np.array_equal(fbank_lib.fbank(np.zeros(1000), P), np.full((4, 128), np.log(P.log_floor)))
  # A constant (pure DC) signal is removed by the DC offset step: silence again.
  assert np.allclose(fbank_lib.fbank(np.full(1000, 0.3), P), np.log(P.log_floor))
  # Frame counts (Kaldi snip_edges) and the symmetric Hann window.
  assert [P.num_fbank_frames(n) for n in (0, 399, 400, 559, 560, 164080)] == [0, 0, 1, 1, 2, 1024]
  window = fbank_lib.hann_window(P)
  assert window[0] == 0.0 and window[-1] == pytest.approx(0.0, abs=1e-15)
  assert np.allclose(window, window[::-1])
  # A 1 kHz tone peaks in the filter whose centre is nearest 1 kHz.
  peak = fbank_lib.fbank(fx.sine(4000, RATE, 1000.0), P).mean(axis=0).argmax()
  centres = 700 * np.expm1((fbank_lib.kaldi_mel_scale(20.0) + (np.arange(128) + 1) * (
      fbank_lib.kaldi_mel_scale(8000.0) - fbank_lib.kaldi_mel_scale(20.0)) / 129) / 1127)
  assert peak == np.abs(centres - 1000.0).argmin()


# --- windows ----------------------------------------------------------------------------


@pytest.mark.parametrize("frames,hop_frames,expected", [
    (1, 1024, 1), (1024, 1024, 1), (1025, 1024, 2), (2048, 1024, 2), (2049, 1024, 3),
    (1500, 500, 2), (1525, 500, 3), (3000, 2048, 2), (1500, 2048, 1), (0, 1024, 0)])
def test_num_windows(frames, hop_frames, expected):
  params = ASTParams(hop_seconds=hop_frames / 100)
  assert params.num_windows(frames) == expected
  # Definition: window w exists iff it starts inside and the one before does not reach the end.
  brute = sum(1 for w in range(frames + 1) if w * hop_frames < frames
              and (w == 0 or (w - 1) * hop_frames + 1024 < frames))
  assert brute == expected


@pytest.mark.parametrize("hop_seconds", [10.24, 4.0, 15.0])
def test_streaming_equals_whole_file(long_file, hop_seconds):
  _, samples, _ = long_file
  params = ASTParams(hop_seconds=hop_seconds)
  whole, padded = whole_file_inputs(samples, params)
  rng = np.random.default_rng(int(hop_seconds * 100))
  front = ASTFrontEnd(params)
  blocks, position = [], 0
  while position < samples.shape[0]:
    size = int(rng.integers(1, 120000))
    blocks += list(front.push(samples[position:position + size]))
    position += size
  blocks += list(front.finish(23.0))
  streamed = np.concatenate([b.inputs for b in blocks])
  assert [b.start_index for b in blocks] == list(np.cumsum([0] + [len(b.inputs) for b in blocks])[:-1])
  assert streamed.dtype == np.float32 and streamed.shape == whole.shape
  assert streamed.shape == (params.num_windows(params.num_fbank_frames(samples.shape[0])), 1024, 128)
  np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-6)
  assert front.num_frames == whole.shape[0] and not front.padded and not padded


def test_windows_cover_the_whole_file_and_pad_like_the_extractor(long_file):
  _, samples, _ = long_file
  frames = fbank_lib.fbank(samples, P)                              # [2298, 128]
  inputs, _ = whole_file_inputs(samples, P)
  assert inputs.shape[0] == 3                                       # 23 s = 2 full + 1 padded
  for w in range(3):
    piece = frames[w * 1024:(w + 1) * 1024]
    expected = np.full((1024, 128), (0.0 - P.mean) / (2 * P.std))  # padding: zeros, normalised
    expected[:piece.shape[0]] = (piece - P.mean) / (2 * P.std)
    np.testing.assert_allclose(inputs[w], expected, rtol=0, atol=1e-6)
  assert frames.shape[0] - 2048 == 250                              # rows of real frames in window 2


def test_first_window_equals_extractor_on_first_10_24_seconds(long_file, reference):
  features, *_ = reference
  _, samples, _ = long_file
  ours, _ = whole_file_inputs(samples, P)
  theirs = features(samples[:P.window_span_samples]).numpy()[0]
  assert np.abs(ours[0] - theirs).max() < 2e-4  # extractor: float32 samples and FFT


# --- numerical contract -------------------------------------------------------------------


def _reference_outputs(reference, samples, params, classification):
  features, cls_model, base_model, torch = reference
  count = params.num_windows(params.num_fbank_frames(samples.shape[0]))
  embeddings, scores, tokens = [], [], []
  with torch.inference_mode():
    for w in range(count):
      start = w * params.hop_samples
      x = features(samples[start:start + params.window_span_samples])
      if classification:
        hidden = cls_model.audio_spectrogram_transformer(x)
        scores.append(torch.sigmoid(cls_model(x).logits).numpy()[0])
      else:
        hidden = base_model(x)
      embeddings.append(hidden.pooler_output.numpy()[0])
      tokens.append(hidden.last_hidden_state.mean(dim=1).numpy()[0])
  return np.stack(embeddings), np.stack(tokens), (np.stack(scores) if scores else None)


@pytest.mark.parametrize("classification", [True, False], ids=["classification", "base"])
def test_contract_per_window_equals_extractor_and_model(checkpoints, long_file, reference,
                                                        classification):
  _, samples, _ = long_file
  folder = checkpoints[0 if classification else 1]
  pooler_bundle = _bundle(folder)
  _, pooler_model, _ = _loaded(pooler_bundle)
  tokens_bundle = _bundle(folder, ast_embedding="mean_tokens")
  _, tokens_model, _ = _loaded(tokens_bundle)
  front = pooler_bundle.frontend()
  inputs = np.concatenate([b.inputs for b in [*front.push(samples), *front.finish(23.0)]])
  ours = pooler_model(inputs)
  ours_tokens = tokens_model(inputs)["embedding"]
  want_pooler, want_tokens, want_scores = _reference_outputs(reference, samples, P,
                                                             classification)
  assert ours["embedding"].shape == want_pooler.shape == (3, 64)
  assert np.abs(ours["embedding"] - want_pooler).max() <= CONTRACT_TOLERANCE
  assert np.abs(ours_tokens - want_tokens).max() <= CONTRACT_TOLERANCE
  if classification:
    assert ours["scores"].shape == want_scores.shape == (3, len(testing.TEST_LABELS))
    assert np.abs(ours["scores"] - want_scores).max() <= CONTRACT_TOLERANCE
  else:
    assert set(ours) == {"embedding"}


def test_batch_invariance_and_determinism(cls_bundle, long_file):
  bundle, _, model, _ = cls_bundle
  inputs, _ = whole_file_inputs(long_file[1], P)
  together = model(inputs)
  alone = [model(inputs[i:i + 1]) for i in range(inputs.shape[0])]
  mixed = model(np.stack([inputs[2], inputs[0]]))
  again = model(inputs)
  for key in ("embedding", "scores"):
    np.testing.assert_allclose(np.concatenate([a[key] for a in alone]), together[key],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(mixed[key], together[key][[2, 0]], rtol=0, atol=1e-6)
    assert np.array_equal(again[key], together[key])              # same batch, same bits
    assert np.isfinite(together[key]).all() and together[key].dtype == np.float32
  del bundle


# --- short clips --------------------------------------------------------------------------


def test_short_clip_policies(cls_bundle):
  bundle, _, model, _ = cls_bundle
  short = fx.sine(300, RATE, 440.0)
  front = bundle.frontend()
  assert list(front.push(short)) == []
  with pytest.raises(TooShortError, match="--short_clips pad") as error:
    list(front.finish(300 / RATE))
  assert error.value.error_type == "too_short"
  padded_bundle = _bundle(bundle.values["ast_checkpoint"], Common(short_clips="pad"))
  padded_bundle.resolve_assets(local_runner=True)
  front = padded_bundle.frontend()
  blocks = [*front.push(short), *front.finish(300 / RATE)]
  assert front.padded and front.num_frames == 1 and len(blocks) == 1
  expected, padded = whole_file_inputs(np.concatenate([short, np.zeros(100)]), P)
  np.testing.assert_array_equal(blocks[0].inputs, expected)
  assert not padded and whole_file_inputs(short, P, "pad")[1]
  assert np.isfinite(model(blocks[0].inputs)["embedding"]).all()
  # 400 samples (one frame) need no padding under either policy.
  front = bundle.frontend()
  assert len([*front.push(short[:1]), *front.push(fx.sine(399, RATE)), *front.finish(0.025)]) == 1
  assert not front.padded


# --- checkpoint validation ----------------------------------------------------------------


def _copy_checkpoint(source: str, target) -> str:
  os.makedirs(target, exist_ok=True)
  for name in ckpt.CHECKPOINT_FILES:
    with open(os.path.join(source, name), "rb") as f, open(os.path.join(target, name), "wb") as g:
      g.write(f.read())
  return str(target)


def _rewrite_tensors(folder: str, edit) -> None:
  from safetensors.numpy import load_file, save_file

  path = os.path.join(folder, ckpt.WEIGHTS_FILENAME)
  tensors = load_file(path)
  edit(tensors)
  save_file(tensors, path, metadata={"format": "pt"})


def test_checkpoint_errors_name_every_bad_tensor(checkpoints, tmp_path):
  folder = _copy_checkpoint(checkpoints[0], tmp_path / "bad")

  def edit(tensors):
    del tensors["audio_spectrogram_transformer.encoder.layer.1.output.dense.bias"]
    del tensors["classifier.dense.weight"]
    tensors["audio_spectrogram_transformer.encoder.layer.0.attention.attention.query.weight"] = \
        np.zeros((64, 32), np.float32)
    tensors["audio_spectrogram_transformer.pooler.dense.weight"] = np.zeros((64, 64), np.float32)
    tensors["classifier.dense.bias"] = np.zeros(8, np.int32)

  _rewrite_tensors(folder, edit)
  with pytest.raises(CheckpointError) as error:
    ckpt.validate_checkpoint_dir(folder)
  message = str(error.value)
  for text in ("2 missing", "encoder.layer.1.output.dense.bias", "classifier.dense.weight",
               "1 unexpected", "pooler.dense.weight", "1 misshapen",
               "attention.attention.query.weight [64, 32] (expected [64, 64])",
               "not floating point", "classifier.dense.bias I32", "--ast_checkpoint"):
    assert text in message
  with pytest.raises(AssetError, match="--ast_checkpoint"):
    _bundle(folder).resolve_assets(local_runner=True)


def test_checkpoint_config_errors(checkpoints, tmp_path):
  folder = _copy_checkpoint(checkpoints[0], tmp_path / "cfg")
  config_path = os.path.join(folder, ckpt.CONFIG_FILENAME)
  config = json.load(open(config_path))
  config.update(model_type="vit", auto_map={"AutoModel": "evil.Model"}, num_attention_heads=5)
  json.dump(config, open(config_path, "w"))
  with pytest.raises(CheckpointError) as error:
    ckpt.validate_checkpoint_dir(folder)
  for text in ("model_type 'vit'", "'auto_map' present", "not a multiple of num_attention_heads"):
    assert text in str(error.value)
  # The preprocessor must be an AST extractor at 16 kHz agreeing with the model.
  folder = _copy_checkpoint(checkpoints[0], tmp_path / "pre")
  pre_path = os.path.join(folder, ckpt.PREPROCESSOR_FILENAME)
  pre = json.load(open(pre_path))
  pre.update(sampling_rate=22050, feature_extractor_type="WhisperFeatureExtractor")
  del pre["std"]
  json.dump(pre, open(pre_path, "w"))
  with pytest.raises(ConfigError) as error:
    ckpt.validate_checkpoint_dir(folder)
  for text in ("WhisperFeatureExtractor", "missing 'std'", "'sampling_rate' = 22050"):
    assert text in str(error.value)
  pre = dict(testing.PUBLISHED_PREPROCESSOR_CONFIG, num_mel_bins=64)
  json.dump(pre, open(pre_path, "w"))
  with pytest.raises(CheckpointError, match="num_mel_bins 128 in config.json vs 64"):
    ckpt.validate_checkpoint_dir(folder)


def test_pickle_only_and_missing_checkpoints_are_refused(checkpoints, tmp_path):
  folder = _copy_checkpoint(checkpoints[0], tmp_path / "pickle")
  os.replace(os.path.join(folder, ckpt.WEIGHTS_FILENAME), os.path.join(folder, "pytorch_model.bin"))
  with pytest.raises(AssetError, match="pytorch_model.bin .a Python pickle"):
    _bundle(folder).resolve_assets(local_runner=True)
  with pytest.raises(AssetError, match="is not a folder"):
    _bundle(str(tmp_path / "nowhere")).resolve_assets(local_runner=True)
  with pytest.raises(AssetError, match="pass --ast_checkpoint DIR"):
    _bundle(None).resolve_assets(local_runner=True)
  (tmp_path / "junk").mkdir()
  (tmp_path / "junk" / ckpt.WEIGHTS_FILENAME).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
  with pytest.raises(CheckpointError, match="not a safetensors file"):
    ckpt.read_safetensors_header(str(tmp_path / "junk" / ckpt.WEIGHTS_FILENAME))


def test_transformers_loading_report_is_checked(checkpoints, tmp_path):
  """A header that fits our table but not transformers' network is caught at load time."""
  from models.ast.model import load_ast

  folder = _copy_checkpoint(checkpoints[1], tmp_path / "mismatch")
  layout = ckpt.validate_checkpoint_dir(folder)[1]
  config_path = os.path.join(folder, ckpt.CONFIG_FILENAME)
  json.dump(dict(json.load(open(config_path)), qkv_bias=False), open(config_path, "w"))
  with pytest.raises(CheckpointError, match="unexpected keys: .*q_proj.bias"):
    load_ast(folder, layout, "pooler", "cpu", 1024, 128)


# --- bundle ---------------------------------------------------------------------------------


def test_bundle_interface(cls_bundle, checkpoints):
  import pyarrow as pa

  bundle, assets, _, _ = cls_bundle
  assert isinstance(bundle, ModelBundle) and bundle.name == "ast"
  assert bundle.sample_rate_hz == 16000 and bundle.resampler == "kaiser_best"
  assert {o.name for o in ASTBundle.options} == {"ast_checkpoint", "ast_hop_seconds",
                                                  "ast_embedding"}
  asset = assets["checkpoint"]
  assert asset.kind == "directory" and asset.local_path == checkpoints[0]
  from audiobeam.assets import sha256_of_directory

  assert asset.sha256 == sha256_of_directory(checkpoints[0])
  settings = bundle.settings(assets)
  assert settings["checkpoint_sha256"] == asset.sha256 and settings["embedding"] == "pooler"
  assert settings["front_end"]["mean"] == -4.2677393 and json.dumps(settings)
  assert bundle.frame_fields() == [pa.field("embedding", pa.list_(pa.float32(), 64)),
                                   pa.field("scores", pa.list_(pa.float32(), 8))]
  names = [f.name for f in bundle.clip_fields()]
  assert names == ["embedding", "mean_scores", "top_labels"]
  assert json.loads(bundle.schema_metadata(assets)[CLASS_NAMES_KEY]) == list(testing.TEST_LABELS)
  start, end = bundle.frame_times(np.arange(3), 23.0)
  np.testing.assert_allclose(start, [0.0, 10.24, 20.48])
  np.testing.assert_allclose(end, [10.255, 20.495, 23.0])
  hop_bundle = _bundle(checkpoints[1], ast_hop_seconds=5.0)
  hop_bundle.resolve_assets(local_runner=True)
  assert hop_bundle.frame_fields() == [pa.field("embedding", pa.list_(pa.float32(), 64))]
  assert hop_bundle.clip_fields() == hop_bundle.frame_fields()
  assert hop_bundle.schema_metadata(hop_bundle.resolve_assets(local_runner=True)) == {}
  np.testing.assert_allclose(hop_bundle.frame_times(np.arange(2), 7.0)[0], [0.0, 5.0])
  assert isinstance(hop_bundle.frontend(), FrontEnd)
  # Pickled after resolve_assets (as the launcher ships it), it needs no checkpoint access.
  import pickle

  shipped = pickle.loads(pickle.dumps(bundle))
  shipped.values["ast_checkpoint"] = "gs://not/reachable"
  assert shipped.frame_fields() == bundle.frame_fields()
  assert shipped.frontend().params == bundle.frontend().params


@pytest.mark.parametrize("values,match", [
    ({"ast_hop_seconds": 0.0}, "ast_hop_seconds > 0"),
    ({"ast_hop_seconds": 1.005}, "multiple of the 0.01 s"),
    ({"ast_embedding": "cls"}, "pooler, mean_tokens"),
])
def test_bundle_option_errors(values, match):
  with pytest.raises(ConfigError, match=match):
    ASTBundle({"ast_checkpoint": "x", **values}, Common())


def test_bundle_needs_resolved_assets_for_remote_checkpoints():
  bundle = ASTBundle({"ast_checkpoint": "gs://bucket/ast"}, Common())
  with pytest.raises(ConfigError, match="resolve_assets"):
    bundle.frame_fields()


@pytest.mark.parametrize("name", ["music_44k_stereo.flac", "tones_44k_stereo.m4a",
                                  "chirp_48k_stereo.mp3", "speech_8k_mono.wav"])
def test_bundle_on_real_decoded_files(cls_bundle, name):
  bundle, _, model, post = cls_bundle
  path = os.path.join(EXAMPLES, name)
  front = bundle.frontend()
  blocks, decoded = [], []
  with open_audio(path) as stream:
    rate = stream.info.sample_rate_hz
    converter = StreamingResampler(rate, RATE)
    for block in stream.blocks(30000):
      decoded.append(to_mono(block))
      blocks += front.push(converter.process(decoded[-1]))
    blocks += front.push(converter.flush())
    duration = stream.frames_decoded / rate
  blocks += front.finish(duration)
  inputs = np.concatenate([b.inputs for b in blocks])
  # The same decoded samples, resampled and windowed whole. (Decoded once: libsndfile's MP3
  # decoder gives different samples for different read sizes.)
  expected, _ = whole_file_inputs(resample(np.concatenate(decoded), rate, RATE), P)
  np.testing.assert_allclose(inputs, expected, rtol=0, atol=1e-5)
  frames = post.frame_columns(model(inputs))
  clip = post.clip_columns(frames, Common())
  assert frames["embedding"].shape == (inputs.shape[0], 64)
  np.testing.assert_allclose(clip["embedding"], frames["embedding"].mean(axis=0), rtol=1e-6)
  np.testing.assert_allclose(clip["mean_scores"], frames["scores"].mean(axis=0), rtol=1e-6)
  top = clip["top_labels"]
  assert len(top) == 5 and [t["score"] for t in top] == sorted((t["score"] for t in top),
                                                              reverse=True)
  assert all(testing.TEST_LABELS[t["index"]] == t["display_name"] for t in top)
  assert top[0]["index"] == int(np.argmax(clip["mean_scores"]))
  clip_max = post.clip_columns(frames, Common(pooling="max", normalize="l2"))
  expected_max = frames["embedding"].max(axis=0)
  np.testing.assert_allclose(clip_max["embedding"], expected_max / np.linalg.norm(expected_max),
                             rtol=1e-6)


# --- test weights and imports ----------------------------------------------------------------


def test_test_weights_are_deterministic(tmp_path):
  first = testing.write_test_checkpoint(str(tmp_path / "a"), seed=3)
  second = testing.write_test_checkpoint(str(tmp_path / "b"), seed=3)
  other = testing.write_test_checkpoint(str(tmp_path / "c"), seed=4)

  def digest(folder):
    return [hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for n in ckpt.CHECKPOINT_FILES]

  assert digest(first) == digest(second) != digest(other)
  assert json.load(open(os.path.join(first, ckpt.PREPROCESSOR_FILENAME))) == \
      testing.PUBLISHED_PREPROCESSOR_CONFIG


def test_cli_writes_both_variants(tmp_path):
  result = subprocess.run([sys.executable, "-m", "models.ast.testing", str(tmp_path)],
                          capture_output=True, text=True, check=True, cwd=REPO)
  assert "--ast_checkpoint" in result.stdout and "TEST" in result.stdout
  for name, architecture in (("ast-classification-test", "ASTForAudioClassification"),
                             ("ast-base-test", "ASTModel")):
    _, layout = ckpt.validate_checkpoint_dir(str(tmp_path / name))
    assert layout.architecture == architecture


def test_importing_the_package_imports_no_torch():
  code = ("import sys, models.ast, models.ast.bundle, models.ast.frontend, models.ast.testing; "
          "bad = [m for m in ('torch', 'transformers', 'tensorflow') if m in sys.modules]; "
          "sys.exit(1 if bad else 0)")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_auditus_style_chain_sees_only_the_first_10_24_seconds(checkpoints, long_file, tmp_path):
  """bench's auditus-style chain: one embedding per file from its first 1024 frames only."""
  from bench.chains_ast_clmr import auditus_ast_chain

  _, samples, _ = long_file
  whole, prefix = tmp_path / "whole.wav", tmp_path / "prefix.wav"
  sf.write(whole, samples, RATE, subtype="FLOAT")
  sf.write(prefix, samples[:P.window_span_samples + 2000], RATE, subtype="FLOAT")
  result = auditus_ast_chain([str(whole), str(prefix)], checkpoints[1])
  first, second = result.embeddings
  assert first.shape == (64,) and np.isfinite(first).all()
  np.testing.assert_array_equal(first, second)
  assert result.audio_seconds == pytest.approx((samples.shape[0] + P.window_span_samples + 2000)
                                               / RATE)


def test_remote_checkpoint_folder_is_copied_validated_and_cached(checkpoints, tmp_path):
  """A checkpoint folder at a URI (a loopback HTTP server here; gs:// and s3:// take the
  same path through Beam's FileSystems) is copied file by file into the cache, validated,
  and used from there; a remote folder with a bad tensor is refused and not cached."""
  root = tmp_path / "served"
  _copy_checkpoint(checkpoints[0], root / "good")
  _copy_checkpoint(checkpoints[0], root / "bad")
  _rewrite_tensors(str(root / "bad"), lambda t: t.pop("classifier.dense.bias"))
  with serve_directory(root) as (base, _):
    base = base.rstrip("/")
    bundle = _bundle(f"{base}/good", Common(cache_dir=str(tmp_path / "cache")))
    assets = bundle.resolve_assets(local_runner=False)
    asset = assets["checkpoint"]
    assert asset.worker_uri == f"{base}/good" and asset.local_path.startswith(str(tmp_path / "cache"))
    assert sorted(os.listdir(asset.local_path)) == sorted(ckpt.CHECKPOINT_FILES)
    assert asset.sha256 == _bundle(checkpoints[0]).resolve_assets(local_runner=True)[
        "checkpoint"].sha256
    with pytest.raises(CheckpointError, match="(?s)invalid and was not cached.*1 missing"):
      _bundle(f"{base}/bad", Common(cache_dir=str(tmp_path / "cache"))).resolve_assets(
          local_runner=False)
  # Cached: resolves again with the server gone.
  again = _bundle(f"{base}/good", Common(cache_dir=str(tmp_path / "cache")))
  assert again.resolve_assets(local_runner=False)["checkpoint"].local_path == asset.local_path
