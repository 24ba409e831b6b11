"""Keep TensorFlow's import-time notices off a user's terminal (``--verbose`` shows them).

TensorFlow 2.21 writes ``cudart_stub.cc: Could not find cuda drivers`` and absl's "log
messages before InitializeLog" line to the process's stderr (file descriptor 2) while it
is imported, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. ``import_tensorflow`` imports it
with descriptor 2 pointed at /dev/null for that moment only; Python exceptions still
propagate. ``$AUDIOBEAM_VERBOSE=1`` (set by ``--verbose``, inherited by workers) turns it
off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["VERBOSE_ENV", "import_tensorflow", "native_stderr_silenced", "quiet_transformers"]

VERBOSE_ENV = "AUDIOBEAM_VERBOSE"
_LOCK = threading.Lock()


@contextlib.contextmanager
def native_stderr_silenced():
  """File descriptor 2 goes to /dev/null inside the block (unless verbose)."""
  if os.environ.get(VERBOSE_ENV) == "1":
    yield
    return
  with _LOCK:
    try:
      sys.stderr.flush()
      saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters)
      yield
      return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
      os.dup2(devnull, 2)
      yield
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      os.close(devnull)


def import_tensorflow():
  """``import tensorflow`` without its import-time notices on stderr."""
  module = sys.modules.get("tensorflow")
  if module is not None:
    return module
  with native_stderr_silenced():
    import tensorflow  # pylint: disable=import-outside-toplevel
  return tensorflow


def quiet_transformers() -> None:
  """transformers' weight-loading progress bars and notices stay off stderr (unless
  verbose); call before ``from_pretrained``."""
  if os.environ.get(VERBOSE_ENV) == "1":
    return
  from transformers.utils import logging as hf_logging  # pylint: disable=import-outside-toplevel
  hf_logging.disable_progress_bar()
  hf_logging.set_verbosity_error()
