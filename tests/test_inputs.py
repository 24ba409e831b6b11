"""audiobeam.inputs: opening local inputs never blocks; errors are typed; the retry budget
and the storage-health trip work as documented.

Real FIFOs, sockets, devices, symlinks and unreadable files. Anything that could hang on
a regression runs in a child process with a timeout, so it fails instead of hanging.
Remote storage is tested against real emulators in ``test_storage_outage.py``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import robust_fixtures
from audiobeam import inputs
from audiobeam.errors import AudiobeamError, InputError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _error_type(uri: str) -> str:
  with pytest.raises(InputError) as info:
    with inputs.open_input(uri):
      pass
  assert info.value.error_type in inputs.OPEN_ERROR_TYPES
  return info.value.error_type


def test_a_regular_file_opens_seekable_and_blocking(tmp_path):
  path = tmp_path / "a.wav"
  path.write_bytes(b"RIFF" + bytes(range(256)) * 10)
  for uri in (str(path), f"file://{path}"):
    with inputs.open_input(uri) as f:
      assert f.seekable()
      assert not fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
      assert f.read() == path.read_bytes()
      f.seek(4)
      assert f.read(3) == bytes([0, 1, 2])


def test_a_fifo_is_refused_at_once_even_if_it_appears_after_the_stat(tmp_path):
  """Before: ``FileSystems.open`` on a FIFO named x.wav blocked the run forever. Now the
  stat refuses it, and so does the O_NONBLOCK open + fstat when the stat is bypassed (a
  regular file swapped for a FIFO between the two calls)."""
  fifo = tmp_path / "x.wav"
  os.mkfifo(fifo)
  code = textwrap.dedent(f"""
      import time
      from audiobeam import inputs
      from audiobeam.errors import InputError
      for bypass_stat in (False, True):
        if bypass_stat:
          inputs.check_local_input = lambda path: None   # the race: stat saw a regular file
        started = time.monotonic()
        try:
          with inputs.open_input({str(fifo)!r}):
            print("opened")
        except InputError as e:
          print(e.error_type, round(time.monotonic() - started, 3))
      """)
  done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=60)
  lines = [line.split() for line in done.stdout.splitlines()]
  assert [line[0] for line in lines] == ["not_a_regular_file"] * 2, done.stderr[-2000:]
  assert all(float(line[1]) < 1.0 for line in lines), lines


@pytest.mark.parametrize("make, kind", [
    (lambda p: os.symlink("/dev/zero", p), "character device"),
    (lambda p: os.symlink("/dev/null", p), "character device"),
    (lambda p: p.mkdir(), "directory"),
    (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "socket"),
])
def test_devices_directories_and_sockets_are_not_regular_files(tmp_path, make, kind):
  path = tmp_path / "x.wav"
  make(path)
  started = time.monotonic()
  with pytest.raises(InputError, match=kind) as info:
    with inputs.open_input(str(path)):
      pass
  assert info.value.error_type == "not_a_regular_file"
  assert time.monotonic() - started < 1.0


def test_missing_dangling_and_looping_paths_are_not_found(tmp_path):
  os.symlink(tmp_path / "gone.wav", tmp_path / "dangling.wav")
  os.symlink(tmp_path / "loop_b.wav", tmp_path / "loop_a.wav")
  os.symlink(tmp_path / "loop_a.wav", tmp_path / "loop_b.wav")
  (tmp_path / "file").write_bytes(b"x")
  assert _error_type(str(tmp_path / "missing.wav")) == "not_found"
  assert _error_type(str(tmp_path / "dangling.wav")) == "not_found"
  assert _error_type(str(tmp_path / "loop_a.wav")) == "not_found"
  assert _error_type(str(tmp_path / "file" / "below_a_file.wav")) == "not_found"
  with pytest.raises(InputError, match="symlink to .*gone.wav"):
    inputs.check_local_input(str(tmp_path / "dangling.wav"))


def test_an_unreadable_file_is_permission_denied(tmp_path):
  """Mode 000 stops only a process without CAP_DAC_OVERRIDE: as root the check runs in a
  child started without it (setpriv); if that is impossible the test is skipped."""
  path = tmp_path / "locked.wav"
  path.write_bytes(b"RIFF....")
  path.chmod(0)
  drop = robust_fixtures.can_drop_file_permission_override()
  if os.geteuid() == 0 and not drop:
    pytest.skip("running as root without a way to start an unprivileged child")
  code = textwrap.dedent(f"""
      from audiobeam import inputs
      from audiobeam.errors import InputError
      try:
        with inputs.open_input({str(path)!r}):
          print("opened")
      except InputError as e:
        print(e.error_type)
      """)
  prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if drop else []
  done = subprocess.run([*prefix, sys.executable, "-c", code], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=60)
  assert done.stdout.split() == ["permission_denied"], done.stderr[-2000:]


# --- retry budget and storage health ----------------------------------------------------------


def _connection_refused():
  import requests
  return requests.ConnectionError("[Errno 111] Connection refused")


def test_retries_of_one_file_stop_at_the_budget():
  """A request that keeps failing with a real requests.ConnectionError is retried with
  back-off, within ``budget_seconds``, then a typed storage_unavailable."""
  policy = inputs.RetryPolicy(max_attempts=50, first_delay_seconds=0.05,
                              max_delay_seconds=0.1, budget_seconds=0.5)
  health = inputs.StorageHealth(max_consecutive_failures=100)
  calls = []

  def request():
    calls.append(time.monotonic())
    raise _connection_refused()

  attempts = inputs._Attempts("gs://b/a.wav", "gs://b", policy, health)  # pylint: disable=protected-access
  started = time.monotonic()
  with pytest.raises(InputError, match="retry budget") as info:
    attempts.call("read", request)
  assert info.value.error_type == "storage_unavailable"
  assert 0.3 < time.monotonic() - started < 1.5
  assert 2 <= len(calls) <= 12  # back-off 0.05, 0.1, 0.1, ... s (fewer when sleeps overrun)
  assert health.consecutive_failures("gs://b") == 1


@pytest.mark.parametrize("error, error_type", [
    ("not_found", "not_found"), ("forbidden", "permission_denied"),
    ("precondition", "changed_during_read"), ("bad_request", "storage_error"),
])
def test_refusals_are_typed_at_once_without_retries(error, error_type):
  from google.api_core import exceptions as gexc
  raised = {"not_found": gexc.NotFound("404 no such object"),
            "forbidden": gexc.Forbidden("403 denied"),
            "precondition": gexc.PreconditionFailed("412 generation changed"),
            "bad_request": gexc.BadRequest("400 bad")}[error]
  calls = []

  def request():
    calls.append(1)
    raise raised

  health = inputs.StorageHealth()
  attempts = inputs._Attempts("gs://b/a.wav", "gs://b", inputs.DEFAULT_RETRY_POLICY, health)  # pylint: disable=protected-access
  with pytest.raises(InputError) as info:
    attempts.call("read", request)
  assert info.value.error_type == error_type and len(calls) == 1
  assert health.consecutive_failures("gs://b") == 0  # the storage answered


def test_storage_health_trips_after_k_consecutive_failures_and_stays_down():
  health = inputs.StorageHealth(max_consecutive_failures=3, max_outage_seconds=1e9)
  health.record_unavailable("gs://b", "gs://b/1.wav", "refused")
  health.record_success("gs://b")                     # a success resets the count
  health.record_unavailable("gs://b", "gs://b/2.wav", "refused")
  health.record_unavailable("gs://b", "gs://b/3.wav", "refused")
  health.record_unavailable("gs://other", "gs://other/x.wav", "refused")  # another root
  with pytest.raises(inputs.StorageDownError, match=r"gs://b .*3 files in a row") as info:
    health.record_unavailable("gs://b", "gs://b/4.wav?X-Goog-Signature=SECRET", "refused")
  assert "SECRET" not in str(info.value) and "--skip_existing" in str(info.value)
  assert not isinstance(info.value, InputError) and isinstance(info.value, AudiobeamError)
  health.record_success("gs://b")                     # too late: down for this process
  with pytest.raises(inputs.StorageDownError):
    health.check("gs://b")
  health.check("gs://other")
  assert health.is_down("gs://b") and not health.is_down("gs://other")


def test_storage_health_trips_on_a_long_outage_with_few_files():
  now = [0.0]
  health = inputs.StorageHealth(max_consecutive_failures=100, max_outage_seconds=60.0,
                                clock=lambda: now[0])
  health.record_unavailable("s3://b", "s3://b/1.wav", "timeout")
  now[0] = 59.0
  health.record_unavailable("s3://b", "s3://b/2.wav", "timeout")
  now[0] = 61.0
  with pytest.raises(inputs.StorageDownError, match="over 61.0 s"):
    health.record_unavailable("s3://b", "s3://b/3.wav", "timeout")


def test_policies_and_thresholds_are_validated():
  with pytest.raises(ValueError):
    inputs.RetryPolicy(max_attempts=0)
  with pytest.raises(ValueError):
    inputs.StorageHealth(max_consecutive_failures=0)
