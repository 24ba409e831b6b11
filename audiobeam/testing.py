"""Shared by the models' test-weight writers (``vggish.testing``, ``models.*.testing``).

Nothing in the product imports this module: it only helps write deterministic stand-in
weights for tests.
"""

from __future__ import annotations

import numpy as np

__all__ = ["calibration_signals"]


def calibration_signals(num_samples: int, sample_rate_hz: int) -> list[np.ndarray]:
  """16 fixed synthetic float64 signals of ``num_samples`` samples: silence, noise at four
  levels, four tones, two chirps, clicks, a square wave, a syllable-like AM tone, brown
  noise and an onset. The writers run them through their model to calibrate statistics
  (batch norm, PCA means), so the same seed gives the same files on every machine."""
  rng = np.random.default_rng(12345)
  n = num_samples
  t = np.arange(n) / sample_rate_hz
  signals = [np.zeros(n)]
  for level in (1e-3, 1e-2, 0.1, 0.5):
    signals.append(level * rng.standard_normal(n))
  for hz in (200.0, 700.0, 2000.0, 5000.0):
    signals.append(0.5 * np.sin(2 * np.pi * hz * t))
  signals.append(0.5 * np.sin(2 * np.pi * (100 * t + 3000 * t ** 2)))           # Chirp up.
  signals.append(0.3 * np.sin(2 * np.pi * (6000 * t - 2500 * t ** 2)))          # Chirp down.
  clicks = np.zeros(n)
  clicks[:: sample_rate_hz // 8] = 0.9
  signals.append(clicks)
  signals.append(np.sign(np.sin(2 * np.pi * 440 * t)) * 0.2)                    # Square.
  am = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) * np.sin(2 * np.pi * 300 * t)      # Syllable-ish.
  signals.append(0.4 * am + 0.02 * rng.standard_normal(n))
  signals.append(np.cumsum(rng.standard_normal(n)) * 1e-3)                      # Brown noise.
  signals.append(0.3 * rng.standard_normal(n) * (t > t[-1] / 2))                # Onset.
  return signals
