"""``python -m bench.models --model ast|clmr``: our pipeline vs the one-file-at-a-time chain.

For AST and CLMR, side by side, each run a whole process with start-up included and timed
by wall clock (``bench.__main__._run_process``), on the same files and the same weights:

  baseline      python -m bench.chains_ast_clmr --chain auditus|towhee   (one file at a time)
  exact         python -m bench.chains_ast_clmr --chain auditus_exact   (AST only; parity)
  ours_single   python -m pipelines.embed --model ast|clmr  (Beam in_memory, 1 process)
  ours          python -m pipelines.embed --model ast|clmr  (Beam multi_processing, N workers)

Corpus (``bench.corpus``, cached per spec in ``--cache_dir``): a few multi-minute files
plus many 10 s clips, 44.1 kHz stereo 16-bit WAV, deterministic. Weights: deterministic
random TEST weights written once into the cache dir by the models' own tools
(``models.ast.testing``: by default a checkpoint of the published size, 768 wide, 12
layers, 527 labels, because AST's speed depends on its size; ``models.clmr.testing``:
CLMR's SampleCNN has one size). ``--ast_checkpoint`` / ``--clmr_checkpoint`` use real ones.

What is measured (the JSON report holds it all; the table is printed at the end):

- ``audio-s/s``: seconds of audio in the files / wall seconds.
- ``covered audio-s/s``: seconds of audio that reach the model / wall seconds. The
  auditus-style chain looks only at the first 10.255 s of each file (one 1024-frame
  input), ours at all of it, so for AST this is the fair speed comparison: work done per
  second. ``files/s`` is reported too; it favours the chain that skips most of each long
  file (on clips up to 10.24 s both do the same work). For CLMR both cover exactly the
  same whole 59049-sample windows, so audio-s/s and covered audio-s/s give one ratio.
- ``CPU s``: user + system CPU seconds of the process and its children; ``busy cores``:
  the whole machine's mean busy CPUs during the run (other load shows here).
- ratios: ours' rate / the baseline's rate (> 1: ours is faster).
- ``--repeat N`` runs the whole sequence N times, interleaved; each run's headline is its
  fastest round (the least disturbed by other work), every round's wall time is kept
  (``wall_seconds_all``). This VM's speed drifts by ~15 % between identical runs.

"Same outputs" where the chains compute the same thing (``parity`` in the report):

- CLMR: ours' per-window embeddings (``clmr/frames/``) vs the Towhee-style chain's, window
  for window (both drop the trailing partial window; both resample with resampy's
  kaiser_best filter): max |diff| <= 1e-4 (the CLMR contract), no missing or extra window.
- AST: ours' first window (``ast/frames/`` frame 0, ``--ast_embedding mean_tokens``: the
  mean over output tokens, as the chain pools) vs the auditus-style chain: different by
  design (``np.interp`` vs kaiser_best resampling; transformers' numpy fbank vs the Kaldi
  fbank), reported, not checked; and vs the ``exact`` variant of the chain (our
  resampling + the Kaldi fbank, the same one-file-at-a-time model call): max |diff| <=
  1e-4, which shows the model part matches.

Not a test: nothing asserts a speed. Exit status 1 if a run fails or a parity check
that has a contract fails. Timings mean something only on a quiet machine: the load
average at the start is in the report (``machine.load_before``).

  python -m bench.models --model clmr --quick
  python -m bench.models --model ast --report bench/results/ast.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.__main__ import _cpu_model, _run_process
from bench.chains_ast_clmr import AST_WINDOW_SPAN_SECONDS, load_result
from bench.corpus import CorpusSpec, build_corpus, default_cache_dir

__all__ = ["MODELS", "CORPORA", "CONTRACT_TOLERANCE", "parse_args", "read_model_frames",
           "compare_windows", "compare_first_window", "resampling_check", "format_text",
           "format_markdown", "main"]

_REPO_ROOT = Path(__file__).resolve().parent.parent

MODELS = ("ast", "clmr")
BASELINE_CHAIN = {"ast": "auditus", "clmr": "towhee"}
BASELINE_LABEL = {
    "ast": "auditus-style AST: np.interp + numpy fbank, first 10.24 s, per file",
    "clmr": "Towhee-style CLMR: resampy + 59049-sample windows, per file",
}
RUNS = ("baseline", "exact", "ours_single", "ours")

CORPORA = {
    # AST of the published size runs ~4-8 s per 10.24 s window on 2 cores: small corpora.
    "ast": {"default": dict(long_files=2, long_minutes=2.0, clips=16, clip_seconds=10.0),
            "quick": dict(long_files=1, long_minutes=1.0, clips=4, clip_seconds=10.0)},
    "clmr": {"default": dict(long_files=4, long_minutes=3.0, clips=40, clip_seconds=10.0),
             "quick": dict(long_files=1, long_minutes=1.0, clips=8, clip_seconds=10.0)},
}
"""Corpus per model and size: ``long_files`` x ``long_minutes`` + ``clips`` x ``clip_seconds``."""

CONTRACT_TOLERANCE = 1e-4
"""max |diff| for "same outputs": CLMR ours vs Towhee-style; AST ours vs the exact chain."""

_CLMR_WINDOW_SECONDS = 59049 / 22050
_PUBLISHED_AST = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072)
_AST_PUBLISHED_LABELS = 527


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", choices=MODELS, required=True)
  g = p.add_argument_group("corpus (defaults per model: see CORPORA)")
  g.add_argument("--quick", action="store_true", help="the model's small corpus.")
  g.add_argument("--long_files", type=int, default=None)
  g.add_argument("--long_minutes", type=float, default=None)
  g.add_argument("--clips", type=int, default=None)
  g.add_argument("--clip_seconds", type=float, default=None)
  g.add_argument("--cache_dir", default=None,
                 help=f"corpus, weights and run outputs (default $AUDIOBEAM_BENCH_DIR or "
                      f"{default_cache_dir()}).")
  g = p.add_argument_group("weights")
  g.add_argument("--ast_size", choices=("published", "test"), default="published",
                 help="AST test weights: the published size (768 wide, 12 layers; default) "
                      "or the tiny test size (64 wide, 2 layers: for smoke tests).")
  g.add_argument("--ast_checkpoint", default=None, help="real AST checkpoint folder.")
  g.add_argument("--clmr_checkpoint", default=None, help="real CLMR checkpoint file.")
  g = p.add_argument_group("runs")
  g.add_argument("--runs", default=None,
                 help=f"comma-separated subset of {','.join(RUNS)} (default: all that apply; "
                      "exact is AST only).")
  g.add_argument("--workers", type=int, default=2, help="workers of the multi_processing run.")
  g.add_argument("--repeat", type=int, default=1,
                 help="rounds of the runs, interleaved (baseline, ours, baseline, ours...); "
                      "each run's fastest round is its headline, all are recorded (default 1; "
                      "the exact chain runs once).")
  g.add_argument("--batch_size", type=int, default=None,
                 help="our --batch_size (default: the model's own, AST 8, CLMR 32).")
  g.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                 help="extra environment for our runs (recorded).")
  g.add_argument("--pipeline_arg", action="append", default=[], metavar="ARG",
                 help="extra argument for pipelines.embed (repeatable, recorded).")
  g = p.add_argument_group("output")
  g.add_argument("--report", default=None, help="JSON report path (default "
                 "bench/results/models-<model>-<time>.json).")
  g.add_argument("--keep_outputs", action="store_true", help="keep the runs' outputs.")
  args = p.parse_args(argv)
  corpus = dict(CORPORA[args.model]["quick" if args.quick else "default"])
  for key in corpus:
    if getattr(args, key) is not None:
      corpus[key] = getattr(args, key)
  args.corpus = corpus
  wanted = args.runs.split(",") if args.runs else list(RUNS)
  args.runs = [r.strip() for r in wanted if r.strip()]
  unknown = set(args.runs) - set(RUNS)
  if unknown:
    p.error(f"unknown --runs {sorted(unknown)}; expected a subset of {','.join(RUNS)}")
  if args.model != "ast":
    args.runs = [r for r in args.runs if r != "exact"]
  for item in args.env:
    if "=" not in item:
      p.error(f"--env expects KEY=VALUE, got {item!r}")
  if args.workers < 1:
    p.error("--workers must be >= 1")
  if args.repeat < 1:
    p.error("--repeat must be >= 1")
  return args


def _log(msg: str) -> None:
  print(f"[bench.models {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- weights ------------------------------------------------------------------------


def _ensure_weights(model: str, cache_dir: Path, ast_size: str) -> tuple[str, str]:
  """TEST weights written once into the cache by the model's own tool -> (path, note)."""
  if model == "ast":
    from models.ast import testing

    directory = cache_dir / f"ast-test-weights-{ast_size}-seed0"
    done = directory / "DONE"
    if not done.exists():
      _log(f"writing AST test weights ({ast_size} size) to {directory}")
      overrides = {}
      if ast_size == "published":
        overrides = dict(_PUBLISHED_AST, labels=tuple(
            f"class {i}" for i in range(_AST_PUBLISHED_LABELS)))
      folder = testing.write_test_checkpoint(str(directory / "checkpoint"), True, seed=0,
                                             **overrides)
      done.write_text(json.dumps({"checkpoint": folder}))
    folder = json.loads(done.read_text())["checkpoint"]
    size = ("published size: 768 wide, 12 layers, 12 heads, 3072 MLP, 527 labels"
            if ast_size == "published" else "test size: 64 wide, 2 layers")
    return folder, (f"deterministic random TEST weights (models.ast.testing."
                    f"write_test_checkpoint, seed 0, ASTForAudioClassification, {size}) in "
                    "the published folder layout; real weights are not downloadable here, "
                    "and speed depends on the architecture, not the values")
  from models.clmr import testing

  directory = cache_dir / "clmr-test-weights-seed0"
  done = directory / "DONE"
  if not done.exists():
    _log(f"writing CLMR test weights to {directory}")
    pt_path, _ = testing.write_test_checkpoints(str(directory), seed=0)
    done.write_text(json.dumps({"checkpoint": pt_path}))
  return (json.loads(done.read_text())["checkpoint"],
          "deterministic random TEST weights (models.clmr.testing.write_test_checkpoints, "
          "seed 0: clmr_checkpoint_test.pt in the published .pt layout; SampleCNN has one "
          "size); real weights are not downloadable here")


