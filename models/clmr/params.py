"""Every CLMR constant in one frozen dataclass.

CLMR (Spijkervet and Burgoyne, "Contrastive Learning of Musical Representations", ISMIR
2021; github.com/Spijkervet/CLMR) pre-trains a SampleCNN (Lee et al., "SampleCNN:
End-to-End Deep Convolutional Neural Networks Using Very Small Filters for Music
Classification", 2018) on raw MagnaTagATune audio at 22050 Hz, in windows of
59049 = 3^10 samples (2.678 s). The published encoder checkpoint is
``clmr_checkpoint_10000.pt`` (batch 96, 10000 epochs). The values follow the paper and
the repository's ``config/config.yaml``; the code is ours.
"""

from __future__ import annotations

import dataclasses

from audiobeam.errors import ConfigError

__all__ = ["CLMRParams", "DEFAULT_PARAMS"]


@dataclasses.dataclass(frozen=True)
class CLMRParams:
  """CLMR input windows and encoder sizes.

  ``hop_samples``: samples between window starts; ``None`` (default) = one window, i.e.
  consecutive non-overlapping windows.
  """

  sample_rate_hz: int = 22050
  window_samples: int = 59049
  hop_samples: int | None = None
  embedding_size: int = 512
  batch_norm_epsilon: float = 1e-5

  def __post_init__(self):
    if self.hop_samples is not None and (isinstance(self.hop_samples, bool)
                                         or not isinstance(self.hop_samples, int)
                                         or self.hop_samples < 1):
      raise ConfigError(f"CLMR: expected a hop of at least one sample, found "
                        f"{self.hop_samples!r} samples; pass --clmr_hop_seconds > 0 (default: "
                        f"{self.window_seconds:.4f} s, non-overlapping windows).")

  @classmethod
  def from_hop_seconds(cls, hop_seconds: float | None) -> "CLMRParams":
    """Params for ``--clmr_hop_seconds`` (None: non-overlapping windows)."""
    if hop_seconds is None:
      return cls()
    if isinstance(hop_seconds, bool) or not isinstance(hop_seconds, (int, float)) \
        or not hop_seconds > 0:
      raise ConfigError(f"expected --clmr_hop_seconds > 0, found {hop_seconds!r}; leave it "
                        "out for non-overlapping 59049-sample windows.")
    hop = int(round(hop_seconds * cls.sample_rate_hz))
    if hop < 1:
      raise ConfigError(f"expected --clmr_hop_seconds of at least one sample "
                        f"(1/{cls.sample_rate_hz} s), found {hop_seconds!r}.")
    return cls(hop_samples=hop)

  # --- derived values -------------------------------------------------------------
  @property
  def hop(self) -> int:
    """Samples between window starts (59049 by default)."""
    return self.window_samples if self.hop_samples is None else self.hop_samples

  @property
  def window_seconds(self) -> float:
    """2.678 s."""
    return self.window_samples / self.sample_rate_hz

  @property
  def hop_seconds(self) -> float:
    return self.hop / self.sample_rate_hz

  def num_windows(self, num_samples: int) -> int:
    """Complete windows in ``num_samples`` samples (a trailing partial window is dropped)."""
    if num_samples < self.window_samples:
      return 0
    return 1 + (num_samples - self.window_samples) // self.hop

  def as_dict(self) -> dict:
    out = dataclasses.asdict(self)
    out["hop_samples"] = self.hop
    return out


DEFAULT_PARAMS = CLMRParams()
