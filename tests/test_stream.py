"""Streaming front end: chunked patches equal the whole-file computation; short clips."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import audio_fixtures as fx
from audiobeam import audio
from vggish import features, stream
from audiobeam.errors import AudioContentError, ConfigError, TooShortError
from vggish.params import DEFAULT_PARAMS, Params
from audiobeam.resample import resample


def _whole_file(path, params=DEFAULT_PARAMS, method="kaiser_best"):
  """The reference formulation, all in memory."""
  samples, rate_hz = audio.decode_audio(path)
  signal = resample(audio.to_mono(samples), rate_hz, params.sample_rate_hz, method)
  return features.frame_patches(features.log_mel_spectrogram(signal, params), params)


def _streamed(path, params=DEFAULT_PARAMS, method="kaiser_best", block_seconds=60.0,
              short_clips="reference"):
  with audio.open_audio(path) as source:
    patches = stream.iter_patches(source, params, method, short_clips, block_seconds)
    blocks = list(patches)
  starts = np.cumsum([0] + [b.patches.shape[0] for b in blocks])[:-1]
  assert [b.start_index for b in blocks] == list(starts)
  joined = (np.concatenate([b.patches for b in blocks]) if blocks
            else np.zeros((0, params.patch_frames, params.num_mel_bins), np.float32))
  return joined, patches.stats


@pytest.fixture(scope="module")
def music_file(tmp_path_factory):
  """30.5 s of 44.1 kHz stereo music-like audio, 16-bit WAV."""
  path = tmp_path_factory.mktemp("stream") / "music.wav"
  n = int(44100 * 30.5) + 77
  x = np.stack([fx.music_like(n, 44100), fx.speech_like(n, 44100)], axis=1)
  sf.write(path, 0.7 * x, 44100, subtype="PCM_16")
  return path


@pytest.mark.parametrize("block_seconds", [0.37, 2.9, 7.0, 60.0])
def test_streamed_patches_equal_the_whole_file_computation(music_file, block_seconds):
  expected = _whole_file(music_file)
  got, stats = _streamed(music_file, block_seconds=block_seconds)
  assert got.dtype == np.float32 and got.shape == expected.shape == (31, 96, 64)
  np.testing.assert_allclose(got, expected.astype(np.float32), rtol=0, atol=1e-5)
  assert stats.num_patches == 31 and stats.channels == 2 and stats.sample_rate_hz == 44100
  assert stats.source_frames == int(44100 * 30.5) + 77
  assert stats.duration_seconds == pytest.approx(30.5 + 77 / 44100)
  assert stats.num_samples == int(stats.source_frames * 16000.0 / 44100)


def test_streaming_with_resampy_itself_equals_its_whole_file_computation(music_file):
  expected = _whole_file(music_file, method="resampy")
  got, _ = _streamed(music_file, method="resampy", block_seconds=4.1)
  np.testing.assert_array_equal(got, expected.astype(np.float32))


@pytest.mark.parametrize("hop_seconds", [0.48, 0.25, 2.0])
def test_other_patch_hops_stream_like_the_whole_file(music_file, hop_seconds):
  params = Params(patch_hop_seconds=hop_seconds)
  expected = _whole_file(music_file, params)
  got, stats = _streamed(music_file, params, block_seconds=3.3)
  assert got.shape == expected.shape and stats.num_patches == expected.shape[0]
  np.testing.assert_allclose(got, expected.astype(np.float32), rtol=0, atol=1e-5)


@pytest.mark.parametrize("rate_hz,channels", [(8000, 1), (16000, 2), (48000, 6), (192000, 1)])
def test_streaming_at_other_rates_and_channel_counts(tmp_path, rate_hz, channels):
  path = tmp_path / "x.flac"
  sf.write(path, fx.stereo_mix(int(rate_hz * 2.5), rate_hz, channels), rate_hz)
  expected = _whole_file(path)
  got, stats = _streamed(path, block_seconds=0.7)
  assert got.shape == expected.shape == (2, 96, 64)
  np.testing.assert_allclose(got, expected.astype(np.float32), rtol=0, atol=1e-5)
  assert stats.channels == channels


def test_waveform_to_patches_shares_the_streaming_path(music_file):
  samples, rate_hz = audio.decode_audio(music_file)
  got = stream.waveform_to_patches(samples, rate_hz, DEFAULT_PARAMS)
  streamed, _ = _streamed(music_file, block_seconds=5.0)
  np.testing.assert_array_equal(got, streamed)
  mono = stream.waveform_to_patches(audio.to_mono(samples), rate_hz, DEFAULT_PARAMS)
  np.testing.assert_array_equal(mono, got)


def _clip(tmp_path, num_samples):
  path = tmp_path / f"clip_{num_samples}.wav"
  sf.write(path, fx.chirp(num_samples, 16000), 16000, subtype="PCM_16")
  return path


def test_exactly_one_patch_span_gives_one_patch(tmp_path):
  got, stats = _streamed(_clip(tmp_path, 15600))
  assert got.shape == (1, 96, 64) and not stats.padded


@pytest.mark.parametrize("num_samples", [15599, 16, 1])
def test_reference_policy_rejects_clips_shorter_than_a_patch(tmp_path, num_samples):
  with pytest.raises(TooShortError, match="short_clips") as info:
    _streamed(_clip(tmp_path, num_samples))
  assert info.value.error_type == "too_short"


@pytest.mark.parametrize("num_samples", [15599, 16, 1])
def test_pad_policy_zero_pads_to_exactly_one_patch(tmp_path, num_samples):
  path = _clip(tmp_path, num_samples)
  got, stats = _streamed(path, short_clips="pad")
  samples, _ = audio.decode_audio(path)
  padded = np.zeros(15600)
  padded[:num_samples] = samples[:, 0]
  expected = features.frame_patches(features.log_mel_spectrogram(padded, DEFAULT_PARAMS),
                                    DEFAULT_PARAMS)
  assert got.shape == (1, 96, 64) and stats.padded and stats.num_patches == 1
  np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_a_sample_at_44k_too_short_to_resample_still_pads(tmp_path):
  path = tmp_path / "one.wav"
  sf.write(path, np.array([0.5]), 44100, subtype="PCM_16")
  got, stats = _streamed(path, short_clips="pad")
  assert got.shape == (1, 96, 64) and stats.num_samples == 0 and stats.source_frames == 1


def test_a_file_with_no_frames_is_an_error_under_any_policy(tmp_path):
  path = tmp_path / "none.wav"
  sf.write(path, np.zeros((0, 1)), 16000, subtype="PCM_16")
  for policy in stream.SHORT_CLIP_POLICIES:
    with pytest.raises(AudioContentError) as info:
      _streamed(path, short_clips=policy)
    assert info.value.error_type == "no_samples"


def test_non_finite_samples_stop_the_stream(tmp_path):
  x = fx.sine(16000 * 5, 16000).astype(np.float32)
  x[16000 * 4 + 3] = np.nan
  sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
  with pytest.raises(AudioContentError) as info:
    _streamed(tmp_path / "nan.wav", block_seconds=1.0)
  assert info.value.error_type == "non_finite_samples"


def test_waveform_errors_are_typed():
  with pytest.raises(AudioContentError, match="NaN"):
    stream.waveform_to_patches(np.array([0.0, np.inf] * 9000), 16000, DEFAULT_PARAMS)
  with pytest.raises(ValueError, match="int16"):
    stream.waveform_to_patches(np.zeros(16000, np.int16), 16000, DEFAULT_PARAMS)
  with pytest.raises(TooShortError):
    stream.waveform_to_patches(np.zeros(100), 16000, DEFAULT_PARAMS)
  with pytest.raises(ConfigError, match="short_clips"):
    stream.waveform_to_patches(np.zeros(100), 16000, DEFAULT_PARAMS, short_clips="drop")


def test_absurdly_large_finite_samples_are_a_typed_error(tmp_path):
  x = fx.sine(16000 * 2, 16000)
  x[20000] = 1e308
  sf.write(tmp_path / "huge.wav", x, 16000, subtype="DOUBLE")
  with pytest.raises(AudioContentError) as info, np.errstate(all="ignore"):
    _streamed(tmp_path / "huge.wav")
  assert info.value.error_type == "non_finite_features"
