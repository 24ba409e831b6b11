"""Progress of a local run, shown while it runs; Beam counters for every runner.

Beam's local runner reports its counters only when the job is over, and it runs the
fused decode -> model stage for most of the job's time. So for local runs the workers
(threads of the launcher's process, or processes it spawned) also keep a few running
totals in ``$AUDIOBEAM_PROGRESS_DIR/<pid>.json`` (rewritten at most once a second, by
rename), and the launcher's ``ProgressReporter`` sums them every ``interval_seconds`` and
prints one line on stderr: files done of files matched, audio hours, model inputs
embedded, errors so far, throughput and an ETA. On a terminal the line is redrawn in
place; otherwise one line per interval (so logs are not flooded).

On Dataflow the same numbers are Beam counters in the job's metrics (namespace
``audiobeam``): ``files_matched``, ``files_decoded``, ``files_failed``,
``audio_milliseconds``, ``<model>_inputs_embedded``, ``<model>_files_embedded``,
``<model>_frames``, ``<model>_errors`` and ``<model>_errors_<error_type>``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TextIO

from audiobeam.assets import write_atomically

__all__ = ["PROGRESS_DIR_ENV", "record", "ProgressReporter"]

PROGRESS_DIR_ENV = "AUDIOBEAM_PROGRESS_DIR"
_FLUSH_SECONDS = 1.0


class _Totals:
  """This process's running totals, flushed to the progress dir (thread-safe)."""

  def __init__(self, directory: str):
    self.directory = directory
    self._path = os.path.join(directory, f"{os.getpid()}.json")
    self._lock = threading.Lock()
    self._values: dict[str, float] = {}
    self._flushed = 0.0

  def add(self, **amounts: float) -> None:
    with self._lock:
      for key, amount in amounts.items():
        self._values[key] = self._values.get(key, 0) + amount
      now = time.monotonic()
      if now - self._flushed < _FLUSH_SECONDS:
        return
      self._flushed = now
      data = json.dumps(self._values)
    try:
      write_atomically(self._path, lambda f: f.write(data.encode("utf-8")), sync=False)
    except OSError:
      pass  # progress is best effort; the run's counters are the record

  def flush(self) -> None:
    with self._lock:
      self._flushed = 0.0
    self.add()


_TOTALS: _Totals | None = None
_TOTALS_LOCK = threading.Lock()


def record(**amounts: float) -> None:
  """Adds to this process's running totals when a progress dir is set (local runs)."""
  global _TOTALS
  directory = os.environ.get(PROGRESS_DIR_ENV)
  if not directory:
    return
  totals = _TOTALS
  if totals is None or totals.directory != directory:
    with _TOTALS_LOCK:
      if _TOTALS is None or _TOTALS.directory != directory:
        _TOTALS = _Totals(directory)
      totals = _TOTALS
  totals.add(**amounts)


def _flush_totals() -> None:
  if _TOTALS is not None:
    _TOTALS.flush()


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"


class ProgressReporter:
  """Launcher side: sums the workers' totals and prints a progress line every interval."""

  def __init__(self, directory: str, *, interval_seconds: float = 10.0,
               stream: TextIO | None = None):
    self._directory = directory
    self._interval = float(interval_seconds)
    self._stream = stream or sys.stderr
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None
    self._started = time.monotonic()
    self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
    self._printed = False

  def totals(self) -> dict[str, float]:
    _flush_totals()
    out: dict[str, float] = {}
    try:
      names = os.listdir(self._directory)
    except OSError:
      return out
    for name in names:
      if not name.endswith(".json"):
        continue
      try:
        with open(os.path.join(self._directory, name), encoding="utf-8") as f:
          values = json.load(f)
      except (OSError, ValueError):
        continue
      for key, value in values.items():
        out[key] = out.get(key, 0) + value
    return out

  def line(self) -> str:
    t = self.totals()
    elapsed = time.monotonic() - self._started
    matched, done = int(t.get("files_matched", 0)), int(t.get("files_done", 0))
    audio_hours = t.get("audio_seconds", 0.0) / 3600.0
    inputs = int(t.get("inputs_embedded", 0))
    errors = int(t.get("files_failed", 0))
    rate = t.get("audio_seconds", 0.0) / elapsed if elapsed > 0 else 0.0
    eta = ""
    if 0 < done < matched:
      eta = f", ETA {_duration(elapsed * (matched - done) / done)}"
    return (f"audiobeam: {done}/{matched} files, {audio_hours:.3f} h audio, {inputs} model "
            f"inputs, {errors} failed, {rate:.0f} audio-s/s, {_duration(elapsed)} elapsed{eta}")

  def _print(self, final: bool = False) -> None:
    text = self.line()
    if self._tty:
      self._stream.write("\r\033[K" + text + ("\n" if final else ""))
    else:
      self._stream.write(text + "\n")
    self._stream.flush()
    self._printed = True

  def _loop(self) -> None:
    while not self._stop.wait(self._interval):
      self._print()

  def start(self) -> "ProgressReporter":
    self._thread = threading.Thread(target=self._loop, name="audiobeam-progress", daemon=True)
    self._thread.start()
    return self

  def stop(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    if self._printed:
      self._print(final=True)
