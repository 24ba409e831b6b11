"""The one exception hierarchy of audiobeam.

Every error a user can meet derives from ``AudiobeamError``. Messages say what was
expected, what was found, and what to do. Errors raised while processing a single
input carry an ``error_type`` (a short stable string) that becomes the ``error_type``
column of the ``errors/`` output.
"""

from __future__ import annotations

__all__ = [
    "AudiobeamError",
    "ConfigError",
    "AssetError",
    "CheckpointError",
    "InputError",
    "DecodeError",
    "AudioContentError",
    "TooShortError",
]


class AudiobeamError(Exception):
  """Root of every audiobeam error."""


class ConfigError(AudiobeamError, ValueError):
  """Bad parameters or options; raised before a job is submitted."""


class AssetError(AudiobeamError):
  """Model weights or PCA parameters missing, unreachable or invalid."""


class CheckpointError(AssetError):
  """A checkpoint that does not hold the VGGish variables with the right shapes."""


class InputError(AudiobeamError):
  """One input could not be embedded. Becomes a row of ``errors/``.

  ``error_type`` is a stable snake_case name users can filter on.
  """

  error_type = "input_error"

  def __init__(self, message: str, *, error_type: str | None = None):
    super().__init__(message)
    if error_type is not None:
      self.error_type = error_type


class DecodeError(InputError):
  """The bytes could not be decoded as audio (empty, corrupt, not audio)."""

  error_type = "decode_error"


class AudioContentError(InputError):
  """Decoded, but the samples are unusable (NaN/inf, no channels, ...)."""

  error_type = "bad_audio"


class TooShortError(InputError):
  """Shorter than one patch (0.975 s) under ``--short_clips reference``."""

  error_type = "too_short"
