"""The GPU check (``bench/gpu_check.py``) runs where the GPU machine runs it: without TensorFlow.

The borrowed GPU machines have PyTorch but no TensorFlow, no Beam and maybe no PyAV. The
smoke test runs the whole check on the CPU (``--device cpu``, the tiny corpus) in a
subprocess whose ``tensorflow``, ``apache_beam`` and ``av`` imports fail (an import
BLOCKER package put first on PYTHONPATH, inherited by the check's worker processes): it
must build the same weights from the seed, match the reference computed with the
TensorFlow model, skip the M4A clip and say why, and time every stage. Speed is not
asserted (that is the check's job on the GPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import gpu_check

pytest.importorskip("torch")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BLOCKED = ("tensorflow", "apache_beam", "av")


def _import_blocker(directory) -> str:
  for name in _BLOCKED:
    package = directory / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f"raise ImportError('{name} is blocked: the GPU machine does not have it')\n")
  return str(directory)


def test_cpu_run_without_tensorflow_beam_or_pyav(tmp_path):
  env = dict(os.environ, PYTHONPATH=_import_blocker(tmp_path / "block"))
  env.pop("OUT", None)
  report_path = tmp_path / "report.json"
  run = subprocess.run(
      [sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--corpus", "tiny",
       "--workers", "2", "--cache_dir", str(tmp_path / "cache"), "--output", str(report_path)],
      cwd=_ROOT, env=env, capture_output=True, text=True, timeout=240)
  assert run.returncode == 0, run.stderr[-4000:]
  report = json.loads(report_path.read_text())
  assert report["ok"] and report["failures"] == []
  assert report["versions"]["av"].startswith("unavailable")
  # The weights made from the seed in this process equal those the reference was made with.
  assert report["weights"]["ok"] and report["corpus"]["sha256_ok"]
  assert report["tf32"]["cuda.matmul.allow_tf32"] is False
  assert report["tf32"]["cudnn.allow_tf32"] is False
  parity = report["parity"]
  # FFmpeg decodes M4A, and MP3 (libsndfile 1.2.2 streams MP3 wrongly): both need PyAV.
  assert sorted(parity["skipped"]) == ["chirp_48k_stereo.mp3", "tones_44k_stereo.m4a"]
  assert all("av" in reason for reason in parity["skipped"].values())
  examples = parity["examples"]["files"]
  assert len(examples) == 6 and all(r["ok"] for r in examples.values())  # 8 clips - 2 skipped
  assert parity["corpus/tiny"]["summary"]["files"] == 3
  overall = parity["overall"]
  assert overall["ok"] and overall["raw_max_abs_diff"] <= 1e-4
  assert overall["uint8_identical_fraction"] >= 0.999 and overall["patches"] > 20
  assert report["model"]["batch_sizes"]["4"]["patches_per_second"] > 0
  assert report["front_end"]["one_worker"]["audio_seconds_per_cpu_second"] > 0
  assert report["front_end"]["all_workers"]["workers"] == 2
  assert report["front_end"]["one_process_threads"]["threads"] == 2
  for key, shape in (("end_to_end", "processes"), ("end_to_end_threads", "threads")):
    e2e = report[key]
    assert e2e["shape"] == shape and e2e["patches"] > 0 and e2e["audio_seconds_per_second"] > 0
  assert report["summary"]["parity_ok"] and report["summary"]["tf32_off"]


def test_parity_judgement_catches_a_changed_value_and_a_missing_patch():
  from vggish.postprocess import PCAParams

  rng = np.random.default_rng(0)
  reference = rng.standard_normal((5, 128)).astype(np.float32) * 0.5
  pca = PCAParams(np.eye(128), np.zeros(128))
  same = gpu_check._compare(reference.copy(), reference, pca)
  assert same["ok"] and same["raw_max_abs_diff"] == 0.0
  off = reference.copy()
  off[2, 7] += 1e-3  # TF32-sized error.
  changed = gpu_check._compare(off, reference, pca)
  assert not changed["ok"] and changed["raw_max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
  missing = gpu_check._compare(reference[:4], reference, pca)
  assert not missing["ok"] and "shape" in missing["problem"]
  summary = gpu_check._summarize({"/a.wav": same, "/b.wav": changed})
  assert not summary["ok"] and summary["failed_files"] == ["b.wav"]


def test_missing_reference_is_a_loud_failure(tmp_path, capsys):
  report_path = tmp_path / "r.json"
  status = gpu_check.main(["--device", "cpu", "--reference", str(tmp_path / "none.npz"),
                           "--output", str(report_path)])
  assert status == 2
  report = json.loads(report_path.read_text())
  assert not report["ok"] and "FileNotFoundError" in report["failures"][0]
  assert "GPU CHECK FAILED" in capsys.readouterr().err
