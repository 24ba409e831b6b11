"""Kaldi-style log mel filterbank ("fbank") features, as AST's authors computed them.

AST was trained on ``torchaudio.compliance.kaldi.fbank`` features, which reproduce
Kaldi's ``compute-fbank-feats`` (Povey et al., the Kaldi toolkit: feature-window.cc,
mel-computations.cc). transformers' ``ASTFeatureExtractor`` calls that function when
torchaudio is installed (``window_type="hanning"``, ``num_mel_bins=128``, 16 kHz, all
other options at their defaults); its numpy fallback differs from it by up to ~1e-2,
so the reference here is the Kaldi computation. Written for this project from Kaldi's
description, in float64 numpy (torchaudio is not needed; torch evaluates the float32
filter weights, see "Precision"):

1. Frames: 400 samples every 160 (25 ms / 10 ms), only frames that lie entirely inside
   the signal (``snip_edges``): ``1 + (n - 400) // 160`` frames, none under 400 samples.
2. Per frame: subtract the frame's mean (DC offset); pre-emphasis
   ``y[i] = x[i] - 0.97 x[i-1]`` with ``x[-1] := x[0]``; multiply by the symmetric
   Hann window ``0.5 - 0.5 cos(2 pi i / 399)`` (Kaldi's "hanning").
3. Zero-pad to 512, real FFT, power spectrum ``|X_k|^2`` (257 bins).
4. 128 triangular filters equally spaced on Kaldi's mel scale
   ``mel(f) = 1127 ln(1 + f / 700)`` between 20 Hz and 8000 Hz; filter ``m`` rises from
   ``mel_low + m d`` to its centre ``mel_low + (m + 1) d`` and falls to
   ``mel_low + (m + 2) d`` (``d = (mel_high - mel_low) / 129``), evaluated at the mel of
   each FFT bin's frequency ``k * 16000 / 512`` for ``k < 256`` (the Nyquist bin has
   weight 0).
5. ``log(max(energy, float32 eps))``.

Precision: everything is float64 except the filter weights. Kaldi computes its mel
banks in float32 (``BaseFloat``), and so does torchaudio; a weight at the foot of a
triangle is a difference of two nearby mel values, so float32 rounding moves small
weights by up to ~1e-3 relative, which moves log energies dominated by such a bin by up
to ~4e-4 (measured on a chirp). The weights are therefore computed as Kaldi defines them,
in float32 -- band edges from float64 scalars, the mel of each FFT bin in float32 -- and
evaluated with torch's float32 kernels (imported lazily, once per process for the
128 x 257 table), so that they are bit-identical to the reference's. The rest runs in
float64 numpy on the float64 samples; the distance to torchaudio on the same samples is
then float64 rounding (~1e-13). The extractor itself runs torchaudio in float32 on
float32 samples: that path differs from the exact computation by up to ~6e-4 in
low-energy bins (its own float32 FFT rounding), see the README.

Frames depend only on their own 400 samples, so fbank of a signal cut at a multiple of
160 samples continues seamlessly (``models.ast.frontend`` relies on this).
"""

from __future__ import annotations

import functools

import numpy as np

from models.ast.params import ASTParams

__all__ = ["kaldi_mel_scale", "mel_filter_bank", "hann_window", "frame_signal", "fbank"]

# Frames per FFT call: bounds the temporaries (~10 KB per frame).
_FRAMES_PER_CALL = 4096