# --- reading outputs back -------------------------------------------------------------


def _key(uri: str) -> str:
  return os.path.normpath(os.path.abspath(uri.removeprefix("file://")))


def read_model_frames(output_dir: str, model: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """``<output_dir>/<model>/frames/*.parquet`` -> {abs path: (frame_index int [N],
  embedding float32 [N, D])}, sorted by frame_index."""
  import pyarrow.parquet as pq

  pattern = os.path.join(output_dir, model, "frames", "**", "*.parquet")
  per_file: dict[str, list] = {}
  for path in sorted(glob.glob(pattern, recursive=True)):
    table = pq.read_table(path, columns=["uri", "frame_index", "embedding"])
    if table.num_rows == 0:
      continue
    uris = table.column("uri").to_pylist()
    index = table.column("frame_index").to_numpy()
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    embedding = np.asarray(flat, dtype=np.float32).reshape(table.num_rows, -1)
    for row, uri in enumerate(uris):
      per_file.setdefault(_key(uri), []).append((int(index[row]), embedding[row]))
  out = {}
  for uri, rows in per_file.items():
    rows.sort(key=lambda r: r[0])
    out[uri] = (np.array([r[0] for r in rows]), np.stack([r[1] for r in rows]))
  return out


def _diff_stats(a: np.ndarray, b: np.ndarray) -> dict:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  diff = float(np.abs(a - b).max()) if a.size else 0.0
  na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
  cosine = np.sum(a * b, axis=-1) / np.maximum(na * nb, 1e-30)
  return {"max_abs_diff": diff, "max_abs_value": float(np.abs(b).max()) if b.size else 0.0,
          "min_cosine": float(np.min(cosine)) if cosine.size else 1.0}


def compare_windows(baseline: dict[str, np.ndarray],
                    ours: dict[str, tuple[np.ndarray, np.ndarray]],
                    tolerance: float = CONTRACT_TOLERANCE) -> dict:
  """Window for window: baseline {path: [M, D]} vs ``read_model_frames`` output.

  Compares the windows both have (frame ``i`` = baseline row ``i``); counts baseline
  windows missing in ours and ours' windows beyond the baseline's. ``ok``: none missing
  or extra, something compared, max |diff| <= ``tolerance``.
  """
  missing = extra = windows = 0
  worst = {"max_abs_diff": 0.0, "max_abs_value": 0.0, "min_cosine": 1.0}
  for path, theirs in baseline.items():
    theirs = np.asarray(theirs).reshape(-1, np.asarray(theirs).shape[-1]) if np.size(theirs) \
        else np.zeros((0, 1))
    index, mine = ours.get(_key(path), (np.zeros(0, np.int64), None))
    expected = np.arange(theirs.shape[0])
    common = np.intersect1d(expected, index)
    missing += expected.size - common.size
    extra += index.size - common.size
    if common.size == 0:
      continue
    stats = _diff_stats(mine[np.searchsorted(index, common)], theirs[common])
    worst = {"max_abs_diff": max(worst["max_abs_diff"], stats["max_abs_diff"]),
             "max_abs_value": max(worst["max_abs_value"], stats["max_abs_value"]),
             "min_cosine": min(worst["min_cosine"], stats["min_cosine"])}
    windows += common.size
  baseline_keys = {_key(p) for p in baseline}
  extra += sum(index.size for uri, (index, _) in ours.items() if uri not in baseline_keys)
  ok = missing == 0 and extra == 0 and windows > 0 and worst["max_abs_diff"] <= tolerance
  return {"files": len(baseline), "windows": windows, "missing_windows": missing,
          "extra_windows": extra, **worst,
          "relative_max_abs_diff": worst["max_abs_diff"] / max(worst["max_abs_value"], 1e-30),
          "tolerance": tolerance, "ok": ok}


def compare_first_window(baseline: dict[str, np.ndarray],
                         ours: dict[str, tuple[np.ndarray, np.ndarray]],
                         tolerance: float | None = CONTRACT_TOLERANCE) -> dict:
  """AST: baseline {path: [H]} (one pooled vector per file) vs ours' frame 0 per file.

  ``tolerance=None``: the two differ by design; distances are reported, ``ok`` is None.
  """
  missing, rows_a, rows_b = 0, [], []
  for path, theirs in baseline.items():
    index, mine = ours.get(_key(path), (np.zeros(0, np.int64), None))
    if index.size == 0 or index[0] != 0:
      missing += 1
      continue
    rows_a.append(mine[0])
    rows_b.append(np.asarray(theirs).reshape(-1))
  stats = _diff_stats(np.stack(rows_a), np.stack(rows_b)) if rows_a else {
      "max_abs_diff": float("nan"), "max_abs_value": float("nan"), "min_cosine": float("nan")}
  out = {"files": len(baseline), "compared": len(rows_a), "missing_files": missing, **stats,
         "relative_max_abs_diff": stats["max_abs_diff"] / max(stats["max_abs_value"], 1e-30),
         "tolerance": tolerance}
  out["ok"] = None if tolerance is None else bool(
      missing == 0 and rows_a and stats["max_abs_diff"] <= tolerance)
  return out


def resampling_check(path: str, model: str) -> dict:
  """The resampling step alone on one file: the baseline chain's vs ours (streamed
  kaiser_best, as the pipeline runs it), max |diff| of the samples at the model's rate."""
  import resampy

  from audiobeam.audio import open_audio, to_mono
  from audiobeam.resample import StreamingResampler
  from bench.chains_ast_clmr import _read_mono

  rate_hz = 16000 if model == "ast" else 22050
  audio, source_hz = _read_mono(path)
  if model == "ast":
    positions = np.linspace(0, audio.shape[0] - 1, int(audio.shape[0] * rate_hz / source_hz))
    theirs = np.interp(positions, np.arange(audio.shape[0]), audio)
    how = "np.interp (auditus)"
  else:
    theirs = resampy.resample(audio, source_hz, rate_hz)
    how = "resampy.resample kaiser_best (Towhee)"
  with open_audio(path) as stream:
    converter = StreamingResampler(source_hz, rate_hz, "kaiser_best")
    ours = np.concatenate([converter.process(to_mono(b)) for b in stream.blocks(1 << 18)]
                          + [converter.flush()])
  n = min(theirs.shape[0], ours.shape[0])
  return {"file": path, "from_hz": int(source_hz), "to_hz": rate_hz, "baseline": how,
          "ours": "audiobeam StreamingResampler kaiser_best",
          "samples": [int(theirs.shape[0]), int(ours.shape[0])],
          "max_abs_diff": float(np.abs(theirs[:n] - ours[:n]).max()),
          "max_abs_value": float(np.abs(ours).max())}


def _run_record(output_dir: Path, model: str) -> dict:
  try:
    record = json.loads((output_dir / "run.json").read_text())
  except (OSError, ValueError):
    return {}
  metrics = record.get("metrics", {})
  counts = record.get("counts", {}).get("models", {}).get(model, {})
  out = {"counts": counts,
         "model_calls": metrics.get(f"{model}_model_calls"),
         "model_inputs": metrics.get(f"{model}_model_call_inputs"),
         "files_decoded": metrics.get("files_decoded")}
  latency_us = metrics.get("model_latency_micro_secs")
  if latency_us:
    out["model_seconds"] = latency_us / 1e6
  return out


# --- report -------------------------------------------------------------------------


def _rates(run: dict, files: int, audio_seconds: float, covered_seconds: float) -> None:
  wall, cpu = run["wall_seconds"], run["cpu_seconds"]
  run.update(files=files, audio_seconds=audio_seconds, covered_audio_seconds=covered_seconds,
             audio_seconds_per_second=audio_seconds / wall,
             covered_audio_seconds_per_second=covered_seconds / wall,
             files_per_second=files / wall,
             covered_audio_seconds_per_cpu_second=covered_seconds / cpu if cpu else None)


_RATIO_KEYS = ("audio_seconds_per_second", "covered_audio_seconds_per_second",
               "files_per_second", "covered_audio_seconds_per_cpu_second")


def _ratios(runs: dict) -> dict:
  base = runs.get("baseline")
  if not base or base["returncode"] != 0:
    return {}
  out = {}
  for name in ("ours_single", "ours"):
    run = runs.get(name)
    if run and run["returncode"] == 0:
      out[name] = {k: run[k] / base[k] for k in _RATIO_KEYS if run.get(k) and base.get(k)}
  return out


def _fmt(x, spec=".2f") -> str:
  return "-" if x is None else format(x, spec)


def format_text(report: dict) -> str:
  """The printed report: machine, corpus, the runs' table, ratios, parity."""
  m, c, runs = report["machine"], report["corpus"], report["runs"]
  lines = [
      "=" * 100,
      f"bench.models --model {report['model']}: ours vs {report['baseline']} "
      "(whole processes, start-up included)",
      f"machine : {m['cpus']} CPUs ({m['cpu_model']}), load average at start "
      f"{' / '.join(f'{x:.2f}' for x in m['load_before'])} (1/5/15 min), after "
      f"{m.get('load_after', [float('nan')])[0]:.2f}",
      f"corpus  : {c['description']}, {c['files']} files",
      f"weights : {report['weights']}",
      f"rounds  : {report['settings']['repeat']} (each run's fastest shown; all in "
      "wall_seconds_all)",
      "",
      f"{'run':<58} {'wall s':>7} {'audio-s/s':>9} {'covered/s':>9} {'files/s':>7} "
      f"{'CPU s':>7} {'busy':>5}",
  ]
  for name, run in runs.items():
    if run.get("returncode") != 0:
      lines.append(f"{run['label']:<58} FAILED (exit {run.get('returncode')})")
      continue
    lines.append(
        f"{run['label'][:58]:<58} {run['wall_seconds']:7.1f} "
        f"{_fmt(run.get('audio_seconds_per_second'), '.1f'):>9} "
        f"{_fmt(run.get('covered_audio_seconds_per_second'), '.1f'):>9} "
        f"{_fmt(run.get('files_per_second'), '.2f'):>7} {run['cpu_seconds']:7.1f} "
        f"{_fmt(run.get('machine_busy_cores')):>5}")
  for name, ratio in report.get("ratios", {}).items():
    lines.append(f"\n{runs[name]['label']} vs baseline: "
                 + ", ".join(f"{k.replace('_', ' ')} {v:.2f}x" for k, v in ratio.items()))
  if report.get("fair_metric"):
    lines.append(f"fair comparison: {report['fair_metric']} ({report['fair_metric_note']})")
  for name, parity in report.get("parity", {}).items():
    verdict = {True: "OK", False: "FAIL", None: "reported (differs by design)"}[parity["ok"]]
    lines.append(f"\nparity {name}: {verdict}: " + ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in parity.items() if k != "ok"))
  r = report.get("resampling")
  if r:
    lines.append(f"\nresampling {r['from_hz']} -> {r['to_hz']} Hz on {os.path.basename(r['file'])}: "
                 f"{r['baseline']} vs {r['ours']}: max |diff| {r['max_abs_diff']:.3g} "
                 f"(samples up to {r['max_abs_value']:.3g})")
  for note in report.get("differences", []):
    lines.append(f"- {note}")
  lines.append(f"\nreport JSON: {report.get('report_path', '-')}")
  lines.append("=" * 100)
  return "\n".join(lines)


