"""Resamplers: kaiser_best reproduces resampy.resample exactly; streaming equals whole."""

from __future__ import annotations

import numpy as np
import pytest

import audio_fixtures as fx
from audiobeam import resample as rs
from audiobeam.errors import ConfigError

resampy = pytest.importorskip("resampy")

RATES_HZ = [8000, 11025, 22050, 32000, 44100, 48000, 96000, 192000]
LENGTHS = [1, 2, 3, 7, 50, 100, 999, 12345]


def _signal(num_samples: int, rate_hz: int, seed: int = 0) -> np.ndarray:
  return (fx.chirp(num_samples, rate_hz, amplitude=0.4)
          + fx.noise(num_samples, seed=seed, amplitude=0.2))


@pytest.mark.parametrize("sr_in_hz", RATES_HZ)
@pytest.mark.parametrize("num_samples", LENGTHS)
def test_kaiser_best_matches_resampy_including_edges(sr_in_hz, num_samples):
  x = _signal(num_samples, sr_in_hz, seed=num_samples)
  expected_len = int(num_samples * 16000.0 / sr_in_hz)
  got = rs.resample(x, sr_in_hz, 16000, "kaiser_best")
  assert got.shape == (expected_len,) and got.dtype == np.float64
  if expected_len == 0:
    return  # resampy raises for an empty output; we return an empty array.
  want = resampy.resample(x, sr_in_hz, 16000)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sr_in_hz,sr_out_hz", [(16000, 44100), (16000, 8000), (44056, 16000),
                                                (48000, 44100), (7999, 16000),
                                                (44099, 16000)])
def test_kaiser_best_matches_resampy_for_other_rate_pairs(sr_in_hz, sr_out_hz):
  x = _signal(20011, sr_in_hz)
  np.testing.assert_allclose(rs.resample(x, sr_in_hz, sr_out_hz),
                             resampy.resample(x, sr_in_hz, sr_out_hz), rtol=0, atol=1e-12)


@pytest.mark.parametrize("sr_in_hz", [44100, 48000, 22050])
def test_kaiser_best_matches_resampy_hours_into_a_signal(sr_in_hz):
  # Float time t * (1 / ratio) drifts from the exact rational phase as t grows; the
  # per-sample eta keeps us on resampy's values. Outputs from t = 3 h at 16 kHz,
  # compared with resampy's own kernel at the same absolute times.
  t0 = 3 * 3600 * 16000
  ours = rs._kaiser_plan(sr_in_hz, 16000)
  theirs = rs._Resampy(sr_in_hz, 16000)
  lo, hi = theirs.input_needed(t0, t0 + 20000)
  lo_k, hi_k = ours.input_needed(t0, t0 + 20000)
  start, stop = min(lo, lo_k), max(hi, hi_k)
  x = _signal(stop - start, sr_in_hz)
  got = ours.evaluate(x, start, None, t0, t0 + 20000)
  want = theirs.evaluate(x, start, None, t0, t0 + 20000)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_kaiser_best_matches_resampy_on_20_seconds_of_music():
  x = fx.music_like(44100 * 20, 44100)
  np.testing.assert_allclose(rs.resample(x, 44100, 16000), resampy.resample(x, 44100, 16000),
                             rtol=0, atol=1e-12)


def test_direct_evaluation_agrees_with_polyphase_rows():
  # Samples whose float time misses their phase's taps are evaluated one by one; check
  # that path against the matrix path on ordinary samples.
  plan = rs._kaiser_plan(44100, 16000)
  x = _signal(44100, 44100)
  full = plan.evaluate(x, 0, x.shape[0], 0, 16000)
  t = np.arange(1000, 1500, dtype=np.int64)
  n, off_l, eta_l, off_r, eta_r = plan.timing.of(t)
  padded = np.concatenate([np.zeros(400), x, np.zeros(400)])
  direct = plan._direct(padded, -400, n, off_l, eta_l, off_r, eta_r)
  np.testing.assert_allclose(direct, full[1000:1500], rtol=0, atol=1e-13)


def test_rates_with_too_many_phases_use_resampys_kernel():
  # 44099 and 16000 are coprime: 16000 phases. Same values, resampy's (slower) kernel.
  assert isinstance(rs._kaiser_plan(44099, 16000), rs._Resampy)
  for rate_hz in (8000, 22050, 44100, 48000, 96000, 192000, 44056):
    plan = rs._kaiser_plan(rate_hz, 16000)
    assert isinstance(plan, rs._KaiserBest)
    assert plan.row_outputs == rs._kaiser_row_outputs(rate_hz, 16000)


