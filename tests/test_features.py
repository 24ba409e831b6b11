"""The float64 log-mel front end against hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest

from vggish import features
from vggish.params import DEFAULT_PARAMS as P


def test_periodic_hann_is_the_dft_even_window():
  np.testing.assert_allclose(features.periodic_hann(4), [0.0, 0.5, 1.0, 0.5], atol=1e-15)
  window = features.periodic_hann(400)
  assert window.shape == (400,) and window[0] == 0.0
  assert window[200] == pytest.approx(1.0)
  np.testing.assert_allclose(window[1:200], window[:200:-1], atol=1e-15)  # Symmetric about 200.
  assert window.sum() == pytest.approx(200.0)  # A periodic Hann sums to N/2 exactly.
  assert not np.allclose(window, np.hanning(400))  # Not the symmetric form.


def test_derived_sizes_match_the_reference_front_end():
  assert (P.stft_window_samples, P.stft_hop_samples, P.fft_length) == (400, 160, 512)
  assert (P.patch_frames, P.patch_hop_frames, P.patch_span_samples) == (96, 96, 15600)


@pytest.mark.parametrize("num_samples, frames", [(399, 0), (400, 1), (559, 1), (560, 2),
                                                  (16000, 98)])
def test_stft_frame_counts(num_samples, frames):
  assert features.num_stft_frames(num_samples, 400, 160) == frames
  spectrogram = features.log_mel_spectrogram(np.zeros(num_samples), P)
  assert spectrogram.shape == (frames, 64)


@pytest.mark.parametrize("num_samples, patches", [
    (15599, 0), (15600, 1), (15600 + 15359, 1), (15600 + 15360, 2), (160000, 10)])
def test_patch_counts_drop_partial_patches(num_samples, patches):
  log_mel = features.log_mel_spectrogram(np.zeros(num_samples), P)
  assert features.frame_patches(log_mel, P).shape == (patches, 96, 64)
  assert P.num_patches(num_samples) == patches


def test_frame_is_a_read_only_view_with_hop():
  data = np.arange(10.0)
  frames = features.frame(data, 4, 3)
  np.testing.assert_array_equal(frames, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
  assert np.shares_memory(frames, data) and not frames.flags.writeable


def test_hertz_to_mel_is_htk():
  assert features.hertz_to_mel(0.0) == 0.0
  assert features.hertz_to_mel(700.0) == pytest.approx(1127.0 * np.log(2.0))


def test_mel_matrix_triangles():
  weights = features.mel_matrix(P)
  assert weights.shape == (257, 64)
  assert np.all(weights[0] == 0.0)  # DC bin dropped.
  bins_hz = np.linspace(0, 8000, 257)
  outside = (bins_hz < 125.0) | (bins_hz > 7500.0)
  assert np.all(weights[outside] == 0.0)
  assert np.all(weights >= 0.0) and weights.max() <= 1.0
  # Each band is one triangle: rises to a single peak then falls; peaks ascend.
  peaks = weights.argmax(axis=0)
  assert np.all(np.diff(peaks) >= 0)
  for band in range(64):
    column = weights[:, band]
    nonzero = np.flatnonzero(column)
    assert np.all(np.diff(column[nonzero[0]:peaks[band] + 1]) >= 0)
    assert np.all(np.diff(column[peaks[band]:nonzero[-1] + 1]) <= 0)
  # Band 10's triangle spans mel edges 10..12 of 66 evenly spaced points.
  edges = np.linspace(features.hertz_to_mel(125.0), features.hertz_to_mel(7500.0), 66)
  bins_mel = features.hertz_to_mel(bins_hz)
  inside = (bins_mel > edges[10]) & (bins_mel < edges[12])
  assert np.array_equal(np.flatnonzero(weights[:, 10]), np.flatnonzero(inside))
  k = np.flatnonzero(inside)[0]
  assert weights[k, 10] == pytest.approx((bins_mel[k] - edges[10]) / (edges[11] - edges[10]))


def test_silence_gives_log_offset():
  log_mel = features.log_mel_spectrogram(np.zeros(1000), P)
  np.testing.assert_array_equal(log_mel, np.log(0.01))


@pytest.mark.parametrize("hz", [250.0, 1000.0, 3000.0, 6000.0])
def test_sine_peaks_in_its_mel_band(hz):
  t = np.arange(16000) / 16000.0
  log_mel = features.log_mel_spectrogram(0.5 * np.sin(2 * np.pi * hz * t), P)
  edges = np.linspace(features.hertz_to_mel(125.0), features.hertz_to_mel(7500.0), 66)
  centers = edges[1:-1]
  expected = int(np.argmin(np.abs(centers - features.hertz_to_mel(hz))))
  peak = np.bincount(log_mel.argmax(axis=1), minlength=64).argmax()
  assert abs(int(peak) - expected) <= 1


def test_stft_magnitude_of_a_bin_centred_sine():
  # 1000 Hz is exactly bin 32 of a 512-point FFT at 16 kHz; a unit sine through a periodic
  # Hann of 400 samples has |X[32]| = 400 / 4 = 100 at that bin (coherent gain 1/2, /2 for
  # the sine's two sides) up to the zero padding's leakage.
  t = np.arange(400) / 16000.0
  spectrum = features.stft_magnitude(np.sin(2 * np.pi * 1000.0 * t), P)
  assert spectrum.shape == (1, 257)
  assert spectrum[0].argmax() == 32
  assert spectrum[0, 32] == pytest.approx(100.0, rel=1e-9)


def test_log_mel_rejects_multichannel_input():
  with pytest.raises(ValueError, match="mono"):
    features.log_mel_spectrogram(np.zeros((1000, 2)), P)


@pytest.mark.parametrize("frames", [1, 255, 256, 257, 513, 700])
def test_blocked_log_mel_equals_the_whole_signal_formula(frames):
  """The cache-blocked computation is the reference formula row for row, block edges too."""
  signal = np.random.default_rng(frames).standard_normal(400 + 160 * (frames - 1) + 37) * 0.3
  windowed = features.frame(signal, 400, 160) * features.periodic_hann(400)       # [F, 400]
  magnitude = np.abs(np.fft.rfft(windowed, n=512, axis=-1))                       # [F, 257]
  expected = np.log(magnitude @ features.mel_matrix(P) + 0.01)                     # [F, 64]
  np.testing.assert_allclose(features.stft_magnitude(signal, P), magnitude, rtol=1e-13, atol=0)
  log_mel = features.log_mel_spectrogram(signal, P)
  assert log_mel.shape == (frames, 64)
  np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-12)
