"""Peak memory of the pipeline on one multi-hour file (default: 3 h, 48 kHz, stereo).

Writes a 16-bit PCM WAV of the requested length in blocks (the generator itself stays
small), then runs ``python -m pipelines.embed`` on it with the local runner as a child
process and reports the child's peak resident set size (``ru_maxrss`` of the waited
child, plus an RSS time line sampled from /proc), the wall time and what was written.
Exits 1 if the peak exceeds ``--limit_mb`` (default 2048) or the outputs are incomplete.

    python tests/measure_memory.py                       # 3 h 48 kHz stereo, ~2.1 GB WAV
    python tests/measure_memory.py --hours 0.5 --keep /tmp/mem

Uses the deterministic TEST weights (``vggish.testing.write_test_weights``): memory and
time do not depend on the weight values. Not part of the default test run (minutes of
CPU and 2 GB of disk); ``tests/test_long_files.py`` runs it when
``AUDIOBEAM_MEASURE_MEMORY=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["write_long_wav", "measure", "main"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


def write_long_wav(path: Path, hours: float, sample_rate_hz: int, channels: int,
                   block_seconds: float = 60.0, seed: int = 0) -> int:
  """Writes ``hours`` of a tone + noise signal as 16-bit PCM WAV; returns frames written.

  Each channel differs (frequency and noise). Memory: one block at a time.
  """
  total_frames = int(round(hours * 3600 * sample_rate_hz))
  block_frames = int(block_seconds * sample_rate_hz)
  rng = np.random.default_rng(seed)
  with sf.SoundFile(str(path), "w", samplerate=sample_rate_hz, channels=channels,
                    subtype="PCM_16", format="WAV") as f:
    written = 0
    while written < total_frames:
      n = min(block_frames, total_frames - written)
      t_seconds = (written + np.arange(n)) / sample_rate_hz
      block = np.empty((n, channels), np.float32)
      for c in range(channels):
        freq_hz = 220.0 * (c + 1) * (1.0 + 0.5 * np.sin(2 * np.pi * t_seconds / 97.0))
        block[:, c] = 0.3 * np.sin(2 * np.pi * freq_hz * t_seconds) + 0.05 * rng.standard_normal(n)
      f.write(block)
      written += n
  return total_frames


def _status_mb(pid: int, key: str) -> float | None:
  """``VmRSS`` (now) or ``VmHWM`` (peak so far, since exec) of ``pid`` in MB."""
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith(key + ":"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    return None
  return None


def measure(audio_path: Path, output: Path, checkpoint: str, pca_params: str,
            extra_args: list[str] | None = None) -> dict:
  """Runs the pipeline on ``audio_path``; returns peak RSS (MB), wall time and counts."""
  argv = [sys.executable, "-m", "pipelines.embed", "--input", str(audio_path), "--output",
          str(output), "--checkpoint", checkpoint, "--pca_params", pca_params,
          "--format", "parquet", *(extra_args or [])]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  samples: list[tuple[float, float]] = []
  hwm = [0.0]
  started = time.monotonic()
  log_out = tempfile.TemporaryFile(mode="w+")
  log_err = tempfile.TemporaryFile(mode="w+")
  proc = subprocess.Popen(argv, cwd=_REPO_ROOT, env=env, stdout=log_out, stderr=log_err)
  stop = threading.Event()

  def sample():
    while not stop.is_set():
      rss = _status_mb(proc.pid, "VmRSS")
      peak = _status_mb(proc.pid, "VmHWM")
      if rss is not None:
        samples.append((time.monotonic() - started, rss))
      if peak is not None:
        hwm[0] = max(hwm[0], peak)
      stop.wait(0.25)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  # os.wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in other children).
  # Its ru_maxrss also counts the RSS inherited at fork, so this process stays small.
  _, status, usage = os.wait4(proc.pid, 0)
  proc.returncode = os.waitstatus_to_exitcode(status)
  stop.set()
  sampler.join()
  wall_seconds = time.monotonic() - started
  log_out.seek(0)
  log_err.seek(0)
  stdout, stderr = log_out.read(), log_err.read()
  record = {}
  run_json = output / "run.json"
  if run_json.exists():
    record = json.loads(run_json.read_text())
  peak_sampled = max((rss for _, rss in samples), default=0.0)
  return {
      "returncode": proc.returncode,
      "peak_rss_mb": usage.ru_maxrss / 1024.0,  # Linux: kilobytes
      "peak_rss_sampled_mb": peak_sampled,
      "peak_vmhwm_mb": hwm[0],  # the kernel's own peak, read until shortly before exit
      "user_cpu_seconds": usage.ru_utime,
      "system_cpu_seconds": usage.ru_stime,
      "wall_seconds": wall_seconds,
      "counts": record.get("counts"),
      "rss_timeline_mb": [(round(t, 1), round(r)) for t, r in samples[:: max(1, len(samples) // 40)]],
      "stdout": stdout[-2000:],
      "stderr_tail": stderr[-3000:] if proc.returncode else "",
  }


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--hours", type=float, default=3.0)
  parser.add_argument("--rate", type=int, default=48000, help="sample rate of the file (Hz)")
  parser.add_argument("--channels", type=int, default=2)
  parser.add_argument("--limit_mb", type=float, default=2048.0)
  parser.add_argument("--keep", metavar="DIR", help="work here and keep the files")
  parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
  args, extra = parser.parse_known_args(argv)

  work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="audiobeam-mem-"))
  work.mkdir(parents=True, exist_ok=True)
  try:
    audio_path = work / f"long_{args.hours:g}h_{args.rate}hz_{args.channels}ch.wav"
    t0 = time.monotonic()
    frames = write_long_wav(audio_path, args.hours, args.rate, args.channels)
    print(f"wrote {audio_path} ({audio_path.stat().st_size / 2**30:.2f} GiB, {frames} frames) "
          f"in {time.monotonic() - t0:.0f} s", flush=True)
    # In a child: importing TensorFlow here would make this process large, and a forked
    # child's ru_maxrss starts from its parent's RSS at fork time.
    subprocess.run([sys.executable, "-m", "vggish.testing", str(work / "weights")], check=True,
                   cwd=_REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = str(work / "weights" / "vggish_model.ckpt")
    pca = str(work / "weights" / "vggish_pca_params.npz")
    output = work / "out"
    if output.exists():
      shutil.rmtree(output)
    result = measure(audio_path, output, checkpoint, pca, extra)
    expected_frames = 1 + (int(args.hours * 3600 * 16000) - 15600) // 15360
    counts = ((result["counts"] or {}).get("models") or {}).get("vggish") or {}  # run.json
    ok = (result["returncode"] == 0 and counts.get("files_embedded") == 1
          and counts.get("frames") == expected_frames and result["peak_rss_mb"] < args.limit_mb)
    summary = {k: v for k, v in result.items() if k not in ("stdout", "stderr_tail")}
    summary.update(hours=args.hours, rate_hz=args.rate, channels=args.channels,
                   file_bytes=audio_path.stat().st_size, expected_frames=expected_frames,
                   limit_mb=args.limit_mb, ok=ok, cpus=os.cpu_count())
    print(json.dumps(summary, indent=1))
    if result["stderr_tail"]:
      print(result["stderr_tail"], file=sys.stderr)
    if args.json:
      Path(args.json).write_text(json.dumps(summary, indent=1))
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB (limit {args.limit_mb:.0f} MB), wall "
          f"{result['wall_seconds']:.0f} s, frames {counts.get('frames')} / {expected_frames}: "
          f"{'OK' if ok else 'FAIL'}")
    return 0 if ok else 1
  finally:
    if not args.keep:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  sys.exit(main())
