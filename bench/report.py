"""Formatting of the benchmark report: a plain-text summary and a README markdown table.

The report is a JSON-able dict built by ``bench.__main__``; these functions only read it.
"""

from __future__ import annotations

__all__ = ["format_text", "format_markdown"]


def _rate(x) -> str:
  return "-" if x is None else f"{x:.1f}"


def _stage_lines(stage_seconds: dict, audio_seconds: float, indent: str) -> list[str]:
  total = sum(stage_seconds.values()) or 1.0
  lines = []
  for name, seconds in stage_seconds.items():
    rate = audio_seconds / seconds if seconds > 0 else float("inf")
    lines.append(f"{indent}{name:<12} {seconds:8.2f} s  {100 * seconds / total:5.1f}%  "
                 f"({rate:,.0f} audio-s/s)")
  return lines


def format_text(report: dict) -> str:
  """Human-readable report, as printed at the end of ``python -m bench``."""
  m, c, runs = report["machine"], report["corpus"], report["runs"]
  lines = [
      "=" * 78,
      "audiobeam bench: ours vs the reference-style chain (whole processes, start-up included)",
      f"machine : {m['cpus']} CPUs ({m['cpu_model']}), device={m['device']}, "
      f"load avg before/after {m['load_before'][0]:.2f}/{m['load_after'][0]:.2f}",
      f"corpus  : {c['description']}, {c['files']} files",
      f"weights : {report['weights']}",
      "",
      f"{'run':<40} {'wall s':>8} {'audio-s/s':>10} {'x base':>7} {'CPU s':>7} {'busy cores':>10}",
  ]
  base = runs.get("baseline", {}).get("audio_seconds_per_second")
  for name, run in runs.items():
    rate = run.get("audio_seconds_per_second")
    ratio = (rate / base) if (rate and base) else None
    busy = run.get("machine_busy_cores")
    lines.append(f"{run['label']:<40} {run['wall_seconds']:8.1f} {_rate(rate):>10} "
                 f"{'-' if ratio is None else f'{ratio:.2f}':>7} {run['cpu_seconds']:7.1f} "
                 f"{'-' if busy is None else f'{busy:.2f}':>10}")
  if "ratio" in report:
    lines.append(f"\nspeed-up (ours, {report['ratio_run']}) vs baseline: {report['ratio']:.2f}x")
  b = runs.get("baseline")
  if b:
    lines.append("\nbaseline stages (one process, in order; setup = graph build + restore):")
    lines += _stage_lines(b["stage_seconds"], b["audio_seconds"], "  ")
    lines.append(f"  {'setup':<12} {b['setup_seconds']:8.2f} s; rest of the wall time "
                 f"(imports, I/O, exit) {b['other_seconds']:.2f} s")
    lines.append(f"  model: {b['patches']} patches in {b['model_calls']} calls (one per file, "
                 f"mean {b['patches'] / max(b['model_calls'], 1):.1f} patches), "
                 f"{_rate(b.get('model_gflops_per_second'))} GFLOP/s")
  p = report.get("ours_profile")
  if p:
    lines.append(f"\nours, stage profile (library functions in one process, "
                 f"{p['audio_seconds']:.0f} audio-s of the corpus, resampler={p['resampler']}):")
    lines += _stage_lines(p["stage_seconds"], p["audio_seconds"], "  ")
    streamed = p.get("frontend_streamed_seconds")
    if streamed:
      lines.append(f"  {'front end as streamed by the pipeline (vggish.stream.iter_patches)':<12}: "
                   f"{streamed:.2f} s ({p['audio_seconds'] / streamed:,.0f} audio-s/s)")
    lines.append(f"  model: {p['patches']} patches in {p['model_calls']} calls of up to "
                 f"{p['batch_size']} ({p['full_batch_calls']} full), "
                 f"{_rate(p.get('model_gflops_per_second'))} GFLOP/s")
  for name, run in runs.items():
    batches = run.get("batches")
    if batches:
      line = (f"\n{run['label']}: {batches['patches']} patches in {batches['calls']} model "
              f"calls, mean batch {batches['mean_batch_size']:.1f} of {batches['batch_size']} "
              f"(fill {100 * batches['fill']:.1f}%)")
      if batches.get("model_seconds"):
        line += (f"; model busy {batches['model_seconds']:.1f} s -> "
                 f"{_rate(batches.get('model_gflops_per_second'))} GFLOP/s")
      lines.append(line)
  for name, parity in report.get("parity", {}).items():
    lines.append(
        f"\nparity {runs[name]['label']} vs baseline: {'OK' if parity['ok'] else 'FAIL'} - "
        f"{parity['frames']} frames of {parity['files']} files, raw max |diff| "
        f"{parity['raw_max_abs_diff']:.2e} (<= {parity['raw_tolerance']:g}), uint8 identical "
        f"{100 * parity['uint8_identical_fraction']:.3f}% (>= "
        f"{100 * parity['uint8_min_identical']:.1f}%), max uint8 step "
        f"{parity['uint8_max_abs_diff']}, missing {parity['missing_frames']}, extra "
        f"{parity['extra_frames']}")
  if report.get("gpu"):
    lines.append(f"\nGPU: {report['gpu']}")
  lines.append(f"\nreport JSON: {report.get('report_path', '-')}")
  lines.append("=" * 78)
  return "\n".join(lines)


def format_markdown(report: dict) -> str:
  """The README performance table for this report."""
  m, c, runs = report["machine"], report["corpus"], report["runs"]
  base = runs.get("baseline", {}).get("audio_seconds_per_second")
  out = [
      f"Corpus: {c['description']}. Machine: {m['cpus']} CPUs ({m['cpu_model']}), load average "
      f"{m['load_before'][0]:.2f} before / {m['load_after'][0]:.2f} after. "
      f"Weights: {report['weights']}.",
      "",
      "| run | wall s | audio-s per wall-s | vs baseline |",
      "|---|---:|---:|---:|",
  ]
  for run in runs.values():
    rate = run.get("audio_seconds_per_second")
    ratio = f"{rate / base:.2f}x" if (rate and base) else "-"
    out.append(f"| {run['label']} | {run['wall_seconds']:.1f} | {_rate(rate)} | {ratio} |")
  return "\n".join(out)
