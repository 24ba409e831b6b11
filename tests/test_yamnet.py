"""YAMNet: counting, front end, streaming, network parity, weights and class-map readers.

The numerical checks compare our code with independent float64 computations written from
the published description (``yamnet_fixtures``). Parity with the published Keras code
itself was measured once with tf-keras (see the README's numerical contract); its code
is not in this repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import h5py
import numpy as np
import pytest

import audio_fixtures as fx
from audiobeam.errors import AssetError, AudioContentError, CheckpointError
from models.yamnet import features, network
from models.yamnet.params import DEFAULT_PARAMS, Params
from models.yamnet.stream import YAMNetFrontEnd
from models.yamnet.weights import (inspect_weights, read_class_map, read_weights,
                                   validate_weights)
from yamnet_fixtures import (SAMPLE_RATE_HZ, reference_log_mel, reference_mel_matrix,
                             reference_network, reference_patches, yamnet_assets,  # noqa: F401
                             yamnet_tf_model, yamnet_weights)

P = DEFAULT_PARAMS


# --- params and counting ---------------------------------------------------------------

def test_params_published_values_and_derived_sizes():
  assert (P.sample_rate_hz, P.num_mel_bins, P.mel_min_hz, P.mel_max_hz) == (16000, 64, 125.0, 7500.0)
  assert (P.log_offset, P.num_classes, P.batchnorm_epsilon) == (0.001, 521, 1e-4)
  assert (P.batchnorm_center, P.batchnorm_scale) == (True, False)
  assert (P.stft_window_samples, P.stft_hop_samples, P.fft_length) == (400, 160, 512)
  assert (P.patch_frames, P.patch_hop_frames, P.patch_bands) == (96, 48, 64)
  assert (P.patch_span_samples, P.patch_hop_samples, P.patch_span_seconds) == (15600, 7680, 0.975)
  assert network.feature_map_shapes()[-1] == ("layer14", (3, 2, P.embedding_size))


@pytest.mark.parametrize("num_samples, expected", [
    (0, 1), (1, 1), (8000, 1), (15599, 1), (15600, 1), (15601, 2), (23280, 2), (23281, 3),
    (16000 * 60, 124),
    # 15600 + 7680 * 2185 + 1: the reference computes ceil(16780801 / 7680) in float32,
    # where 16780801 rounds to 16780800, and gets 2185 hops (a padding of -1 samples).
    (16_796_401, 2187),
])
def test_num_patches_exact(num_samples, expected):
  assert P.num_patches(num_samples) == expected
  padded = P.padded_num_samples(num_samples)
  assert padded == 15600 + 7680 * (expected - 1)
  assert padded >= num_samples and (num_samples < 15600 or padded - num_samples < 7680)


def test_num_patches_where_the_float32_formula_breaks():
  n = 16_796_401
  beyond = n - 15600
  float32_hops = int(np.ceil(np.float32(beyond) / np.float32(7680)))
  assert float32_hops * 7680 < beyond          # The reference's float32 count is short ...
  assert P.num_patches(n) == 2 + float32_hops  # ... ours is exact.
  # And the count agrees with framing the padded signal, for lengths around many hops.
  for k in (0, 1, 2, 1000, 2185, 10_000):
    for n in (15600 + 7680 * k - 1, 15600 + 7680 * k, 15600 + 7680 * k + 1):
      frames = 1 + (P.padded_num_samples(n) - 400) // 160
      assert P.num_patches(n) == 1 + (frames - 96) // 48


def test_params_reject_hops_off_the_stft_grid():
  from audiobeam.errors import ConfigError

  with pytest.raises(ConfigError, match="multiple of the STFT hop"):
    Params(patch_hop_seconds=0.485)
  with pytest.raises(ConfigError, match="Nyquist"):
    Params(mel_max_hz=9000.0)


# --- front end against float64 from the description ------------------------------------

def test_mel_matrix_matches_the_definition():
  # TensorFlow computes the matrix in float32: ~1e-5 from the float64 definition.
  ours = features.mel_matrix()
  assert ours.shape == (257, 64) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, reference_mel_matrix(), rtol=0, atol=2e-5)
  assert np.all(ours[0] == 0)


@pytest.mark.parametrize("signal", [
    fx.noise(50_000, seed=1, amplitude=0.1),
    fx.noise(23_281, seed=2, amplitude=0.5),
    fx.noise(9_000, seed=3, amplitude=1e-3),                 # under one patch: padded
    np.r_[np.zeros(20_000), fx.noise(30_000, seed=4)],       # silence, then noise
], ids=["noise", "noise_3_patches", "quiet_short", "silence_then_noise"])
def test_log_mel_matches_float64_reference_on_noise(signal):
  # Our STFT is TensorFlow's float32 FFT (as the reference's). On noise every mel band
  # holds energy of the same order, so float32 rounding (~1e-7 of the frame's energy)
  # is ~1e-6 relative in every band: <= ~5e-5 after the log (measured 1.5e-5 .. 4.6e-5
  # incl. pink noise). On pure tones, bands far from the tone hold ~1e-8 of the energy
  # and float32 rounding dominates them (~1e-3 .. 8e-3 after the log), so tones are not
  # a test of the maths here.
  log_mel, patches = features.waveform_to_patches(signal)
  expected = reference_log_mel(signal)
  assert log_mel.shape == expected.shape and log_mel.dtype == np.float32
  np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-4)
  np.testing.assert_allclose(patches, reference_patches(signal), rtol=0, atol=1e-4)
  assert patches.shape[0] == P.num_patches(signal.shape[0])


def test_silence_is_log_offset():
  _, patches = features.waveform_to_patches(np.zeros(100))
  assert patches.shape == (1, 96, 64)
  np.testing.assert_array_equal(patches, np.float32(np.log(np.float32(0.001))))


# --- streaming == whole file ---------------------------------------------------------------

def _stream(signal, sizes, **kwargs):
  frontend = YAMNetFrontEnd(**kwargs)
  blocks, peak, position = [], 0, 0
  rng = np.random.default_rng(0)
  while position < signal.shape[0]:
    size = int(rng.choice(sizes))
    blocks += list(frontend.push(signal[position:position + size]))
    peak = max(peak, frontend.buffered_samples)
    position += size
  blocks += list(frontend.finish(signal.shape[0] / SAMPLE_RATE_HZ))
  return frontend, blocks, peak


def test_streaming_equals_whole_file_on_minutes_in_odd_pieces():
  signal = np.concatenate([fx.speech_like(16000 * 70, 16000), fx.music_like(16000 * 70, 16000),
                           fx.noise(16000 * 40 + 1234, seed=5)])          # 3 min + 1234 samples
  sizes = (1, 7, 159, 401, 7679, 7681, 15601, 33_333, 160_001)
  frontend, blocks, peak = _stream(signal, sizes)
  streamed = np.concatenate([b.inputs for b in blocks])
  starts = [b.start_index for b in blocks]
  assert starts == list(np.cumsum([0] + [b.inputs.shape[0] for b in blocks[:-1]]))
  _, whole = features.waveform_to_patches(signal)
  assert streamed.shape == whole.shape == (P.num_patches(signal.shape[0]), 96, 64)
  np.testing.assert_array_equal(streamed, whole)
  assert frontend.num_frames == streamed.shape[0] and not frontend.padded
  # Bounded memory: at most one group of 64 patches plus the largest piece pushed.
  assert peak <= 63 * 7680 + 15600 + max(sizes)


@pytest.mark.parametrize("num_samples", [0, 1, 15599, 15600, 15601, 23280, 23281, 99_999])
def test_streaming_lengths_around_patch_edges(num_samples):
  signal = fx.noise(num_samples, seed=num_samples)
  frontend, blocks, _ = _stream(signal, (1000, 7000), patches_per_call=2)
  streamed = np.concatenate([b.inputs for b in blocks])
  _, whole = features.waveform_to_patches(signal)
  np.testing.assert_array_equal(streamed, whole)
  assert frontend.num_frames == P.num_patches(num_samples)
  assert frontend.padded == (num_samples < 15600)


def test_streaming_overflowing_samples_is_an_input_error():
  frontend = YAMNetFrontEnd()
  with pytest.raises(AudioContentError, match="overflows") as error:
    list(frontend.push(np.full(20_000, 1e38)))
    list(frontend.finish(1.25))
  assert error.value.error_type == "non_finite_features"


# --- network parity ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parity_patches():
  """float32 [5, 96, 64]: a patch each of speech-like, music-like, noise, chirp, silence."""
  n = 15600
  signals = [fx.speech_like(n, 16000), fx.music_like(n, 16000), fx.noise(n, seed=9, amplitude=0.3),
             fx.chirp(n, 16000, 200.0, 6000.0), np.zeros(n)]
  return np.concatenate([features.waveform_to_patches(s)[1] for s in signals])


def test_tf_network_matches_float64_reference(yamnet_tf_model, yamnet_weights, parity_patches):
  ours = yamnet_tf_model(parity_patches)
  embedding, scores = reference_network(parity_patches, yamnet_weights)
  assert ours["embedding"].shape == (5, 1024) and ours["scores"].shape == (5, 521)
  assert ours["embedding"].dtype == ours["scores"].dtype == np.float32
  np.testing.assert_allclose(ours["embedding"], embedding, rtol=0, atol=1e-4)
  np.testing.assert_allclose(ours["scores"], scores, rtol=0, atol=1e-4)


def test_tf_network_single_patch_and_batch_composition(yamnet_tf_model, parity_patches):
  batch = yamnet_tf_model(parity_patches)
  for i in range(parity_patches.shape[0]):
    alone = yamnet_tf_model(parity_patches[i:i + 1])
    np.testing.assert_allclose(alone["embedding"], batch["embedding"][i:i + 1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(alone["scores"], batch["scores"][i:i + 1], rtol=0, atol=1e-5)
  empty = yamnet_tf_model(np.zeros((0, 96, 64), np.float32))
  assert empty["embedding"].shape == (0, 1024) and empty["scores"].shape == (0, 521)
  assert yamnet_tf_model.num_weights_loaded == 110


def test_torch_network_matches_tf(yamnet_assets, yamnet_tf_model, parity_patches):
  torch = pytest.importorskip("torch")
  from models.yamnet.torch_model import YAMNetTorch

  model = YAMNetTorch.from_h5(yamnet_assets.weights, device="cpu")
  assert model.num_weights_loaded == 110
  assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
  ours, tf_out = model(parity_patches), yamnet_tf_model(parity_patches)
  # Two float32 implementations (oneDNN in TF, ATen/oneDNN in torch) sum in different
  # orders: ~1e-7 relative per layer, grown through 27 convolutions to ~3e-6 relative
  # at most (TF against itself with the input perturbed by 1e-7 moves as much). Scores
  # lie in [0, 1]: 1e-5 absolute (measured 4.5e-6). Embeddings reach ~4.4 on the loud
  # noise patch: 1e-5 relative to their largest value (measured 1.3e-5 there, <= 7e-7 on
  # the other patches, whose embeddings stay under 1.4).
  for name in ("embedding", "scores"):
    assert ours[name].dtype == np.float32
    scale = max(1.0, float(np.abs(tf_out[name]).max()))
    np.testing.assert_allclose(ours[name], tf_out[name], rtol=0, atol=1e-5 * scale)
  single = model(parity_patches[:1])
  np.testing.assert_allclose(single["scores"], tf_out["scores"][:1], rtol=0, atol=1e-5)


def test_scores_vary_with_the_input(yamnet_tf_model, parity_patches):
  scores = yamnet_tf_model(parity_patches)["scores"]                   # [5, 521]
  assert 0.5 < np.mean((scores > 0.02) & (scores < 0.98))            # Not saturated.
  spread = scores.max(axis=0) - scores.min(axis=0)                    # Across the 5 inputs.
  assert spread.max() > 0.1 and np.mean(spread > 0.01) > 0.5


# --- weights file ----------------------------------------------------------------------------

def test_test_weights_in_published_layout(yamnet_assets):
  with h5py.File(yamnet_assets.weights, "r") as f:
    names = [n.decode() for n in f.attrs["layer_names"]]
    text = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()
            if k != "layer_names"}
    assert text["backend"] == "tensorflow" and text["keras_version"].startswith("2.")
    assert names.index("layer1/conv") < names.index("layer14/pointwise_conv/bn") < names.index("logits")
    group = f["layer2/depthwise_conv/bn"]
    assert [w.decode() for w in group.attrs["weight_names"]] == [
        "layer2/depthwise_conv/bn/beta:0", "layer2/depthwise_conv/bn/moving_mean:0",
        "layer2/depthwise_conv/bn/moving_variance:0"]
    assert f["logits/logits/kernel:0"].shape == (1024, 521)
    assert f["layer1/conv/layer1/conv/kernel:0"].dtype == np.float32
    datasets = []
    f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    assert len(datasets) == 110
  assert inspect_weights(yamnet_assets.weights) == {
      k: (s, np.dtype(np.float32)) for k, s in network.weight_shapes().items()}


def test_test_weights_deterministic(tmp_path, yamnet_assets):
  from models.yamnet.testing import main

  assert main([str(tmp_path / "a")]) == 0
  with open(tmp_path / "a" / "yamnet.h5", "rb") as a, open(yamnet_assets.weights, "rb") as b:
    assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest()
  with pytest.raises(FileExistsError, match="already holds"):  # Never overwrites (real weights?).
    main([str(tmp_path / "a")])
  other = read_weights(str(tmp_path / "a" / "yamnet.h5"))
  assert all(np.array_equal(other[k], v) for k, v in read_weights(yamnet_assets.weights).items())


def _edit_copy(source: str, target, edit) -> str:
  shutil.copyfile(source, target)
  with h5py.File(target, "r+") as f:
    edit(f)
  return str(target)


def _drop_layer(f, layer):
  f.attrs["layer_names"] = np.array([n for n in f.attrs["layer_names"] if n.decode() != layer])
  del f[layer]


def test_weights_errors_name_every_problem(tmp_path, yamnet_assets):
  def edit(f):
    _drop_layer(f, "layer5/pointwise_conv/bn")                     # 3 missing weights
    del f["logits/logits/kernel:0"]                                 # misshapen kernel
    f["logits"].create_dataset("logits/kernel:0", data=np.zeros((1024, 520), np.float32))
    del f["layer3/depthwise_conv/bn/layer3/depthwise_conv/bn/beta:0"]  # mistyped
    f["layer3/depthwise_conv/bn"].create_dataset("layer3/depthwise_conv/bn/beta:0",
                                                  data=np.zeros(64, np.float64))
    group = f.create_group("layer15/conv")                          # unexpected layer
    group.attrs["weight_names"] = np.array([b"layer15/conv/kernel:0"])
    group.create_dataset("layer15/conv/kernel:0", data=np.zeros((3, 3, 1, 1), np.float32))
    f.attrs["layer_names"] = np.append(f.attrs["layer_names"], b"layer15/conv")
    f["layer7/pointwise_conv"].attrs["weight_names"] = np.array(
        [b"layer7/pointwise_conv/kernel:0", b"layer7/pointwise_conv/bias:0"])  # listed, absent

  path = _edit_copy(yamnet_assets.weights, tmp_path / "bad.h5", edit)
  for check in (validate_weights, read_weights):
    with pytest.raises(CheckpointError) as error:
      check(path)
    message = str(error.value)
    for expected in ("missing (3)", "layer5/pointwise_conv/bn/beta",
                     "layer5/pointwise_conv/bn/moving_variance",
                     "logits/kernel: expected shape [1024, 521], found [1024, 520]",
                     "layer3/depthwise_conv/bn/beta: expected float32, found float64",
                     "unexpected (1): layer15/conv/kernel",
                     "'layer7/pointwise_conv/bias:0' of layer 'layer7/pointwise_conv' is listed but not stored",
                     "--yamnet_weights"):
      assert expected in message, (expected, message)


def test_weights_file_not_hdf5_or_not_keras(tmp_path):
  text = tmp_path / "yamnet.h5"
  text.write_text("not weights")
  with pytest.raises(CheckpointError, match="not an HDF5 file"):
    read_weights(str(text))
  with h5py.File(tmp_path / "other.h5", "w") as f:
    f.create_dataset("x", data=np.zeros(3))
  with pytest.raises(CheckpointError, match="without a 'layer_names' attribute"):
    validate_weights(str(tmp_path / "other.h5"))
  with pytest.raises(CheckpointError, match="no YAMNet weights file"):
    read_weights(str(tmp_path / "absent.h5"))


def test_model_refuses_incomplete_weights(yamnet_weights):
  from models.yamnet.model import YAMNetModel

  partial = {k: v for k, v in yamnet_weights.items() if not k.startswith("layer14/")}
  with pytest.raises(CheckpointError, match=r"missing \(8\)"):
    YAMNetModel(partial)


def test_weights_with_chunked_layer_names(tmp_path, yamnet_assets):
  # Keras splits list attributes over 64 KB into layer_names0, layer_names1, ...
  def edit(f):
    names = f.attrs["layer_names"]
    del f.attrs["layer_names"]
    f.attrs["layer_names0"], f.attrs["layer_names1"] = names[:40], names[40:]

  path = _edit_copy(yamnet_assets.weights, tmp_path / "chunked.h5", edit)
  assert len(read_weights(path)) == 110


def test_weights_in_a_whole_model_file(tmp_path, yamnet_assets):
  # model.save() keeps the same layout under "model_weights".
  target = tmp_path / "model.h5"
  with h5py.File(yamnet_assets.weights, "r") as source, h5py.File(target, "w") as f:
    group = f.create_group("model_weights")
    for key, value in source.attrs.items():
      group.attrs[key] = value
    for name in source:
      source.copy(name, group)
  loaded = read_weights(str(target))
  assert len(loaded) == 110


# --- class map ---------------------------------------------------------------------------------

def test_class_map_reads_quoted_names(yamnet_assets):
  class_map = read_class_map(yamnet_assets.class_map)
  assert len(class_map) == 521
  assert class_map.display_names[50] == "Test class 50, with a comma"
  assert class_map.mids[3] == "/t/test_0003"


@pytest.mark.parametrize("mutate, expected", [
    (lambda lines: ["idx,mid,name"] + lines[1:], "expected the header index,mid,display_name"),
    (lambda lines: lines[:-1], "expected 521 classes, found 520 rows"),
    (lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:], "line 4: expected index 2, found '3'"),
    (lambda lines: lines[:10] + ["9,/m/x,"] + lines[11:], "line 11: empty display_name"),
    (lambda lines: lines[:10] + ["9,/m/x"] + lines[11:], "line 11: expected 3 fields, found 2"),
])
def test_class_map_errors(tmp_path, yamnet_assets, mutate, expected):
  with open(yamnet_assets.class_map, encoding="utf-8") as f:
    lines = f.read().splitlines()
  path = tmp_path / "yamnet_class_map.csv"
  path.write_text("\n".join(mutate(lines)) + "\n", encoding="utf-8")
  with pytest.raises(AssetError, match="not a valid YAMNet class map") as error:
    read_class_map(str(path))
  assert expected in str(error.value) and "--yamnet_class_map" in str(error.value)


def test_class_map_not_text(tmp_path):
  path = tmp_path / "yamnet_class_map.csv"
  path.write_bytes(b"\xff\xfe\x00garbage")
  with pytest.raises(AssetError, match="UTF-8"):
    read_class_map(str(path))
  with pytest.raises(AssetError, match="no YAMNet class map"):
    read_class_map(os.fspath(tmp_path / "absent.csv"))
