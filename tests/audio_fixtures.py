"""Synthetic test signals and file writers for the audio, resample and stream tests.

Analytic signals (sines, chirps, seeded noise) so every expected value is known; files
are written into pytest's tmp dirs with soundfile (libsndfile) and PyAV (FFmpeg).
"""

from __future__ import annotations

import numpy as np

__all__ = ["sine", "chirp", "noise", "music_like", "speech_like", "stereo_mix",
           "write_m4a", "write_pyav_pcm"]


def sine(num_samples: int, sample_rate_hz: int, freq_hz: float = 440.0,
         amplitude: float = 0.5) -> np.ndarray:
  """[n] float64 sine."""
  t = np.arange(num_samples) / sample_rate_hz
  return amplitude * np.sin(2 * np.pi * freq_hz * t)


def chirp(num_samples: int, sample_rate_hz: int, f0_hz: float = 100.0,
          f1_hz: float | None = None, amplitude: float = 0.5) -> np.ndarray:
  """[n] float64 linear chirp from f0 to f1 (default: 0.45 * rate) over the signal."""
  f1_hz = 0.45 * sample_rate_hz if f1_hz is None else f1_hz
  duration = max(num_samples / sample_rate_hz, 1e-9)
  t = np.arange(num_samples) / sample_rate_hz
  return amplitude * np.sin(2 * np.pi * (f0_hz * t + (f1_hz - f0_hz) * t * t / (2 * duration)))


def noise(num_samples: int, seed: int = 0, amplitude: float = 0.1) -> np.ndarray:
  """[n] float64 Gaussian noise, fixed seed."""
  return amplitude * np.random.default_rng(seed).standard_normal(num_samples)


def music_like(num_samples: int, sample_rate_hz: int) -> np.ndarray:
  """Harmonic tones (220 Hz and 330 Hz with overtones up to ~6 kHz) plus a little noise."""
  t = np.arange(num_samples) / sample_rate_hz
  x = np.zeros(num_samples)
  for f0 in (220.0, 330.0):
    for k in range(1, 19):
      if f0 * k < min(6000.0, sample_rate_hz / 2):
        x += 0.15 / k * np.sin(2 * np.pi * f0 * k * t + k)
  return x + noise(num_samples, seed=1, amplitude=0.005)


def speech_like(num_samples: int, sample_rate_hz: int) -> np.ndarray:
  """A pitch-modulated pulse train through formant-like tones, syllable-rate envelope."""
  t = np.arange(num_samples) / sample_rate_hz
  pitch = 120.0 + 20.0 * np.sin(2 * np.pi * 3.0 * t)
  phase = 2 * np.pi * np.cumsum(pitch) / sample_rate_hz
  x = sum(0.2 / (k + 1) * np.sin(k * phase) for k in range(1, 30)
          if 120.0 * k * 1.2 < min(4000.0, sample_rate_hz / 2))
  envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) ** 2
  return envelope * x


def stereo_mix(num_samples: int, sample_rate_hz: int, channels: int = 2) -> np.ndarray:
  """[n, channels] float64 with a different signal in each channel."""
  cols = [sine(num_samples, sample_rate_hz, 220.0 * (c + 1), 0.4 / (c + 1))
          + noise(num_samples, seed=c, amplitude=0.02) for c in range(channels)]
  return np.stack(cols, axis=1)


def write_m4a(path, samples: np.ndarray, sample_rate_hz: int) -> None:
  """AAC in an MP4/M4A container, written with PyAV. samples: [n, channels] float."""
  import av

  channels = samples.shape[1]
  layout = {1: "mono", 2: "stereo"}[channels]
  with av.open(str(path), "w") as container:
    stream = container.add_stream("aac", rate=sample_rate_hz, layout=layout)
    data = np.ascontiguousarray(samples.T.astype(np.float32))
    for start in range(0, data.shape[1], 4096):
      frame = av.AudioFrame.from_ndarray(data[:, start:start + 4096], format="fltp",
                                         layout=layout)
      frame.sample_rate = sample_rate_hz
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)


def write_pyav_pcm(path, pcm_int16: np.ndarray, sample_rate_hz: int) -> None:
  """16-bit PCM in a container libsndfile cannot read (e.g. .mkv / .mov), via PyAV."""
  import av

  channels = pcm_int16.shape[1]
  layout = {1: "mono", 2: "stereo"}[channels]
  with av.open(str(path), "w") as container:
    stream = container.add_stream("pcm_s16le", rate=sample_rate_hz, layout=layout)
    data = np.ascontiguousarray(pcm_int16.reshape(1, -1))   # packed s16: [1, n * channels]
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
    frame.sample_rate = sample_rate_hz
    for packet in stream.encode(frame):
      container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)
