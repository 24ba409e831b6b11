"""The YAMNet log-mel front end, in float32 with TensorFlow's signal ops, as the reference.

Follows the front end Google published with YAMNet (tensorflow/models,
research/audioset/yamnet/features.py: ``pad_waveform`` and
``waveform_to_log_mel_spectrogram_patches``), written here from that description:

1. pad the float32 waveform at the end with zeros to ``15600 + 7680 * k`` samples
   (``Params.padded_num_samples``; exact integers where the reference uses float32);
2. ``|tf.signal.stft|``: 400-sample (25 ms) periodic Hann windows every 160 samples
   (10 ms), a 512-point FFT, no padding of the frames;
3. ``@ tf.signal.linear_to_mel_weight_matrix``: 64 HTK-mel triangles from 125 Hz to
   7500 Hz over the 257 bins, computed by TensorFlow in float32 (its DC bin gets no weight);
4. ``log(mel + 0.001)``;
5. 96-frame patches every 48 frames (``tf.signal.frame`` without padding; here a
   strided numpy view).

The STFT, the mel matrix, the product and the log run as the same TensorFlow float32
kernels as in the reference, so the log-mel agrees with it to about 1e-6; an independent
float64 FFT differs by up to ~8e-3 on pure tones (float32 rounding in the reference's
spectrum), which is why this front end does not use numpy's FFT.

TensorFlow is imported on the first computation, not when this module is imported.
Shapes: ``n`` samples at 16 kHz, ``F`` STFT frames, ``N`` patches.
"""

from __future__ import annotations

import functools

import numpy as np

from models.yamnet.params import DEFAULT_PARAMS, Params

__all__ = [
    "num_stft_frames",
    "mel_matrix",
    "log_mel_spectrogram",
    "frame_patches",
    "pad_waveform",
    "waveform_to_patches",
]


def num_stft_frames(num_samples: int, params: Params = DEFAULT_PARAMS) -> int:
  """Whole 400-sample windows every 160 samples in ``num_samples``; 0 if none fits."""
  if num_samples < params.stft_window_samples:
    return 0
  return 1 + (num_samples - params.stft_window_samples) // params.stft_hop_samples


@functools.lru_cache(maxsize=4)
def _mel_matrix_cached(params: Params) -> np.ndarray:
  from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
  tf = import_tensorflow()  # Lazy: importing models.yamnet must not import TensorFlow.

  weights = tf.signal.linear_to_mel_weight_matrix(
      num_mel_bins=params.num_mel_bins, num_spectrogram_bins=params.num_spectrogram_bins,
      sample_rate=float(params.sample_rate_hz), lower_edge_hertz=params.mel_min_hz,
      upper_edge_hertz=params.mel_max_hz, dtype=tf.float32).numpy()
  weights.setflags(write=False)
  return weights


def mel_matrix(params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """``tf.signal.linear_to_mel_weight_matrix``: float32 [257, 64] (read-only, cached)."""
  return _mel_matrix_cached(params)


@functools.lru_cache(maxsize=4)
def _log_mel_function(params: Params):
  """A tf.function float32 [n] -> float32 [F, 64] (traced once per params; thread-safe)."""
  from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
  tf = import_tensorflow()

  weights = tf.constant(mel_matrix(params))                                        # [257, 64]

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
  def log_mel(signal):
    magnitude = tf.abs(tf.signal.stft(
        signal, frame_length=params.stft_window_samples, frame_step=params.stft_hop_samples,
        fft_length=params.fft_length))                                             # [F, 257]
    mel = tf.matmul(magnitude, weights)                                            # [F, 64]
    return tf.math.log(mel + params.log_offset)                                    # [F, 64]

  return log_mel


def log_mel_spectrogram(signal: np.ndarray, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """Log-mel spectrogram of a mono 16 kHz signal: [n] (cast to float32) -> float32 [F, 64].

  ``F = 1 + (n - 400) // 160`` (0 when ``n < 400``). No padding: see ``pad_waveform``.
  """
  signal = np.asarray(signal)
  if signal.ndim != 1:
    raise ValueError(f"expected a mono signal of shape [n], got shape {signal.shape}; "
                     "mix channels to mono first.")
  frames = num_stft_frames(signal.shape[0], params)
  if frames == 0:
    return np.zeros((0, params.num_mel_bins), np.float32)
  from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
  tf = import_tensorflow()

  signal = np.ascontiguousarray(signal, dtype=np.float32)
  return _log_mel_function(params)(tf.constant(signal)).numpy()


def frame_patches(log_mel: np.ndarray, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """[F, 64] -> read-only view [N, 96, 64] of patches every 48 frames (no padding).

  ``N = 1 + (F - 96) // 48`` (0 when ``F < 96``).
  """
  log_mel = np.asarray(log_mel)
  window, hop = params.patch_frames, params.patch_hop_frames
  count = 0 if log_mel.shape[0] < window else 1 + (log_mel.shape[0] - window) // hop
  shape = (count, window) + log_mel.shape[1:]
  strides = (log_mel.strides[0] * hop,) + log_mel.strides
  return np.lib.stride_tricks.as_strided(log_mel, shape=shape, strides=strides, writeable=False)


def pad_waveform(waveform: np.ndarray, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """[n] -> float32 [15600 + 7680 * k], zeros appended (``Params.padded_num_samples``)."""
  waveform = np.asarray(waveform, dtype=np.float32)
  if waveform.ndim != 1:
    raise ValueError(f"expected a mono waveform of shape [n], got shape {waveform.shape}")
  padded = np.zeros(params.padded_num_samples(waveform.shape[0]), np.float32)
  padded[:waveform.shape[0]] = waveform
  return padded


def waveform_to_patches(waveform: np.ndarray, params: Params = DEFAULT_PARAMS
                        ) -> tuple[np.ndarray, np.ndarray]:
  """The whole-file front end: mono 16 kHz [n] -> (log_mel float32 [F, 64], patches [N, 96, 64]).

  The waveform is cast to float32 and padded as the reference does, so
  ``N = Params.num_patches(n) >= 1`` and ``F = 96 + 48 * (N - 1)``. ``patches`` is a
  read-only view into ``log_mel``.
  """
  log_mel = log_mel_spectrogram(pad_waveform(waveform, params), params)          # [F, 64]
  return log_mel, frame_patches(log_mel, params)                                 # [N, 96, 64]
