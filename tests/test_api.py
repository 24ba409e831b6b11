"""The library API: VGGish bundle, waveform and file in, Embeddings out."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vggish import VGGish, features
from audiobeam.errors import ConfigError, InputError, TooShortError
from vggish.params import DEFAULT_PARAMS as P


@pytest.fixture(scope="module")
def bundle(test_vggish_model, test_pca_params):
  return VGGish(test_vggish_model, test_pca_params, P)


def _tone(seconds, rate_hz=16000, hz=440.0):
  t = np.arange(int(seconds * rate_hz)) / rate_hz
  rng = np.random.default_rng(0)
  return 0.4 * np.sin(2 * np.pi * hz * t) * (1 + np.sin(2 * np.pi * 1.5 * t)) / 2 \
      + 0.01 * rng.standard_normal(t.shape)


def test_load_resolves_local_weights(test_weights):
  loaded = VGGish.load(test_weights.checkpoint, test_weights.pca_params)
  assert loaded.assets.checkpoint_path == test_weights.checkpoint
  assert len(loaded.assets.checkpoint_sha256) == 64
  assert loaded.sample_rate_hz == 16000 and loaded.resampler == "kaiser_best"


def test_embed_is_the_reference_chain(bundle, test_vggish_model, test_pca_params):
  waveform = _tone(3.0)
  out = bundle.embed(waveform, 16000)
  assert len(out) == 3
  assert out.raw.shape == (3, 128) and out.raw.dtype == np.float32
  assert out.quantized.shape == (3, 128) and out.quantized.dtype == np.uint8
  np.testing.assert_array_equal(out.start_seconds, [0.0, 0.96, 1.92])
  assert out.start_seconds.dtype == np.float64
  patches = features.frame_patches(features.log_mel_spectrogram(waveform, P), P)
  np.testing.assert_array_equal(out.raw, test_vggish_model(patches))
  from vggish.postprocess import postprocess

  np.testing.assert_array_equal(out.quantized, postprocess(out.raw, test_pca_params, P))
  assert np.ptp(out.raw, axis=0).max() > 0  # Frames differ.


def test_channels_are_averaged(bundle):
  mono = _tone(1.5)
  stereo = np.stack([mono * 0.5, mono * 1.5], axis=1)
  np.testing.assert_array_equal(bundle.embed(stereo, 16000).raw, bundle.embed(mono, 16000).raw)
  np.testing.assert_array_equal(bundle.embed(mono[:, None], 16000).raw,
                                bundle.embed(mono, 16000).raw)


def test_other_rates_are_resampled(bundle):
  from audiobeam.resample import resample

  at_22k = _tone(2.0, rate_hz=22050)
  expected = bundle.embed(resample(at_22k, 22050, 16000, "kaiser_best"), 16000)
  np.testing.assert_array_equal(bundle.embed(at_22k, 22050).raw, expected.raw)


def test_short_clips(bundle):
  np.testing.assert_equal(len(bundle.embed(np.zeros(15600), 16000)), 1)
  with pytest.raises(TooShortError, match="short_clips='pad'") as info:
    bundle.embed(np.zeros(15599), 16000)
  assert info.value.error_type == "too_short"
  padded = bundle.embed(_tone(0.5), 16000, short_clips="pad")
  assert len(padded) == 1
  with pytest.raises(ConfigError):
    bundle.embed(_tone(0.5), 16000, short_clips="drop")


def test_bad_waveforms_are_input_errors(bundle):
  bad = _tone(1.0)
  bad[100] = np.nan
  with pytest.raises(InputError, match="NaN"):
    bundle.embed(bad, 16000)
  with pytest.raises(InputError, match=r"\[n\] or \[n, channels\]"):
    bundle.embed(np.zeros((2, 16000, 1)), 16000)


def test_unknown_resampler_is_a_config_error(test_vggish_model, test_pca_params):
  with pytest.raises(ConfigError, match="unknown resampler"):
    VGGish(test_vggish_model, test_pca_params, P, resampler="linear")


def test_embed_file_decodes_pcm16_exactly(bundle, tmp_path):
  pcm = np.round(np.stack([_tone(2.0, 22050), _tone(2.0, 22050, 660.0)], axis=1) * 32767)
  path = tmp_path / "clip.wav"
  sf.write(path, pcm.astype(np.int16), 22050, subtype="PCM_16")
  from_file = bundle.embed_file(str(path))
  from_array = bundle.embed(pcm / 32768.0, 22050)
  np.testing.assert_array_equal(from_file.raw, from_array.raw)
  np.testing.assert_array_equal(from_file.quantized, from_array.quantized)
  assert len(from_file) == 2