@pytest.mark.parametrize("method", rs.RESAMPLERS)
@pytest.mark.parametrize("num_samples", [0, 1, 2, 5, 441, 44100, 44101])
def test_every_method_returns_resampys_length(method, num_samples):
  x = _signal(num_samples, 44100)
  got = rs.resample(x, 44100, 16000, method)
  assert got.shape == (int(num_samples * 16000.0 / 44100.0),)
  assert got.dtype == np.float64


@pytest.mark.parametrize("method", rs.RESAMPLERS)
def test_same_rate_is_a_copy(method):
  x = _signal(1000, 16000)
  got = rs.resample(x, 16000, 16000, method)
  np.testing.assert_array_equal(got, x)
  assert got is not x


def test_upsampling_8k_to_16k_preserves_a_tone():
  x = fx.sine(8000, 8000, 1000.0)
  y = rs.resample(x, 8000, 16000)
  assert y.shape == (16000,)
  interior = slice(500, -500)
  np.testing.assert_allclose(y[interior], fx.sine(16000, 16000, 1000.0)[interior], atol=1e-3)


@pytest.mark.parametrize("sr_in_hz", [44100, 48000, 8000, 22050])
@pytest.mark.parametrize("block_sizes", [[1, 7, 1000, 3, 40000], [12345], [4410] * 12])
def test_streaming_kaiser_best_equals_whole_signal(sr_in_hz, block_sizes):
  x = _signal(44100 + 777, sr_in_hz, seed=3)
  whole = rs.resample(x, sr_in_hz, 16000)
  got = _stream(x, sr_in_hz, "kaiser_best", block_sizes)
  assert got.shape == whole.shape
  np.testing.assert_allclose(got, whole, rtol=0, atol=1e-13)


def test_streaming_resampy_is_bit_identical_to_resampy():
  x = _signal(3 * 44100 + 5, 44100, seed=4)
  got = _stream(x, 44100, "resampy", [30000, 1, 17, 50000])
  np.testing.assert_array_equal(got, resampy.resample(x, 44100, 16000))


def test_streaming_soxr_is_close_to_whole_soxr():
  x = fx.music_like(2 * 48000 + 9, 48000)
  whole = rs.resample(x, 48000, 16000, "soxr_hq")
  got = _stream(x, 48000, "soxr_hq", [1000, 30000, 7, 100000])
  assert got.shape == whole.shape
  np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)


def test_soxr_is_close_to_but_not_the_reference():
  x = fx.speech_like(3 * 44100, 44100)
  ref = rs.resample(x, 44100, 16000, "resampy")
  got = rs.resample(x, 44100, 16000, "soxr_hq")
  interior = slice(200, -200)
  diff = np.abs(got[interior] - ref[interior])
  assert 0 < diff.max() < 5e-3


def test_streaming_holds_bounded_input():
  converter = rs.StreamingResampler(48000, 16000)
  block = _signal(48000, 48000)
  for _ in range(20):
    converter.process(block)
  assert converter._buffer.shape[0] < 2 * 48000
  converter.flush()
  assert converter.num_out == int(20 * 48000 * 16000.0 / 48000)


def test_process_after_flush_raises():
  converter = rs.StreamingResampler(44100, 16000)
  converter.process(np.zeros(100))
  converter.flush()
  with pytest.raises(RuntimeError, match="after flush"):
    converter.process(np.zeros(10))


def test_unknown_method_names_the_choices():
  with pytest.raises(ConfigError, match="kaiser_best, resampy, soxr_hq"):
    rs.resample(np.zeros(10), 44100, 16000, "sinc_best")


@pytest.mark.parametrize("rate", [0, -16000, 44100.5])
def test_bad_rates_are_config_errors(rate):
  with pytest.raises(ConfigError, match="positive whole number"):
    rs.resample(np.zeros(10), rate, 16000)


def test_multichannel_input_is_rejected_with_a_hint():
  with pytest.raises(ValueError, match="to_mono"):
    rs.resample(np.zeros((10, 2)), 44100, 16000)


def _stream(x, sr_in_hz, method, block_sizes):
  converter = rs.StreamingResampler(sr_in_hz, 16000, method)
  parts, start, i = [], 0, 0
  while start < x.shape[0]:
    size = block_sizes[i % len(block_sizes)]
    parts.append(converter.process(x[start:start + size]))
    start, i = start + size, i + 1
  parts.append(converter.flush())
  return np.concatenate(parts)


def test_kaiser_best_keeps_finite_samples_beyond_float32_range():
  # The per-sample eta correction is taken in float32 (it is ~1e-10 of a sample); a
  # finite float64 input too large for float32 must not turn into inf/nan on the way.
  x = _signal(20011, 44100) * 1e300
  got = rs.resample(x, 44100, 16000)
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got / 1e300, resampy.resample(x / 1e300, 44100, 16000),
                             rtol=0, atol=1e-12)
