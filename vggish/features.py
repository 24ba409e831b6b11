"""The VGGish log-mel front end, in float64, as pure numpy functions.

Follows the front end Google published with VGGish (tensorflow/models,
research/audioset/vggish/mel_features.py and vggish_input.py): 25 ms periodic Hann
windows every 10 ms, a 512-point FFT magnitude, 64 HTK-mel triangles between 125 Hz
and 7500 Hz with the DC bin given no weight, ``log(mel + 0.01)``, then 96-frame
patches. The code is written here from that description.

Shapes use ``n`` for samples at 16 kHz, ``F`` for STFT frames, ``N`` for patches.
"""

from __future__ import annotations

import functools

import numpy as np

from vggish.params import Params

__all__ = [
    "periodic_hann",
    "frame",
    "stft_magnitude",
    "hertz_to_mel",
    "mel_matrix",
    "log_mel_spectrogram",
    "frame_patches",
    "num_stft_frames",
]


def periodic_hann(window_samples: int) -> np.ndarray:
  """Periodic Hann window [window_samples] float64 (the DFT-even form, not symmetric)."""
  return 0.5 - 0.5 * np.cos(2.0 * np.pi / window_samples * np.arange(window_samples))


@functools.lru_cache(maxsize=8)
def _periodic_hann_cached(window_samples: int) -> np.ndarray:
  window = periodic_hann(window_samples)
  window.setflags(write=False)
  return window


def num_stft_frames(num_samples: int, window_samples: int, hop_samples: int) -> int:
  """Whole windows of ``window_samples`` stepped by ``hop_samples``; 0 if none fits."""
  if num_samples < window_samples:
    return 0
  return 1 + (num_samples - window_samples) // hop_samples


def frame(data: np.ndarray, window: int, hop: int) -> np.ndarray:
  """Views of ``data`` [n, ...] as overlapping frames [F, window, ...]; no padding.

  Returns a read-only strided view (no copy). ``F`` is 0 when ``n < window``.
  """
  count = num_stft_frames(data.shape[0], window, hop)
  shape = (count, window) + data.shape[1:]
  strides = (data.strides[0] * hop,) + data.strides
  return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides, writeable=False)


# STFT frames per block: one block's windowed frames and spectrum (~1.6 MB) stay in
# the CPU's cache instead of streaming [F, 512] temporaries through memory. Measured
# (61 s signal, paired runs on a busy 2-core machine): log_mel_spectrogram 1.19-1.28x
# faster than whole-signal arrays, whatever the BLAS threading; output bit-identical.
_FRAMES_PER_BLOCK = 256
_RFFT_HAS_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def stft_magnitude(signal: np.ndarray, params: Params) -> np.ndarray:
  """|rfft| of Hann-windowed frames: [n] float64 -> [F, 257] float64.

  Each frame of ``stft_window_samples`` (400) is multiplied by the periodic Hann
  window and zero-padded to ``fft_length`` (512), i.e. ``np.abs(np.fft.rfft(frame *
  window, n=512))``, computed in cache-sized blocks of frames.
  """
  signal = np.asarray(signal, dtype=np.float64)
  frames = frame(signal, params.stft_window_samples, params.stft_hop_samples)   # [F, 400]
  window = _periodic_hann_cached(params.stft_window_samples)                    # [400]
  count = frames.shape[0]
  magnitude = np.empty((count, params.num_spectrogram_bins))                    # [F, 257]
  block = max(1, min(_FRAMES_PER_BLOCK, count))
  padded = np.zeros((block, params.fft_length))                     # [b, 512], tail stays 0
  spectrum = np.empty((block, params.num_spectrogram_bins), np.complex128)      # [b, 257]
  for start in range(0, count, block):
    k = min(block, count - start)
    np.multiply(frames[start:start + k], window, out=padded[:k, :window.shape[0]])
    if _RFFT_HAS_OUT:
      np.abs(np.fft.rfft(padded[:k], axis=-1, out=spectrum[:k]), out=magnitude[start:start + k])
    else:  # numpy < 2.0: rfft has no ``out``.
      np.abs(np.fft.rfft(padded[:k], axis=-1), out=magnitude[start:start + k])
  return magnitude


def hertz_to_mel(hz):
  """HTK mel scale: 1127 * ln(1 + hz / 700)."""
  return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def _mel_matrix_cached(params: Params) -> np.ndarray:
  bins_hz = np.linspace(0.0, params.sample_rate_hz / 2.0, params.num_spectrogram_bins)
  bins_mel = hertz_to_mel(bins_hz)                                                # [257]
  edges = np.linspace(hertz_to_mel(params.mel_min_hz), hertz_to_mel(params.mel_max_hz),
                      params.num_mel_bins + 2)                                     # [66]
  lower, center, upper = edges[:-2], edges[1:-1], edges[2:]                        # [64] each
  rising = (bins_mel[:, None] - lower) / (center - lower)                          # [257, 64]
  falling = (upper - bins_mel[:, None]) / (upper - center)                         # [257, 64]
  weights = np.maximum(0.0, np.minimum(rising, falling))
  weights[0, :] = 0.0  # The DC bin carries no weight.
  weights.setflags(write=False)
  return weights


def mel_matrix(params: Params) -> np.ndarray:
  """Spectrogram-to-mel weights [257, 64] float64 (read-only, cached per params)."""
  if params.mel_min_hz < 0.0 or not params.mel_min_hz < params.mel_max_hz <= params.sample_rate_hz / 2:
    from audiobeam.errors import ConfigError

    raise ConfigError(
        f"need 0 <= mel_min_hz < mel_max_hz <= {params.sample_rate_hz / 2} (Nyquist), got "
        f"mel_min_hz={params.mel_min_hz}, mel_max_hz={params.mel_max_hz}.")
  return _mel_matrix_cached(params)


def log_mel_spectrogram(signal: np.ndarray, params: Params) -> np.ndarray:
  """Log-mel spectrogram of a mono 16 kHz signal: [n] float64 -> [F, 64] float64.

  ``log(|rfft(hann * frame, 512)| @ mel_matrix + log_offset)``; ``F = 1 + (n - 400) // 160``
  (0 when ``n < 400``). Each row is the same arithmetic as that whole-signal formula.
  """
  signal = np.asarray(signal, dtype=np.float64)
  if signal.ndim != 1:
    raise ValueError(f"expected a mono signal of shape [n], got shape {signal.shape}; "
                     "mix channels to mono first.")
  magnitude = stft_magnitude(signal, params)                                       # [F, 257]
  # One product for the whole signal: per-block products were 1.5x faster with a
  # one-thread BLAS but 2.5x slower with OpenBLAS's default threads on a busy machine.
  mel = np.matmul(magnitude, mel_matrix(params))                                   # [F, 64]
  mel += params.log_offset
  return np.log(mel, out=mel)


def frame_patches(log_mel: np.ndarray, params: Params) -> np.ndarray:
  """Cut [F, 64] log-mel into patches [N, 96, 64]; a trailing partial patch is dropped."""
  return frame(log_mel, params.patch_frames, params.patch_hop_frames)
