"""Re-runs into the same output directory: never duplicated rows, even after a SIGKILL.

Real ``python -m pipelines.embed`` subprocesses, in order (module-scoped, ~3 runs):

1. a complete run into ``out/``;
2. the same command again, SIGKILLed right after its job finalized its first part file
   (in the run's staging folder ``_audiobeam/staging/<run_id>/``);
3. the same command again, to completion.

Semantics asserted (the README documents them): a run *replaces* the output. The job
writes into staging; only after it succeeded are its files moved into place and the run
committed, then ``run.json`` names it and the earlier run's files are deleted. So after a
kill the readable folders hold exactly run 1's files and ``run.json`` names run 1; the
next run removes the killed run's leftovers, and after it every folder holds exactly
that run's files, with each input once.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import hostile_corpus
import robust_fixtures

_SUBDIRS = ("vggish/frames", "vggish/clips", "errors", "vggish/tfrecord")
_KILL_TIMEOUT_SECONDS = 300


def _write_inputs(directory: Path) -> dict[str, str]:
  """12 good clips (1-4 s, 8-48 kHz, mono/stereo) + 2 bad files -> {name: outcome}."""
  directory.mkdir()
  import soundfile as sf
  outcomes = {}
  for i in range(12):
    rate_hz = (8000, 16000, 22050, 44100, 48000)[i % 5]
    seconds = 1 + i % 4
    channels = 1 + i % 2
    name = f"clip_{i:02d}.wav"
    sf.write(str(directory / name), hostile_corpus.tone(seconds * rate_hz, rate_hz, channels,
                                                        seed=i), rate_hz)
    outcomes[name] = "clips"
  (directory / "empty.wav").write_bytes(b"")
  (directory / "notes.wav").write_text("not audio")
  outcomes["empty.wav"] = outcomes["notes.wav"] = "errors"
  return outcomes


def _state(out: Path) -> dict[str, list[str]]:
  """Every file and Beam temp entry in the readable folders (names), and every file of
  audiobeam's ledger (paths relative to ``_audiobeam/``)."""
  state = {}
  for sub in _SUBDIRS:
    d = out / sub
    state[sub] = sorted(p.name for p in d.iterdir()) if d.exists() else []
  ledger = out / "_audiobeam"
  state["_audiobeam"] = sorted(str(p.relative_to(ledger)) for p in ledger.rglob("*") if p.is_file())
  return state


def _run_id(out: Path) -> str:
  return robust_fixtures.read_outputs(out).run_record["run_id"]


