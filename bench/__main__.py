"""``python -m bench``: ours vs the reference-style chain, side by side, in one invocation.

Builds (or reuses) a synthetic corpus and deterministic *test* weights, then runs, each
as a whole process with start-up included and timed by wall clock:

  baseline   python -m bench.baseline  (reference-style chain, one file at a time)
  ours       python -m pipelines.embed  --direct_running_mode=multi_processing
             --direct_num_workers=N (N = --workers, default 2)
  ours (1p)  python -m pipelines.embed  --direct_running_mode=in_memory (single process)
  profile    python -m bench.profile  (our library functions stage by stage, on a subset)

and checks parity of each "ours" run against the baseline (raw <= 1e-4, uint8 >= 99.9%
identical). Prints the report and writes it as JSON (``--report``, default
``bench/results/bench-<timestamp>.json``). Not a test: nothing asserts a speed. Exit
status 1 if a run fails or parity fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import parity as parity_lib
from bench import report as report_lib
from bench.corpus import CorpusSpec, build_corpus, default_cache_dir

__all__ = ["main", "parse_args"]

_REPO_ROOT = Path(__file__).resolve().parent.parent
_QUICK = dict(long_files=1, long_minutes=1.0, clips=8, clip_seconds=10.0)
_WEIGHTS_NOTE = ("deterministic random TEST weights (vggish.testing.write_test_weights, seed 0) "
                 "in the published checkpoint format; the real weights are not downloadable "
                 "here, and speed does not depend on weight values")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  g = p.add_argument_group("corpus")
  g.add_argument("--long_files", type=int, default=CorpusSpec.long_files)
  g.add_argument("--long_minutes", type=float, default=CorpusSpec.long_minutes)
  g.add_argument("--clips", type=int, default=CorpusSpec.clips)
  g.add_argument("--clip_seconds", type=float, default=CorpusSpec.clip_seconds)
  g.add_argument("--quick", action="store_true",
                 help="small corpus (1 x 1 min + 8 x 10 s) for a fast check; overrides the "
                      "corpus flags.")
  g.add_argument("--cache_dir", default=None,
                 help=f"where corpus, weights and run outputs live (default "
                      f"$AUDIOBEAM_BENCH_DIR or {default_cache_dir()}).")
  g = p.add_argument_group("runs")
  g.add_argument("--batch_size", type=int, default=64, help="our pipeline's --batch_size.")
  g.add_argument("--workers", type=int, default=2,
                 help="--direct_num_workers for the multi-processing run.")
  g.add_argument("--runs", default="baseline,ours,ours_single,profile",
                 help="comma-separated subset of baseline,ours,ours_single,profile.")
  g.add_argument("--profile_seconds", type=float, default=900.0,
                 help="audio seconds of the corpus (whole files, in order: long files "
                      "first, then clips) the stage profile runs on.")
  g.add_argument("--resampler", default="kaiser_best",
                 help="our --resampler (the contract needs kaiser_best; others are reported "
                      "with their parity, which may fail).")
  g.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                 help="cpu: hide GPUs from every run (CUDA_VISIBLE_DEVICES=''); gpu: require "
                      "one and sample its utilization with nvidia-smi; auto: leave as is.")
  g.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                 help="extra environment for our runs (e.g. TF_NUM_INTRAOP_THREADS=1); "
                      "recorded in the report.")
  g.add_argument("--pipeline_arg", action="append", default=[], metavar="ARG",
                 help="extra argument passed to pipelines.embed (repeatable).")
  g.add_argument("--checkpoint", default=None,
                 help="VGGish checkpoint for every run (default: test weights written once "
                      "into the cache dir).")
  g.add_argument("--pca_params", default=None, help="PCA .npz to go with --checkpoint.")
  g = p.add_argument_group("output")
  g.add_argument("--report", default=None, help="JSON report path.")
  g.add_argument("--keep_outputs", action="store_true", help="keep the runs' output dirs.")
  args = p.parse_args(argv)
  if args.quick:
    for k, v in _QUICK.items():
      setattr(args, k, v)
  args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
  unknown = set(args.runs) - {"baseline", "ours", "ours_single", "profile"}
  if unknown:
    p.error(f"unknown --runs {sorted(unknown)}")
  if (args.checkpoint is None) != (args.pca_params is None):
    p.error("pass both --checkpoint and --pca_params, or neither (test weights).")
  for item in args.env:
    if "=" not in item:
      p.error(f"--env expects KEY=VALUE, got {item!r}")
  return args


def _log(msg: str) -> None:
  print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def _proc_stat_busy() -> tuple[float, float] | None:
  """(busy jiffies, total jiffies) of the whole machine, or None off Linux."""
  try:
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
  except (OSError, ValueError):
    return None
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
  return sum(fields) - idle, sum(fields)


class _GpuSampler:
  """Samples GPU utilization (%) with nvidia-smi every 200 ms while running."""

  def __init__(self):
    self._samples: list[float] = []
    self._proc = None
    self._thread = None

  def __enter__(self):
    if shutil.which("nvidia-smi") is None:
      return self
    self._proc = subprocess.Popen(
        ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
         "-lms", "200"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def read():
      for line in self._proc.stdout:
        try:
          self._samples.append(float(line.split(",")[0]))
        except ValueError:
          pass

    self._thread = threading.Thread(target=read, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc):
    if self._proc is not None:
      self._proc.terminate()
      self._proc.wait()

  @property
  def mean_busy_fraction(self) -> float | None:
    return sum(self._samples) / len(self._samples) / 100.0 if self._samples else None


def _run_process(label: str, cmd: list[str], env: dict, log_path: Path, gpu: bool) -> dict:
  """Runs ``cmd`` to completion; returns wall seconds, CPU seconds, machine busy cores."""
  _log(f"{label}: {' '.join(cmd)}")
  usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
  stat0 = _proc_stat_busy()
  load0 = os.getloadavg()
  with open(log_path, "w") as log, _GpuSampler() if gpu else _NullContext() as sampler:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=_REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
  usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
  stat1 = _proc_stat_busy()
  result = {
      "label": label,
      "command": cmd,
      "returncode": proc.returncode,
      "wall_seconds": wall,
      "cpu_seconds": (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime),
      "load_before": list(load0),
      "log": str(log_path),
  }
  if stat0 and stat1 and stat1[1] > stat0[1]:
    cpus = os.cpu_count() or 1
    result["machine_busy_cores"] = cpus * (stat1[0] - stat0[0]) / (stat1[1] - stat0[1])
  if gpu and sampler is not None:
    result["gpu_busy_fraction"] = sampler.mean_busy_fraction
  if proc.returncode != 0:
    tail = log_path.read_text(errors="replace")[-4000:]
    _log(f"{label} FAILED (exit {proc.returncode}); log {log_path}:\n{tail}")
  else:
    _log(f"{label}: {wall:.1f} s")
  return result


class _NullContext:
  def __enter__(self):
    return None

  def __exit__(self, *exc):
    return False


def _ensure_weights(cache_dir: Path) -> tuple[str, str]:
  from vggish import testing

  directory = cache_dir / "test-weights-seed0"
  ckpt, pca = directory / testing.CHECKPOINT_FILENAME, directory / testing.PCA_FILENAME
  done = directory / "DONE"
  if not done.exists():
    _log(f"writing test weights to {directory}")
    ckpt_path, pca_path = testing.write_test_weights(str(directory), seed=0)
    ckpt, pca = Path(ckpt_path), Path(pca_path)
    done.write_text(json.dumps({"checkpoint": str(ckpt), "pca_params": str(pca)}))
  else:
    recorded = json.loads(done.read_text())
    ckpt, pca = Path(recorded["checkpoint"]), Path(recorded["pca_params"])
  return str(ckpt), str(pca)


def _pipeline_batches(output_dir: Path, batch_size: int, flops_per_patch: int) -> dict | None:
  """Batch statistics of our run from its ``run.json`` (RunInference's batch-size
  distribution, summed by the pipeline into ``vggish_model_calls`` /
  ``vggish_model_call_inputs``)."""
  try:
    metrics = json.loads((output_dir / "run.json").read_text()).get("metrics", {})
  except (OSError, ValueError):
    return None
  calls, patches = metrics.get("vggish_model_calls"), metrics.get("vggish_model_call_inputs")
  if not calls or patches is None:
    return None
  stats = {"calls": calls, "patches": patches, "batch_size": batch_size,
           "mean_batch_size": patches / calls, "fill": patches / (calls * batch_size),
           # min = max = batch_size: only a bundle's last call can be short.
           "note": "batches have exactly batch_size patches but for each worker bundle's last"}
  latency_us = metrics.get("model_latency_micro_secs")
  if latency_us:
    stats["model_seconds"] = latency_us / 1e6
    stats["model_gflops_per_second"] = flops_per_patch * patches / (latency_us / 1e6) / 1e9
  return stats


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  cache_dir = Path(args.cache_dir or default_cache_dir())
  cache_dir.mkdir(parents=True, exist_ok=True)
  spec = CorpusSpec(long_files=args.long_files, long_minutes=args.long_minutes,
                    clips=args.clips, clip_seconds=args.clip_seconds)
  corpus = build_corpus(spec, str(cache_dir), log=_log)
  paths = [f.path for f in corpus.files]
  if args.checkpoint:
    ckpt, pca = args.checkpoint, args.pca_params
    weights_note = f"given: {ckpt} + {pca}"
  else:
    ckpt, pca = _ensure_weights(cache_dir)
    weights_note = _WEIGHTS_NOTE
  from vggish.network import flops_per_patch

  flops = flops_per_patch()
  work = Path(tempfile.mkdtemp(prefix="run-", dir=cache_dir))
  manifest = work / "files.json"
  manifest.write_text(json.dumps(paths))
  subset, seconds = [], 0.0
  for f in corpus.files:
    if seconds >= args.profile_seconds:
      break
    subset.append(f.path)
    seconds += f.duration_seconds
  profile_manifest = work / "profile_files.json"
  profile_manifest.write_text(json.dumps(subset))

  base_env = dict(os.environ)
  base_env["PYTHONPATH"] = os.pathsep.join(
      [str(_REPO_ROOT)] + ([base_env["PYTHONPATH"]] if base_env.get("PYTHONPATH") else []))
  base_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if args.device == "cpu":
    base_env["CUDA_VISIBLE_DEVICES"] = ""
  gpu = args.device == "gpu"
  if gpu and shutil.which("nvidia-smi") is None:
    _log("--device gpu but nvidia-smi is not on PATH: no GPU here.")
    return 2
  ours_env = dict(base_env)
  ours_env.update(item.split("=", 1) for item in args.env)

  # Warm the page cache so the first run does not pay for cold reads.
  for path in paths:
    with open(path, "rb") as f:
      while f.read(1 << 24):
        pass

  machine = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "device": args.device,
             "platform": platform.platform(), "python": platform.python_version(),
             "load_before": list(os.getloadavg())}
  runs: dict[str, dict] = {}
  python = sys.executable
  baseline_outputs = None
  if "baseline" in args.runs:
    out = work / "baseline.npz"
    run = _run_process("baseline (reference-style, 1 process)",
                       [python, "-m", "bench.baseline", "--manifest", str(manifest),
                        "--checkpoint", ckpt, "--pca_params", pca, "--output", str(out)],
                       base_env, work / "baseline.log", gpu)
    if run["returncode"] == 0:
      from bench.baseline import load_result

      baseline_outputs, timings = load_result(str(out))
      run.update(timings)
      run["audio_seconds_per_second"] = timings["audio_seconds"] / run["wall_seconds"]
      run["other_seconds"] = (run["wall_seconds"] - timings["setup_seconds"]
                              - sum(timings["stage_seconds"].values()))
      model_s = timings["stage_seconds"]["model"]
      run["model_gflops_per_second"] = flops * timings["patches"] / model_s / 1e9 if model_s else None
    runs["baseline"] = run

  audio_seconds = corpus.total_seconds
  ours_modes = [("ours", f"ours (Beam multi_processing x{args.workers})",
                 ["--direct_running_mode=multi_processing",
                  f"--direct_num_workers={args.workers}"]),
                ("ours_single", "ours (Beam in_memory, 1 process)",
                 ["--direct_running_mode=in_memory", "--direct_num_workers=1"])]
  parities = {}
  for name, label, runner_args in ours_modes:
    if name not in args.runs:
      continue
    out_dir = work / name
    cmd = [python, "-m", "pipelines.embed", "--input", corpus.glob, "--output", str(out_dir),
           "--checkpoint", ckpt, "--pca_params", pca, "--batch_size", str(args.batch_size),
           "--resampler", args.resampler, *runner_args, *args.pipeline_arg]
    run = _run_process(label, cmd, ours_env, work / f"{name}.log", gpu)
    run["audio_seconds"] = audio_seconds
    if run["returncode"] == 0:
      run["audio_seconds_per_second"] = audio_seconds / run["wall_seconds"]
      run["batches"] = _pipeline_batches(out_dir, args.batch_size, flops)
      if baseline_outputs is not None:
        parities[name] = parity_lib.compare(
            baseline_outputs, parity_lib.read_frames(str(out_dir))).as_dict()
    if not args.keep_outputs:
      shutil.rmtree(out_dir, ignore_errors=True)
    runs[name] = run

  report: dict = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": machine,
      "corpus": {"description": corpus.describe(), "files": len(paths),
                 "audio_seconds": audio_seconds, "spec": dataclasses.asdict(spec),
                 "directory": corpus.directory},
      "weights": weights_note,
      "flops_per_patch": flops,
      "settings": {"batch_size": args.batch_size, "workers": args.workers,
                   "resampler": args.resampler, "env": args.env,
                   "pipeline_args": args.pipeline_arg},
      "runs": runs,
      "parity": parities,
  }
  if "profile" in args.runs:
    out = work / "profile.json"
    run = _run_process("ours, stage profile", [
        python, "-m", "bench.profile", "--manifest", str(profile_manifest), "--checkpoint", ckpt,
        "--pca_params", pca, "--batch_size", str(args.batch_size), "--resampler", args.resampler,
        "--output", str(out)], ours_env, work / "profile.log", gpu)
    if run["returncode"] == 0:
      report["ours_profile"] = {**json.loads(out.read_text()), "wall_seconds": run["wall_seconds"]}
  machine["load_after"] = list(os.getloadavg())
  base_rate = runs.get("baseline", {}).get("audio_seconds_per_second")
  for name in ("ours", "ours_single"):
    rate = runs.get(name, {}).get("audio_seconds_per_second")
    if base_rate and rate:
      report["ratio"], report["ratio_run"] = rate / base_rate, runs[name]["label"]
      break
  if gpu:
    report["gpu"] = {name: run.get("gpu_busy_fraction") for name, run in runs.items()}
  else:
    report["gpu"] = None
  report_path = Path(args.report) if args.report else (
      _REPO_ROOT / "bench" / "results" /
      f"bench-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
  report_path.parent.mkdir(parents=True, exist_ok=True)
  report["report_path"] = str(report_path)
  report_path.write_text(json.dumps(report, indent=1, default=str))
  print(report_lib.format_text(report))
  print("\nREADME table:\n" + report_lib.format_markdown(report))
  if not args.keep_outputs:
    for name in ("baseline.npz",):
      (work / name).unlink(missing_ok=True)
  failed = [n for n, r in runs.items() if r["returncode"] != 0]
  bad_parity = [n for n, p in parities.items() if not p["ok"]]
  if failed or bad_parity:
    _log(f"failed runs: {failed}; parity failures: {bad_parity}")
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
