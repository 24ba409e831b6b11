"""Smoke test of ``python -m bench.models`` (AST and CLMR vs their one-file-at-a-time chains).

Not a timed test: on a tiny corpus (real WAV files written by ``bench.corpus``, test
weights written by the models' own tools, the tiny AST test size) it runs the baseline
chain, AST's exact chain and our pipeline as whole processes, reads our Parquet back,
and checks the report's structure and that the outputs agree where they should. It
asserts no speed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import models as bench_models

_RUN_KEYS = {"label", "command", "returncode", "wall_seconds", "cpu_seconds", "files",
             "audio_seconds", "covered_audio_seconds", "audio_seconds_per_second",
             "covered_audio_seconds_per_second", "files_per_second"}


def _run(tmp_path, model: str, runs: str, capsys, *more: str) -> tuple[dict, str]:
  report_path = tmp_path / f"{model}.json"
  status = bench_models.main([
      "--model", model, "--long_files", "1", "--long_minutes", "0.3", "--clips", "2",
      "--clip_seconds", "4", "--ast_size", "test", "--runs", runs,
      "--cache_dir", str(tmp_path / "cache"), "--report", str(report_path), *more])
  printed = capsys.readouterr().out
  assert status == 0, printed
  return json.loads(report_path.read_text()), printed


def test_clmr_bench_runs_side_by_side_with_window_parity(tmp_path, capsys):
  report, printed = _run(tmp_path, "clmr", "baseline,ours_single", capsys, "--repeat", "2")
  assert report["model"] == "clmr" and set(report["runs"]) == {"baseline", "ours_single"}
  assert len(report["machine"]["load_before"]) == 3
  for run in report["runs"].values():
    assert run["returncode"] == 0 and _RUN_KEYS <= set(run)
    assert run["files"] == 3 and run["audio_seconds"] == pytest.approx(18 + 2 * 4)
    # Two interleaved rounds; the headline is the faster one.
    assert len(run["wall_seconds_all"]) == 2
    assert run["wall_seconds"] == min(run["wall_seconds_all"])
  # 18 s at 22050 Hz -> 6 whole windows, 4 s -> 1 each: both chains embed the same 8.
  assert report["runs"]["baseline"]["model_inputs"] == 8
  assert report["runs"]["ours_single"]["frames"] == 8
  assert report["runs"]["baseline"]["covered_audio_seconds"] == pytest.approx(8 * 59049 / 22050)
  parity = report["parity"]["ours_single vs baseline (per window)"]
  assert parity["ok"] and parity["windows"] == 8
  assert parity["missing_windows"] == parity["extra_windows"] == 0
  assert parity["max_abs_diff"] <= bench_models.CONTRACT_TOLERANCE
  assert report["resampling"]["max_abs_diff"] < 1e-12      # resampy == our kaiser_best
  assert set(report["ratios"]["ours_single"]) >= {"audio_seconds_per_second",
                                                  "covered_audio_seconds_per_second"}
  assert report["fair_metric"] == "audio_seconds_per_second"
  assert "| run | wall s | audio-s per wall-s |" in printed


def test_ast_bench_reports_both_rates_and_exact_parity(tmp_path, capsys):
  report, printed = _run(tmp_path, "ast", "baseline,exact,ours_single", capsys)
  runs = report["runs"]
  assert set(runs) == {"baseline", "exact", "ours_single"}
  base, ours = runs["baseline"], runs["ours_single"]
  # auditus sees at most 10.255 s of each file; ours all of it.
  assert base["covered_audio_seconds"] == pytest.approx(10.255 + 2 * 4)
  assert ours["covered_audio_seconds"] == pytest.approx(18 + 2 * 4)
  assert base["model_inputs"] == 3 and ours["frames"] == 2 + 1 + 1
  assert report["fair_metric"] == "covered_audio_seconds_per_second"
  exact = report["parity"]["ours_single frame 0 vs exact chain"]
  assert exact["ok"] and exact["compared"] == 3
  assert exact["max_abs_diff"] <= bench_models.CONTRACT_TOLERANCE
  assert runs["exact"]["notes"]["fbank"].endswith("float64")
  by_design = report["parity"]["ours_single frame 0 vs baseline (auditus-style)"]
  assert by_design["ok"] is None and by_design["compared"] == 3
  # np.interp + numpy fbank really change the numbers: the comparison can tell.
  assert by_design["max_abs_diff"] > bench_models.CONTRACT_TOLERANCE
  assert report["resampling"]["max_abs_diff"] > 1e-3        # np.interp is not kaiser_best
  assert "differs by design" in printed


def test_window_comparison_detects_changes_and_missing_windows():
  theirs = {"/a.wav": np.linspace(-1, 1, 3 * 4, dtype=np.float32).reshape(3, 4)}
  same = bench_models.compare_windows(theirs, {"/a.wav": (np.arange(3), theirs["/a.wav"])})
  assert same["ok"] and same["max_abs_diff"] == 0.0 and same["windows"] == 3
  off = theirs["/a.wav"].copy()
  off[2, 1] += 1e-3
  changed = bench_models.compare_windows(theirs, {"/a.wav": (np.arange(3), off)})
  assert not changed["ok"] and changed["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
  short = bench_models.compare_windows(theirs, {"/a.wav": (np.arange(2), off[:2])})
  assert not short["ok"] and short["missing_windows"] == 1
  first = bench_models.compare_first_window({"/a.wav": off[0]}, {"/a.wav": (np.arange(3), off)})
  assert first["ok"] and first["compared"] == 1
  absent = bench_models.compare_first_window({"/b.wav": off[0]}, {"/a.wav": (np.arange(3), off)})
  assert absent["ok"] is False and absent["missing_files"] == 1