def _start(argv, home: Path) -> subprocess.Popen:
  home.mkdir(parents=True, exist_ok=True)
  return subprocess.Popen(robust_fixtures.embed_command(argv), cwd=robust_fixtures.REPO_ROOT,
                          env=robust_fixtures.embed_env(home), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_after_first_new_part_file(proc: subprocess.Popen, out: Path, before: set[str]) -> str:
  """Polls ``out`` every 10 ms; SIGKILLs ``proc``'s process group as soon as a finalized
  part file that was not there before appears anywhere (the job finalizes into its
  staging folder). Returns that file's path relative to ``out``."""
  deadline = time.monotonic() + _KILL_TIMEOUT_SECONDS
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      pytest.fail(f"the run ended (rc {proc.returncode}) before it published a part file")
    for path in out.rglob("part-*"):
      if path.is_file() and "beam-temp-" not in str(path) and path.name not in before:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return str(path.relative_to(out))
    time.sleep(0.01)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  pytest.fail("no part file appeared before the timeout")


@pytest.fixture(scope="module")
def reruns(test_weights, tmp_path_factory):
  root = tmp_path_factory.mktemp("rerun")
  outcomes = _write_inputs(root / "in")
  out = root / "out"
  argv = ["--input", str(root / "in" / "*.wav"), "--output", str(out),
          "--checkpoint", test_weights.checkpoint, "--pca_params", test_weights.pca_params,
          "--batch_size", "8"]
  first = robust_fixtures.run_embed(argv, home=root / "home")
  assert first.returncode == 0, first.stderr[-3000:]
  after_first = robust_fixtures.read_outputs(out)
  state_first = _state(out)

  before = {name for names in state_first.values() for name in names}
  killed = _start(argv, root / "home")
  killed_at = _kill_after_first_new_part_file(killed, out, before)
  after_kill = robust_fixtures.read_outputs(out)
  state_kill = _state(out)
  listed = after_kill.run_record["outputs"]
  listed_clip_uris = sorted(r["uri"] for p in listed["vggish/clips"]
                            for r in pq.read_table(out / p).to_pylist())
  listed_files_exist = all((out / p).is_file() for sub in _SUBDIRS for p in listed[sub])

  final = robust_fixtures.run_embed(argv, home=root / "home")
  assert final.returncode == 0, final.stderr[-3000:]
  return dict(root=root, outcomes=outcomes, first=after_first, state_first=state_first,
              killed=killed, killed_at=killed_at, after_kill=after_kill, state_kill=state_kill,
              listed_clip_uris=listed_clip_uris, listed_files_exist=listed_files_exist,
              final=robust_fixtures.read_outputs(out), state_final=_state(out), out=out)


def _keyed_frames(outputs) -> dict[tuple[str, int], np.ndarray]:
  rows = outputs.rows("frames")
  keyed = {(r["uri"], r["frame_index"]): np.asarray(r["raw_embedding"], np.float32) for r in rows}
  assert len(keyed) == len(rows), "duplicate (uri, frame_index) frames"
  return keyed


def _assert_complete_and_unique(outputs, root: Path, outcomes: dict[str, str]):
  expected = {str(root / "in" / name): where for name, where in outcomes.items()}
  for where in ("clips", "errors"):
    uris = [r["uri"] for r in outputs.rows(where)]
    assert len(uris) == len(set(uris)), f"duplicate rows in {where}/"
    assert set(uris) == {u for u, w in expected.items() if w == where}
  clips = {r["uri"]: r["num_frames"] for r in outputs.rows("clips")}
  per_uri = collections.Counter(uri for uri, _ in _keyed_frames(outputs))
  assert dict(per_uri) == clips
  counts = outputs.model_counts
  assert (counts["files_embedded"], counts["errors"], counts["frames"]) == (
      len(clips), len(outputs.rows("errors")), sum(clips.values()))


def test_first_run_is_complete(reruns):
  _assert_complete_and_unique(reruns["first"], reruns["root"], reruns["outcomes"])


def test_run_killed_with_sigkill_after_publishing_a_part_file_left_run_json_on_the_last_complete_run(
    reruns):
  assert reruns["killed"].returncode == -signal.SIGKILL
  first_id = reruns["first"].run_record["run_id"]
  assert reruns["after_kill"].run_record["run_id"] == first_id
  # The kill really happened mid-write: the killed run's files sit in its staging folder...
  assert reruns["killed_at"].startswith("_audiobeam/staging/")
  killed_id = reruns["killed_at"].split("/")[2]
  assert f"runs/{killed_id}.started.json" in reruns["state_kill"]["_audiobeam"]
  # ... and a reader of the folders, or of run.json, sees exactly run 1, intact.
  for sub in _SUBDIRS:
    assert reruns["state_kill"][sub] == reruns["state_first"][sub]
  listed = reruns["after_kill"].run_record["outputs"]
  for sub in _SUBDIRS:
    assert listed[sub] and all(Path(p).name.startswith(f"part-{first_id}-") for p in listed[sub])
  assert reruns["listed_files_exist"]
  assert reruns["listed_clip_uris"] == sorted(r["uri"] for r in reruns["first"].rows("clips"))


def test_rerun_after_a_kill_yields_complete_non_duplicated_outputs(reruns):
  _assert_complete_and_unique(reruns["final"], reruns["root"], reruns["outcomes"])


def test_rerun_leaves_only_its_own_part_files_and_no_temp_dirs(reruns):
  final_id = reruns["final"].run_record["run_id"]
  assert final_id != reruns["first"].run_record["run_id"]
  for sub in _SUBDIRS:
    names = reruns["state_final"][sub]
    assert names, sub
    assert all(n.startswith(f"part-{final_id}-") for n in names), (sub, names)
  # The ledger holds the final run's record and manifest only: no staging, no lock.
  assert reruns["state_final"]["_audiobeam"] == [f"manifests/run-{final_id}.jsonl",
                                                 f"runs/{final_id}.json"]


def test_rerun_reproduces_the_first_runs_embeddings(reruns):
  first = _keyed_frames(reruns["first"])
  final = _keyed_frames(reruns["final"])
  assert first.keys() == final.keys()
  worst = max(float(np.max(np.abs(first[k] - final[k]))) for k in first)
  assert worst <= 1e-5