def kaldi_mel_scale(hz):
  """Kaldi's mel scale: ``1127 ln(1 + hz / 700)`` (float64, any shape)."""
  return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def _mel_filter_bank(params: ASTParams) -> np.ndarray:
  import torch  # Lazy: float32 arithmetic evaluated by torch's kernels (module docstring).

  f32 = torch.float32
  num_bins = params.num_mel_bins
  # Band edges: scalars in float64, rounded to float32 where they meet float32 tensors.
  mel_low = float(kaldi_mel_scale(params.mel_low_hz))
  mel_high = float(kaldi_mel_scale(params.mel_high_hz_resolved))
  delta = (mel_high - mel_low) / (num_bins + 1)
  index = torch.arange(num_bins, dtype=f32).unsqueeze(1)                     # [M, 1]
  left = mel_low + index * delta
  centre = mel_low + (index + 1.0) * delta
  right = mel_low + (index + 2.0) * delta
  num_fft = params.fft_length // 2                                             # 256, no Nyquist
  bin_hz = params.sample_rate_hz / params.fft_length
  mel = (1127.0 * (1.0 + torch.arange(num_fft, dtype=f32) * bin_hz / 700.0).log()).unsqueeze(0)
  rising = (mel - left) / (centre - left)
  falling = (right - mel) / (right - centre)
  weights = torch.clamp(torch.minimum(rising, falling), min=0.0)              # [M, 256]
  bank = np.zeros((num_bins, params.num_fft_bins), dtype=np.float64)
  bank[:, :num_fft] = weights.numpy().astype(np.float64)
  bank.setflags(write=False)
  return bank


def mel_filter_bank(params: ASTParams) -> np.ndarray:
  """Triangular mel filters, float64 [num_mel_bins (128), num_fft_bins (257)], read-only.

  Values are Kaldi's float32 weights (see the module docstring), held in float64.
  """
  return _mel_filter_bank(params)


@functools.lru_cache(maxsize=8)
def _hann(length: int) -> np.ndarray:
  window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length, dtype=np.float64) / (length - 1))
  window.setflags(write=False)
  return window


def hann_window(params: ASTParams) -> np.ndarray:
  """Kaldi's "hanning" (symmetric Hann) window, float64 [frame_length_samples (400)]."""
  return _hann(params.frame_length_samples)


def frame_signal(signal: np.ndarray, params: ASTParams) -> np.ndarray:
  """[n] -> read-only strided view [num_fbank_frames(n), 400] (frame f = samples 160 f ...)."""
  signal = np.ascontiguousarray(signal, dtype=np.float64)
  count = params.num_fbank_frames(signal.shape[0])
  length, shift = params.frame_length_samples, params.frame_shift_samples
  if count == 0:
    return np.zeros((0, length), dtype=np.float64)
  return np.lib.stride_tricks.as_strided(
      signal, shape=(count, length), strides=(shift * signal.strides[0], signal.strides[0]),
      writeable=False)


def _fbank_of_frames(frames: np.ndarray, params: ASTParams) -> np.ndarray:
  x = np.array(frames, dtype=np.float64)                                      # [F, 400]
  if params.remove_dc_offset:
    x -= x.mean(axis=1, keepdims=True)
  if params.preemphasis:
    x[:, 1:] -= params.preemphasis * x[:, :-1].copy()
    x[:, 0] -= params.preemphasis * x[:, 0]
  x *= hann_window(params)
  spectrum = np.fft.rfft(x, n=params.fft_length, axis=1)                       # [F, 257]
  power = spectrum.real ** 2 + spectrum.imag ** 2
  energies = power @ mel_filter_bank(params).T                                # [F, 128]
  return np.log(np.maximum(energies, params.log_floor))


def fbank(signal: np.ndarray, params: ASTParams) -> np.ndarray:
  """Mono samples float [n] at ``params.sample_rate_hz`` -> log mel float64 [F, 128].

  ``F = params.num_fbank_frames(n)`` (0 rows under one frame). Samples are used as
  given (the extractor does not rescale float audio to 16-bit integers, nor do we).
  """
  frames = frame_signal(signal, params)
  out = np.empty((frames.shape[0], params.num_mel_bins), dtype=np.float64)
  for start in range(0, frames.shape[0], _FRAMES_PER_CALL):
    stop = min(start + _FRAMES_PER_CALL, frames.shape[0])
    out[start:stop] = _fbank_of_frames(frames[start:stop], params)
  return out