def format_markdown(report: dict) -> str:
  """The README table for this report."""
  runs = report["runs"]
  ratios = report.get("ratios", {})
  out = ["| run | wall s | audio-s per wall-s | covered audio-s per wall-s | files per s "
         "| CPU s | vs baseline (covered audio-s/s) |",
         "|---|---:|---:|---:|---:|---:|---:|"]
  for name, run in runs.items():
    if run.get("returncode") != 0 or name == "exact":
      continue
    ratio = ratios.get(name, {}).get("covered_audio_seconds_per_second")
    ratio_text = "1.00x" if name == "baseline" else (f"**{ratio:.2f}x**" if ratio else "-")
    out.append(f"| {run['label']} | {run['wall_seconds']:.1f} | "
               f"{run['audio_seconds_per_second']:.2f} | "
               f"{run['covered_audio_seconds_per_second']:.2f} | {run['files_per_second']:.3f} | "
               f"{run['cpu_seconds']:.1f} | {ratio_text} |")
  return "\n".join(out)


# --- main ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  model = args.model
  load_at_start = list(os.getloadavg())
  cache_dir = Path(args.cache_dir or default_cache_dir())
  cache_dir.mkdir(parents=True, exist_ok=True)
  spec = CorpusSpec(**args.corpus)
  corpus = build_corpus(spec, str(cache_dir), log=_log)
  paths = [f.path for f in corpus.files]
  checkpoint = args.ast_checkpoint if model == "ast" else args.clmr_checkpoint
  if checkpoint:
    weights_note = f"given: {checkpoint}"
  else:
    checkpoint, weights_note = _ensure_weights(model, cache_dir, args.ast_size)
  work = Path(tempfile.mkdtemp(prefix=f"models-{model}-", dir=cache_dir))
  manifest = work / "files.json"
  manifest.write_text(json.dumps(paths))
  for path in paths:  # warm the page cache: no run pays for cold reads
    with open(path, "rb") as f:
      while f.read(1 << 24):
        pass

  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [str(_REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env["CUDA_VISIBLE_DEVICES"] = ""          # CPU bench: every run on the CPU
  ours_env = dict(env)
  ours_env.update(item.split("=", 1) for item in args.env)
  python = sys.executable
  audio_seconds = corpus.total_seconds
  durations = {_key(f.path): f.duration_seconds for f in corpus.files}
  machine = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "device": "cpu",
             "platform": platform.platform(), "python": platform.python_version(),
             "load_before": load_at_start}
  if load_at_start[0] > 1.0:
    _log(f"load average {load_at_start[0]:.2f} at start: other work is running; wall times "
         "will be slower than on a quiet machine (compare CPU seconds, or rerun).")
  runs: dict[str, dict] = {}
  chains: dict[str, dict] = {}
  covered: dict[str, float] = {}
  parity: dict[str, dict] = {}
  model_args = (["--ast_checkpoint", checkpoint, "--ast_embedding", "mean_tokens"]
                if model == "ast" else ["--clmr_checkpoint", checkpoint])
  commands: dict[str, tuple[str, list[str], dict]] = {}
  for name in ("baseline", "exact"):
    chain = BASELINE_CHAIN[model] if name == "baseline" else "auditus_exact"
    label = (BASELINE_LABEL[model] if name == "baseline" else
             "auditus-style AST with our resampling + Kaldi fbank (parity only)")
    commands[name] = (label, [python, "-m", "bench.chains_ast_clmr", "--chain", chain,
                              "--checkpoint", checkpoint, "--manifest", str(manifest),
                              "--output", str(work / f"{name}.npz")], env)
  for name, label, runner_args in (
      ("ours_single", "ours: pipelines.embed, Beam in_memory, 1 process",
       ["--direct_running_mode=in_memory", "--direct_num_workers=1"]),
      ("ours", f"ours: pipelines.embed, Beam multi_processing, {args.workers} workers",
       ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"])):
    commands[name] = (label, [
        python, "-m", "pipelines.embed", "--model", model, "--input", corpus.glob,
        "--output", str(work / name), "--device", "cpu", "--progress", "off", *model_args,
        *(["--batch_size", str(args.batch_size)] if args.batch_size else []),
        *runner_args, *args.pipeline_arg], ours_env)

  for round_index in range(args.repeat):
    for name in RUNS:
      if name not in args.runs or (name == "exact" and round_index > 0):
        continue  # the exact chain is for parity only: one round
      label, cmd, run_env = commands[name]
      if round_index > 0 and runs[name]["returncode"] != 0:
        continue
      attempt = _run_process(label, cmd, run_env, work / f"{name}-{round_index}.log", False)
      if round_index == 0:
        runs[name] = dict(attempt, attempts=[])
      runs[name]["attempts"].append(
          {k: attempt.get(k) for k in ("returncode", "wall_seconds", "cpu_seconds",
                                       "machine_busy_cores", "load_before", "log")})
      if round_index > 0 or attempt["returncode"] != 0:
        if name.startswith("ours"):
          shutil.rmtree(work / name, ignore_errors=True)
        continue
      run = runs[name]
      if name in ("baseline", "exact"):
        embeddings, meta = load_result(str(work / f"{name}.npz"))
        chains[name] = embeddings
        covered[name] = meta["covered_seconds"]
        run.update(stage_seconds=meta["stage_seconds"], model_calls=meta["model_calls"],
                   model_inputs=meta["model_inputs"], notes=meta["notes"])
        continue
      out_dir = work / name
      frames = read_model_frames(str(out_dir), model)
      run.update(_run_record(out_dir, model))
      run["frames"] = int(sum(index.size for index, _ in frames.values()))
      if model == "ast":  # every sample of a file lies in one of its windows
        covered[name] = sum(durations.get(uri, 0.0) for uri in frames)
      else:
        covered[name] = run["frames"] * _CLMR_WINDOW_SECONDS
      if model == "clmr" and "baseline" in chains:
        parity[f"{name} vs baseline (per window)"] = compare_windows(chains["baseline"], frames)
      if model == "ast" and "baseline" in chains:
        parity[f"{name} frame 0 vs baseline (auditus-style)"] = compare_first_window(
            chains["baseline"], frames, tolerance=None)
      if model == "ast" and "exact" in chains:
        parity[f"{name} frame 0 vs exact chain"] = compare_first_window(chains["exact"], frames)
      if not args.keep_outputs:
        shutil.rmtree(out_dir, ignore_errors=True)
  for name, run in runs.items():
    if run["returncode"] != 0:
      continue
    # Headline: the fastest attempt (the one least disturbed by other work on the machine).
    best = min((a for a in run["attempts"] if a["returncode"] == 0),
               key=lambda a: a["wall_seconds"])
    run.update({k: v for k, v in best.items() if k != "log"})
    run["wall_seconds_all"] = [a["wall_seconds"] for a in run["attempts"]]
    _rates(run, len(paths), audio_seconds, covered[name])
    if "stage_seconds" in run:
      run["other_seconds_first_attempt"] = (run["attempts"][0]["wall_seconds"]
                                            - sum(run["stage_seconds"].values()))

  if model == "ast" and "baseline" in chains and "exact" in chains:
    parity["exact chain vs baseline (auditus-style): the front end's share"] = \
        compare_first_window(chains["baseline"],
                             {_key(p): (np.zeros(1, np.int64), e[None])
                              for p, e in chains["exact"].items()}, tolerance=None)
  machine["load_after"] = list(os.getloadavg())
  shortest = min(corpus.files, key=lambda f: f.duration_seconds).path
  resampling = resampling_check(shortest, model)

  if model == "ast":
    fair = ("covered_audio_seconds_per_second",
            "the auditus-style chain embeds only the first 10.255 s of each file, ours all of "
            "it: audio reaching the model per wall-second compares the work done; files/s "
            "favours the chain that skips most of each long file (on clips <= 10.24 s both "
            "coincide)")
    differences = [
        "resampling: auditus np.interp (linear, no anti-alias filter) vs ours kaiser_best "
        "(resampy's filter); the exact chain uses kaiser_best",
        "fbank: transformers' numpy fbank (torchaudio not installed) vs ours the Kaldi fbank "
        "in float64 (as torchaudio computes it); the exact chain uses the Kaldi fbank",
        "coverage: auditus one 1024-frame input per file (first 10.24 s); ours every 10.24 s "
        "of every file (frame 0 is the one compared)",
        "model call: auditus batch 1 per file; ours batches of --batch_size across files",
    ]
  else:
    fair = ("audio_seconds_per_second",
            "both embed exactly the same whole 59049-sample windows of every file (trailing "
            "partial window dropped by both): audio-s/s and covered audio-s/s agree")
    differences = [
        "resampling: Towhee resampy.resample (whole file) vs ours the exact streamed "
        "kaiser_best (resampy's filter): equal to float64 rounding (see resampling)",
        "model call: Towhee one batch per file (that file's windows) vs ours batches of "
        "--batch_size across files: CPU convolutions may round differently per batch size "
        "(the parity max |diff| says by how much)",
    ]
  report = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "model": model,
      "baseline": BASELINE_LABEL[model],
      "machine": machine,
      "corpus": {"description": corpus.describe(), "files": len(paths),
                 "audio_seconds": audio_seconds, "spec": dataclasses.asdict(spec),
                 "directory": corpus.directory},
      "weights": weights_note,
      "settings": {"workers": args.workers, "repeat": args.repeat, "batch_size": args.batch_size or "model default",
                   "resampler": "kaiser_best (default)", "env": args.env,
                   "pipeline_args": args.pipeline_arg, "runs": args.runs,
                   "quick": args.quick, "ast_size": args.ast_size if model == "ast" else None},
      "runs": runs,
      "ratios": _ratios(runs),
      "fair_metric": fair[0],
      "fair_metric_note": fair[1],
      "parity": parity,
      "resampling": resampling,
      "differences": differences,
  }
  report_path = Path(args.report) if args.report else (
      _REPO_ROOT / "bench" / "results" /
      f"models-{model}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
  report_path.parent.mkdir(parents=True, exist_ok=True)
  report["report_path"] = str(report_path)
  report_path.write_text(json.dumps(report, indent=1, default=str))
  print(format_text(report))
  print("\nREADME table:\n" + format_markdown(report))
  if not args.keep_outputs:
    for name in ("baseline", "exact"):
      (work / f"{name}.npz").unlink(missing_ok=True)
  failed = [n for n, r in runs.items() if r["returncode"] != 0]
  bad = [n for n, p in parity.items() if p["ok"] is False]
  if failed or bad:
    _log(f"failed runs: {failed}; parity failures: {bad}")
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
