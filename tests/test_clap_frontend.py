"""CLAP's input chain without the model: 48 kHz soxr resampling equal to librosa's
``soxr_hq`` (whole and streamed), 10 s windows, repeat-padding, hop validation."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import audio_fixtures as fx
from audiobeam import resample as rs
from audiobeam.errors import ConfigError, TooShortError
from models.clap import frontend as fe
from models.clap.params import DEFAULT_PARAMS

W = DEFAULT_PARAMS.window_samples


def _stream(converter, x: np.ndarray, rng: np.random.Generator, max_block: int) -> np.ndarray:
  parts, i = [], 0
  while i < x.shape[0]:
    size = int(rng.integers(1, max_block))
    parts.append(converter.process(x[i:i + size]))
    i += size
  parts.append(converter.flush())
  return np.concatenate(parts)


# --- resampling: CLAP's reference loading is librosa.load(path, sr=48000) ---------------

@pytest.mark.parametrize("sr_in_hz", [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000,
                                      44056])
@pytest.mark.parametrize("num_samples", [1, 7, 100, 12345, 77777])
def test_soxr_hq_equals_librosa_soxr_hq_whole_and_streamed(sr_in_hz, num_samples):
  librosa = pytest.importorskip("librosa")
  x = fx.music_like(num_samples, sr_in_hz) + fx.noise(num_samples, seed=num_samples)
  want = librosa.resample(x, orig_sr=sr_in_hz, target_sr=48000, res_type="soxr_hq")
  whole = rs.resample(x, sr_in_hz, 48000, DEFAULT_PARAMS.resampler,
                      length_rule=DEFAULT_PARAMS.resample_length_rule)
  np.testing.assert_array_equal(whole, want)  # bit for bit, length included
  converter = rs.StreamingResampler(sr_in_hz, 48000, DEFAULT_PARAMS.resampler,
                                    length_rule=DEFAULT_PARAMS.resample_length_rule)
  streamed = _stream(converter, x, np.random.default_rng(num_samples), max_block=9000)
  np.testing.assert_array_equal(streamed, want)


def test_streamed_soxr_is_bit_identical_on_a_long_signal_in_random_blocks():
  librosa = pytest.importorskip("librosa")
  x = fx.music_like(44100 * 8 + 3, 44100) + fx.noise(44100 * 8 + 3, seed=5)
  want = librosa.resample(x, orig_sr=44100, target_sr=48000, res_type="soxr_hq")
  for seed, max_block in [(0, 200_000), (1, 5000), (2, 2)]:
    if max_block == 2:
      x_part, want_part = x[:20_000], librosa.resample(x[:20_000], orig_sr=44100,
                                                       target_sr=48000, res_type="soxr_hq")
    else:
      x_part, want_part = x, want
    converter = rs.StreamingResampler(44100, 48000, "soxr_hq", length_rule="librosa")
    np.testing.assert_array_equal(
        _stream(converter, x_part, np.random.default_rng(seed), max_block), want_part)


def test_librosa_length_rule_is_ceil_and_default_rule_is_unchanged():
  assert rs.resampled_length(100, 44100, 48000) == 108
  assert rs.resampled_length(100, 44100, 48000, "librosa") == 109
  # librosa's float expression, not the exact rational ceil: 441 * (48000 / 44100) is
  # 480.00000000000006 in float64, so librosa returns 481 samples, and so do we.
  assert rs.resampled_length(441, 44100, 48000, "librosa") == 481
  assert rs.resample(np.zeros(100), 44100, 48000, "soxr_hq").shape == (108,)
  with pytest.raises(ConfigError, match="resampy, librosa"):
    rs.resampled_length(100, 44100, 48000, "ceil")


# --- windows ----------------------------------------------------------------------------

@pytest.mark.parametrize("num_samples,hop_samples,expected", [
    (0, W, 0), (1, W, 1), (W - 1, W, 1), (W, W, 1), (W + 1, W, 2), (2 * W, W, 2),
    (2 * W + 1, W, 3), (W, 240000, 1), (W + 1, 240000, 2), (2 * W, 240000, 3),
    (int(2.3 * W), 240000, 4), (5 * 48000, 48000, 1), (11 * 48000, 48000, 2),
])
def test_num_windows(num_samples, hop_samples, expected):
  assert fe.num_windows(num_samples, hop_samples) == expected


def test_pad_window_repeats_then_pads_with_zeros_as_repeatpad():
  segment = np.array([1.0, 2.0, 3.0])
  np.testing.assert_array_equal(fe.pad_window(segment, 10),
                                [1, 2, 3, 1, 2, 3, 1, 2, 3, 0])
  np.testing.assert_array_equal(fe.pad_window(np.array([4.0, 5.0, 6.0, 7.0]), 10),
                                [4, 5, 6, 7, 4, 5, 6, 7, 0, 0])
  np.testing.assert_array_equal(fe.pad_window(np.array([9.0]), 4), [9, 9, 9, 9])
  full = np.arange(10.0)
  assert fe.pad_window(full, 10) is full
  with pytest.raises(ValueError):
    fe.pad_window(np.zeros(0), 10)


def test_cut_windows_covers_the_signal_in_order():
  n = int(2.5 * W) + 17
  x = np.arange(n, dtype=np.float64) / n
  windows = fe.cut_windows(x, 240000)
  assert windows.shape == (5, W) and windows.dtype == np.float32
  for i in range(4):
    np.testing.assert_array_equal(windows[i], x[i * 240000:i * 240000 + W].astype(np.float32))
  tail = x[4 * 240000:]
  assert tail.shape[0] < W
  np.testing.assert_array_equal(windows[4], fe.pad_window(tail).astype(np.float32))


def _run_frontend(x: np.ndarray, hop_samples: int, block_sizes) -> tuple[np.ndarray, fe.ClapFrontEnd]:
  front = fe.ClapFrontEnd(hop_samples)
  blocks, i, k = [], 0, 0
  while i < x.shape[0]:
    size = block_sizes[k % len(block_sizes)]
    blocks.extend(front.push(x[i:i + size]))
    i, k = i + size, k + 1
  blocks.extend(front.finish(x.shape[0] / 48000))
  index = 0
  for block in blocks:
    assert block.start_index == index and block.inputs.dtype == np.float32
    assert block.inputs.shape[1:] == (W,)
    assert block.inputs.shape[0] <= DEFAULT_PARAMS.max_windows_per_block
    index += block.inputs.shape[0]
  assert front.num_frames == index
  return np.concatenate([b.inputs for b in blocks]), front


@pytest.mark.parametrize("num_samples", [1, 3 * 48000 + 5, W, W + 1, int(2.3 * W)])
@pytest.mark.parametrize("hop_seconds", [10.0, 4.5, 1.25])
def test_streamed_windows_equal_whole_signal_windows(num_samples, hop_seconds):
  hop = fe.hop_samples_for(hop_seconds)
  x = fx.chirp(num_samples, 48000) + fx.noise(num_samples, seed=1)
  want = fe.cut_windows(x, hop)
  for block_sizes in ([num_samples], [4096], [1, 100_000, 7, 480_001, 33]):
    got, front = _run_frontend(x, hop, block_sizes)
    np.testing.assert_array_equal(got, want)
    partial = num_samples < W or (num_samples - W) % hop != 0
    assert front.padded == partial


def test_frontend_holds_bounded_memory():
  front = fe.ClapFrontEnd(fe.hop_samples_for(10.0))
  block = np.full(48000, 0.25)
  for _ in range(95):  # 95 s in 1 s blocks
    for _ in front.push(block):
      pass
    assert front._data.shape[0] <= 2 * W  # one window plus one block, at most
  assert front.num_frames == 9
  assert len(list(front.finish(95.0))) == 1 and front.num_frames == 10


def test_empty_file_is_too_short_and_push_after_finish_raises():
  front = fe.ClapFrontEnd(W)
  assert list(front.push(np.zeros(0))) == []
  with pytest.raises(TooShortError, match="no|none") as info:
    list(front.finish(0.0))
  assert info.value.error_type == "too_short"
  with pytest.raises(RuntimeError, match="after finish"):
    list(front.push(np.zeros(3)))


@pytest.mark.parametrize("hop,message", [
    (0, r"\(0, 10\]"), (-1.0, r"\(0, 10\]"), (10.5, "skip audio"), (float("nan"), r"\(0, 10\]"),
    (1e-6, "whole number of samples"), (0.33333, "whole number of samples"), (True, "number"),
    ("5", "number"),
])
def test_bad_hops_are_config_errors(hop, message):
  with pytest.raises(ConfigError, match=message):
    fe.hop_samples_for(hop)


def test_hop_samples():
  assert fe.hop_samples_for(10) == W
  assert fe.hop_samples_for(2.5) == 120000
  assert fe.hop_samples_for(1 / 48000) == 1


def test_importing_the_package_imports_neither_torch_nor_transformers():
  import subprocess

  code = ("import sys, models.clap, models.clap.bundle, models.clap.frontend, "
          "models.clap.loading, models.clap.labels, models.clap.testing; "
          "print(sorted(m for m in ('torch', 'transformers', 'tensorflow') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"
