"""Smoke test of the benchmark (``python -m bench``) on a tiny corpus.

Not a timed test: it checks that the bench builds its corpus, runs the baseline and our
pipeline as whole processes, reads our Parquet output back, finds it at parity with
the baseline and prints/writes its report. It asserts no speed.
"""

from __future__ import annotations

import json

import pytest

from bench import __main__ as bench_main
from bench import parity as parity_lib
from bench.corpus import CorpusSpec, build_corpus


def test_corpus_is_deterministic_and_cached(tmp_path):
  spec = CorpusSpec(long_files=1, long_minutes=0.05, clips=2, clip_seconds=1.5)
  first = build_corpus(spec, str(tmp_path / "a"), log=lambda *_: None)
  second = build_corpus(spec, str(tmp_path / "b"), log=lambda *_: None)
  assert [f.duration_seconds for f in first.files] == [3.0, 1.5, 1.5]
  for a, b in zip(first.files, second.files):
    with open(a.path, "rb") as fa, open(b.path, "rb") as fb:
      assert fa.read() == fb.read()
  again = build_corpus(spec, str(tmp_path / "a"), log=pytest.fail)  # reused, not rewritten
  assert again.files == first.files


def test_parity_detects_a_changed_value_and_a_missing_frame():
  import numpy as np

  raw = np.linspace(-1, 1, 3 * 128, dtype=np.float32).reshape(3, 128)
  quantized = np.arange(3 * 128, dtype=np.int64).reshape(3, 128).astype(np.uint8)
  baseline = {"/a.wav": (raw, quantized)}
  same = parity_lib.compare(baseline, {"/a.wav": (np.arange(3), raw, quantized)})
  assert same.ok and same.raw_max_abs_diff == 0.0 and same.uint8_identical_fraction == 1.0
  off = raw.copy()
  off[1, 5] += 1e-3
  changed = parity_lib.compare(baseline, {"/a.wav": (np.arange(3), off, quantized)})
  assert not changed.ok and changed.raw_max_abs_diff == pytest.approx(1e-3, rel=1e-3)
  missing = parity_lib.compare(baseline, {"/a.wav": (np.arange(2), raw[:2], quantized[:2])})
  assert not missing.ok and missing.missing_frames == 1


def test_bench_runs_side_by_side_and_reports_parity(tmp_path, test_weights, capsys):
  report_path = tmp_path / "report.json"
  status = bench_main.main([
      "--long_files", "1", "--long_minutes", "0.1", "--clips", "2", "--clip_seconds", "2",
      "--runs", "baseline,ours_single", "--batch_size", "4",
      "--cache_dir", str(tmp_path / "cache"), "--report", str(report_path),
      "--checkpoint", test_weights.checkpoint, "--pca_params", test_weights.pca_params,
  ])
  printed = capsys.readouterr().out
  assert status == 0, printed
  report = json.loads(report_path.read_text())
  assert set(report["runs"]) == {"baseline", "ours_single"}
  for run in report["runs"].values():
    assert run["returncode"] == 0
    assert run["audio_seconds_per_second"] > 0
  assert report["parity"]["ours_single"]["ok"]
  assert report["parity"]["ours_single"]["frames"] == 6 + 2 * 2  # 6 s -> 6 patches, 2 s -> 2 each
  assert set(report["runs"]["baseline"]["stage_seconds"]) == {
      "decode", "resample", "log_mel", "model", "postprocess"}
  assert "parity ours (Beam in_memory, 1 process) vs baseline: OK" in printed
  assert "| run | wall s | audio-s per wall-s | vs baseline |" in printed
