"""The run lifecycle: ownership of files, one writer per output, staging, commit, cleanup.

Each test reproduces a way a run could destroy or double what a user has (the probe in
the "never delete what we did not write" issue) and asserts it no longer can: real
directories, real CLI subprocesses, a real moto S3 server for preconditions, and a real
tmpfs for a full disk.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

import robust_fixtures
from audiobeam.errors import ConfigError
from cloud_emulators import s3_emulator  # noqa: F401  (fixture)
from pipelines import lifecycle
from pipelines.options import parse_config

__all__: list[str] = []


def _write_tones(directory: pathlib.Path, count: int, seconds: float = 2.0) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  rate_hz = 16000
  t = np.arange(int(rate_hz * seconds)) / rate_hz
  for i in range(count):
    sf.write(directory / f"tone_{i:03d}.wav", 0.3 * np.sin(2 * np.pi * (300 + 40 * i) * t),
             rate_hz, subtype="PCM_16")


def _argv(audio: pathlib.Path, out: pathlib.Path, weights, *extra) -> list[str]:
  return ["--input", str(audio / "*.wav"), "--output", str(out), "--checkpoint",
          weights.checkpoint, "--pca_params", weights.pca_params, *extra]


def _tree(root: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- ownership ------------------------------------------------------------------------------


def test_a_folder_with_files_audiobeam_did_not_write_is_refused_and_left_untouched(tmp_path):
  out = tmp_path / "out"
  user_files = {
      "vggish/frames/part-foo.parquet": b"mine", "errors/part-2024-archive.parquet": b"mine",
      "vggish/tfrecord/part-x.tfrecord": b"mine", "_audiobeam/manifests/run-mine.jsonl": b"{}",
      "vggish/frames/beam-temp-mine/shard": b"mine", "notes.txt": b"mine",
  }
  for rel, data in user_files.items():
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_bytes(data)
  ledger = lifecycle.OutputLedger(str(out))
  listing = ledger.list()
  assert sorted(listing.foreign) == sorted(user_files) and not listing.ours
  with pytest.raises(lifecycle.ForeignFilesError, match="did not write") as error:
    ledger.prepare("20260101T000000Z-abcdef", None, listing)
  assert "--output_mode" in str(error.value)
  assert _tree(out) == user_files  # nothing touched, nothing added


def test_output_mode_replace_writes_next_to_foreign_files_without_touching_them(tmp_path):
  out = tmp_path / "out"
  (out / "vggish" / "clips").mkdir(parents=True)
  (out / "vggish" / "clips" / "part-foo.parquet").write_bytes(b"mine")
  ledger = lifecycle.OutputLedger(str(out))
  run_id = lifecycle.new_run_id()
  ledger.prepare(run_id, "replace", ledger.list())
  staged = pathlib.Path(ledger.staging(run_id)) / "vggish" / "clips" / f"part-{run_id}-00000-of-00001.parquet"
  staged.parent.mkdir(parents=True)
  staged.write_bytes(b"ours")
  files = ledger.staged_files(run_id)
  ledger.commit(run_id, files, manifest_entries=[], run_record={"run_id": run_id},
                listing=ledger.list(), mode="replace")
  assert (out / "vggish" / "clips" / "part-foo.parquet").read_bytes() == b"mine"
  assert (out / "vggish" / "clips" / staged.name).read_bytes() == b"ours"
  after = ledger.list()
  assert after.foreign == ["vggish/clips/part-foo.parquet"]
  assert set(after.committed) == {run_id}
  assert not (out / "_audiobeam" / "staging").exists()


def test_an_output_path_is_never_a_pattern(tmp_path):
  # The probe: after a run into runs/out1, --output 'runs/out?' deleted out1's parts.
  for output in ("runs/out?", "runs/out*", "runs/[o]ut1", "gs://b/out?"):
    with pytest.raises(ConfigError, match="glob characters"):
      parse_config(["--input", "a.wav", "--output", output])


def test_a_second_run_replaces_only_the_files_its_ledger_names(tmp_path, test_weights):
  audio, out = tmp_path / "audio", tmp_path / "out"
  _write_tones(audio, 2)
  first = robust_fixtures.run_embed(_argv(audio, out, test_weights, "--format", "parquet"),
                                    home=tmp_path / "home")
  assert first.returncode == 0, first.stderr[-2000:]
  record_1 = json.loads((out / "run.json").read_text())
  second = robust_fixtures.run_embed(_argv(audio, out, test_weights, "--format", "parquet"),
                                     home=tmp_path / "home")
  assert second.returncode == 0, second.stderr[-2000:]
  record_2 = json.loads((out / "run.json").read_text())
  names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
  assert not any(record_1["run_id"] in n for n in names)  # the first run is gone ...
  assert record_2["committed_run_ids"] == [record_2["run_id"]]  # ... the second committed
  assert len([n for n in names if n.startswith("vggish/clips/")]) == 1


# --- one writer per output ------------------------------------------------------------------


def test_a_second_run_into_an_output_in_use_stops_at_once_naming_the_holder(tmp_path,
                                                                            test_weights):
  audio, out = tmp_path / "audio", tmp_path / "out"
  _write_tones(audio, 1)
  holder = lifecycle.Lease(str(out), "20260101T000000Z-holder")
  holder.acquire()
  try:
    started = time.monotonic()
    run = robust_fixtures.run_embed(_argv(audio, out, test_weights), home=tmp_path / "home")
    elapsed = time.monotonic() - started
  finally:
    holder.release()
  assert run.returncode == 2, run.stderr[-2000:]
  assert "20260101T000000Z-holder" in run.stderr and socket.gethostname() in run.stderr
  assert not (out / "run.json").exists() and not list(out.rglob("part-*"))
  assert elapsed < 120  # stops before any job (the time is Python + Beam start-up)
  assert not (out / "_audiobeam" / "lock.json").exists()  # released


def test_a_lease_of_a_dead_process_or_past_its_heartbeat_is_taken_over(tmp_path):
  out = tmp_path / "out"
  lock = out / "_audiobeam" / "lock.json"
  lock.parent.mkdir(parents=True)
  dead = subprocess.Popen(["true"])
  dead.wait()
  for holder in (
      {"run_id": "dead", "host": socket.gethostname(), "pid": dead.pid,
       "heartbeat_unix_seconds": time.time(), "expires_unix_seconds": time.time() + 900},
      {"run_id": "late", "host": "another-host", "pid": 1,
       "heartbeat_unix_seconds": time.time() - 3600, "expires_unix_seconds": time.time() - 1}):
    lock.write_text(json.dumps(holder))
    lease = lifecycle.Lease(str(out), "20260101T000000Z-newrun")
    lease.acquire()
    assert json.loads(lock.read_text())["run_id"] == "20260101T000000Z-newrun"
    lease.release()
    assert not lock.exists()


def test_a_live_lease_on_another_host_is_respected(tmp_path):
  out = tmp_path / "out"
  lock = out / "_audiobeam" / "lock.json"
  lock.parent.mkdir(parents=True)
  lock.write_text(json.dumps({"run_id": "other", "host": "another-host", "pid": 1,
                              "heartbeat_unix_seconds": time.time(),
                              "expires_unix_seconds": time.time() + 900}))
  with pytest.raises(lifecycle.ConcurrentRunError, match="'other' on host 'another-host'"):
    lifecycle.Lease(str(out), "20260101T000000Z-second").acquire()
  assert json.loads(lock.read_text())["run_id"] == "other"


def test_s3_lease_is_created_with_a_precondition(s3_emulator):  # noqa: F811
  from apache_beam.options.pipeline_options import PipelineOptions
  out = s3_emulator.create_bucket("lease-test") + "/out"
  options = PipelineOptions(s3_emulator.beam_flags)
  first = lifecycle.Lease(out, "20260101T000000Z-first", options)
  first.acquire()
  try:
    # A second creator loses on the server's If-None-Match, not on our own check.
    backend = lifecycle.Lease(out, "20260101T000000Z-second", options)._backend
    assert backend.create("{}") is False
    with pytest.raises(lifecycle.ConcurrentRunError, match="20260101T000000Z-first"):
      lifecycle.Lease(out, "20260101T000000Z-second", options).acquire()
  finally:
    first.release()
  assert backend.read() == (None, None)


# --- a full disk ----------------------------------------------------------------------------


@pytest.fixture()
def small_tmpfs(tmp_path):
  """A real 16 MiB tmpfs (root only; skipped elsewhere, never faked)."""
  mount_point = tmp_path / "small"
  mount_point.mkdir()
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
  if result.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
  try:
    yield mount_point
  finally:
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _free_bytes(path: pathlib.Path) -> int:
  stat = os.statvfs(path)
  return stat.f_bavail * stat.f_frsize


def test_a_run_that_fills_the_disk_leaves_the_previous_run_and_frees_its_space(
    tmp_path, test_weights, small_tmpfs):
  small, more = tmp_path / "small_in", tmp_path / "more_in"
  _write_tones(small, 2)
  _write_tones(more, 30, seconds=5.0)  # 150 frames: ~100 KB of frames/ alone
  out, filler = small_tmpfs / "out", small_tmpfs / "someone_elses_big_file"
  home = tmp_path / "home"
  first = robust_fixtures.run_embed(_argv(small, out, test_weights), home=home)
  assert first.returncode == 0, first.stderr[-2000:]
  before = _tree(out)
  filler.write_bytes(b"\0" * (_free_bytes(small_tmpfs) - (48 << 10)))  # leave 48 KiB free
  free_before = _free_bytes(small_tmpfs)

  full = robust_fixtures.run_embed(_argv(more, out, test_weights), home=home)

  assert full.returncode != 0
  assert "No space left on device" in full.stderr or "ENOSPC" in full.stderr, full.stderr[-3000:]
  # The readable output is exactly the first run's; the failed run left nothing behind
  # (no parts, no Beam temp folders, no run.json.tmp) and its space is free again.
  assert _tree(out) == before
  assert _free_bytes(small_tmpfs) >= free_before - (8 << 10)

  filler.unlink()
  again = robust_fixtures.run_embed(_argv(more, out, test_weights), home=home)
  assert again.returncode == 0, again.stderr[-2000:]
  clips = [p for p in (out / "vggish" / "clips").glob("part-*")]
  assert len(clips) == 1 and json.loads((out / "run.json").read_text())["committed_run_ids"] == [
      clips[0].name.split("-00000-")[0][len("part-"):]]


# --- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signal_number, exit_code, word", [(15, 143, "SIGTERM"), (2, 130, "SIGINT")])
def test_a_signalled_run_removes_its_uncommitted_files_and_says_so(
    tmp_path, test_weights, signal_number, exit_code, word):
  audio, out = tmp_path / "audio", tmp_path / "out"
  _write_tones(audio, 12, seconds=20.0)
  home = tmp_path / "home"
  home.mkdir()
  process = subprocess.Popen(
      robust_fixtures.embed_command(_argv(audio, out, test_weights)), cwd=robust_fixtures.REPO_ROOT,
      env=robust_fixtures.embed_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  while not (out / "_audiobeam" / "runs").exists() and time.monotonic() < deadline:
    assert process.poll() is None, process.communicate()
    time.sleep(0.05)
  time.sleep(2.0)  # the job is running
  process.send_signal(signal_number)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == exit_code, stderr[-3000:]
  assert word in stderr and "Traceback" not in stderr, stderr[-3000:]
  left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
  assert left == [], left  # no staging, no started record, no lease, no run.json
