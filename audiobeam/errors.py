"""The one exception hierarchy of audiobeam, and the one table of error types.

Every error a user can meet derives from ``AudiobeamError``. Messages say what was
expected, what was found, and what to do. Errors raised while processing a single
input carry an ``error_type`` (a short stable string) that becomes the ``error_type``
column of the ``errors/`` output.

``ERROR_TYPES`` lists every ``error_type`` the pipeline can write, with its stage and
whether the file's bytes determine it (``content``: the same bytes fail again, so an
incremental run does not retry them) or not (transient: not found, permission, storage,
inference: retried). Every consumer derives from it: ``InputError`` and
``transforms.records.InputFailure`` refuse a name that is not in it, the incremental
skip rule reads ``content`` from it, and the README's table is checked against it; a new
error type cannot be forgotten in one place.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "ErrorType",
    "ERROR_TYPES",
    "UNEXPECTED_PREFIX",
    "check_error_type",
    "is_content_error",
    "AudiobeamError",
    "ConfigError",
    "AssetError",
    "CheckpointError",
    "InputError",
    "DecodeError",
    "AudioContentError",
    "TooShortError",
]


@dataclasses.dataclass(frozen=True)
class ErrorType:
  """One ``error_type`` value: where it arises and whether the file's bytes determine it."""

  name: str
  stage: str
  content: bool
  meaning: str


ERROR_TYPES: dict[str, ErrorType] = {e.name: e for e in (
    ErrorType("no_match", "match", False, "an --input pattern matched no file"),
    ErrorType("unsupported_scheme", "match", False, "no filesystem for the pattern's scheme"),
    ErrorType("match_failed", "match", False, "listing the pattern failed"),
    ErrorType("not_found", "decode", False,
              "no such file or object (a dangling symlink, an object deleted after matching)"),
    ErrorType("permission_denied", "decode", False,
              "the file or object may not be read with these credentials / this user"),
    ErrorType("not_a_regular_file", "match", False,
              "a FIFO, device, socket or directory: never opened (a FIFO would block forever)"),
    ErrorType("storage_unavailable", "decode", False,
              "the storage did not answer within the retry budget (connection, timeout, 429/5xx)"),
    ErrorType("changed_during_read", "decode", False,
              "the object was replaced (new generation / ETag) while it was read"),
    ErrorType("storage_error", "decode", False, "the storage refused the request (HTTP 4xx)"),
    ErrorType("unreadable", "decode", False, "opening or reading failed (I/O error)"),
    ErrorType("empty_file", "decode", True, "0 bytes"),
    ErrorType("unsupported_format", "decode", True, "neither libsndfile nor FFmpeg reads it"),
    ErrorType("no_audio_stream", "decode", True, "a container without audio"),
    ErrorType("corrupt_audio", "decode", True, "the decoder failed part-way"),
    ErrorType("format_changes_mid_stream", "decode", True,
              "sample rate or channels change between chained streams or mid-stream"),
    ErrorType("invalid_sample_rate", "decode", True, "header rate outside 1 kHz .. 3.072 MHz"),
    ErrorType("no_channels", "decode", True, "header says 0 channels"),
    ErrorType("non_finite_samples", "decode", True, "NaN or infinite samples"),
    ErrorType("no_samples", "decode", True, "nothing decoded"),
    ErrorType("non_finite_features", "decode", True,
              "finite but absurd samples overflow the spectrum"),
    ErrorType("decode_error", "decode", True, "the bytes are not decodable audio"),
    ErrorType("bad_audio", "decode", True, "decoded samples are unusable"),
    ErrorType("too_short", "frontend", True, "shorter than one model input (short-clip policy)"),
    ErrorType("input_error", "decode", False, "an input problem without a finer type"),
    ErrorType("bad_patch_shape", "inference", False, "model inputs of the wrong shape (a bug)"),
    ErrorType("inference_failed", "inference", False, "the model call failed"),
    ErrorType("missing_frames", "postprocess", False, "frames lost between stages (a bug)"),
    ErrorType("internal_error", "postprocess", False, "an internal invariant failed (a bug)"),
)}
"""Every ``error_type`` except ``unexpected_<ExceptionClass>`` (an unforeseen exception,
retried; always a bug to report)."""

UNEXPECTED_PREFIX = "unexpected_"


def check_error_type(name: str) -> str:
  """``name`` if it is a known error type (or ``unexpected_<Class>``); ValueError if not:
  a new error type must be added to ``ERROR_TYPES`` first."""
  if name in ERROR_TYPES or (name.startswith(UNEXPECTED_PREFIX) and len(name) > len(UNEXPECTED_PREFIX)):
    return name
  raise ValueError(f"error_type {name!r} is not in audiobeam.errors.ERROR_TYPES; add it there "
                   "(with its stage and whether the file's bytes determine it)")


def is_content_error(name: str) -> bool:
  """True when the file's bytes determine the error (re-running on them fails again)."""
  entry = ERROR_TYPES.get(name)
  return entry is not None and entry.content


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
      self.error_type = check_error_type(error_type)


class DecodeError(InputError):
  """The bytes could not be decoded as audio (empty, corrupt, not audio)."""

  error_type = "decode_error"


class AudioContentError(InputError):
  """Decoded, but the samples are unusable (NaN/inf, no channels, ...)."""

  error_type = "bad_audio"


class TooShortError(InputError):
  """Shorter than one patch (0.975 s) under ``--short_clips reference``."""

  error_type = "too_short"
