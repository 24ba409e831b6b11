"""What made an output: models, weights (URIs + sha256), runs, counts, settings.

``describe(path)`` reads ``run.json``, the run ledger (``_audiobeam/``: runs that started
and did not commit, the lease) and the Parquet footers (row counts and provenance; no
embedding is read) of an output directory, a DAG partition ``dt=...``, or a folder of
partitions, and returns a JSON-able record; ``format_text`` prints it for people
(``python -m pipelines.inspect``). Where ``run.json`` describes every committed row (one
committed run), the counts read from the files are checked against its ``counts``: a
difference is reported (``count_mismatches``), never hidden.
"""

from __future__ import annotations

import collections
from typing import Any

import pyarrow.parquet as pq

from explore import outputs
from explore.search import asset_records

__all__ = ["describe", "format_text"]

_TABLE_KINDS = ("clips", "frames")


def _rows(parts) -> int:
  total = 0
  for part in parts:
    with outputs.open_binary(part.path) as f:
      total += pq.ParquetFile(f).metadata.num_rows
  return total


def _model_record(out: outputs.Output, directory: str, model: str,
                  errors: dict[str, collections.Counter]) -> dict[str, Any]:
  committed = out.committed[directory]
  record: dict[str, Any] = {}
  counts: dict[str, int] = {}
  extras: dict[str, dict[str, int]] = {}
  runs: dict[str, dict] = {}
  prefix = out.model_prefix(directory, model)
  subdirs = sorted({rel[len(prefix):].split("/")[0] for rel, _ in out.relative_files(directory)
                    if rel.startswith(prefix) and rel[len(prefix):].count("/") == 1
                    and outputs.parse_part_name(rel) is not None} - {outputs.ERRORS_DIR})
  for kind in subdirs:
    files = out.matching(directory, f"{prefix}{kind}/part-*")
    parts = [outputs.PartFile(p, size, run, out.full_path(directory)) for p, size in files
             for run in [outputs.parse_part_name(p)] if run in committed]
    parquet = [p for p in parts if p.path.endswith(".parquet")]
    if kind in _TABLE_KINDS:
      counts[kind] = _rows(parquet)
    elif parquet:
      extras[kind] = {"rows": _rows(parquet), "files": len(parquet)}
    elif parts:
      extras[kind] = {"files": len(parts), "bytes": sum(p.size_bytes for p in parts)}
    for part in parquet:
      if part.run_id not in runs:
        provenance = outputs.read_provenance(part.path) or {}
        runs[part.run_id] = {
            "assets": asset_records(provenance),
            "settings": provenance.get("settings"),
            "settings_sha256": provenance.get("settings_sha256"),
            "versions": provenance.get("versions"),
        }
  by_type = errors.get(model, collections.Counter())
  record.update({
      "clips": counts.get("clips", 0),
      "frames": counts.get("frames", 0),
      "errors": sum(by_type.values()),
      "errors_by_type": dict(sorted(by_type.items())),
      "extras": extras,
      "runs": runs,
  })
  return record


def describe(path: str | outputs.Output) -> dict[str, Any]:
  """The record of an output (see the module docstring). ConfigError if it is none."""
  out = outputs.open_output(path)
  uncommitted = outputs.uncommitted_part_files(out)
  partitions = []
  for directory in out.dirs:
    full = out.full_path(directory)
    record = out.run_records[directory]
    error_parts = [outputs.PartFile(p, s, r, full)
                   for p, s in out.matching(directory, "errors/part-*.parquet")
                   for r in [outputs.parse_part_name(p)] if r in out.committed[directory]]
    errors_table = outputs.read_parts(error_parts, ["model", "error_type"])
    errors: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    if errors_table.num_rows:
      models_column = (errors_table["model"].to_pylist() if "model" in errors_table.column_names
                       else [outputs.LEGACY_MODEL if directory in out.legacy_dirs else None]
                       * errors_table.num_rows)
      for model, error_type in zip(models_column, errors_table["error_type"].to_pylist()):
        errors[model][error_type] += 1
    single = outputs.Output(out.path, (directory,), out.run_records, out.committed, out.files,
                            out.legacy_dirs)
    names = outputs.models(single)
    models = {m: _model_record(out, directory, m, errors) for m in names}
    counts = record.get("counts") or {}
    book = outputs.ledger(out, directory)
    partitions.append({
        "output": full,
        "run_id": record.get("run_id"),
        "committed_run_ids": sorted(out.committed[directory]),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "config": record.get("config"),
        "run_json_counts": record.get("counts"),
        "files_matched": counts.get("files_matched"),
        "models": models,
        "count_mismatches": _count_mismatches(models, counts, out.committed[directory],
                                              record.get("run_id")),
        "errors_without_model": dict(sorted(errors.get(None, collections.Counter()).items())),
        "unfinished_runs": {run: {"started_at": r.get("started_at"), "host": r.get("host"),
                                  "pid": r.get("pid"), "mode": r.get("mode"),
                                  "staged_files": book.staged.get(run, (0, 0))[0],
                                  "writing_now": (book.lease or {}).get("run_id") == run}
                            for run, r in book.unfinished.items()},
        "lease": book.lease,
        "uncommitted_part_files": [p.path for p in uncommitted if p.output == full],
    })
  totals: dict[str, dict[str, int]] = {}
  for partition in partitions:
    for model, record in partition["models"].items():
      total = totals.setdefault(model, {"clips": 0, "frames": 0, "errors": 0})
      for key in total:
        total[key] += record[key]
  return {"output": out.path, "partitions": partitions, "totals": totals}


def _count_mismatches(models: dict[str, dict], counts: dict, committed: frozenset[str],
                      run_id: str | None) -> list[str]:
  """Where run.json's ``counts.models`` (of its own run) disagree with the committed files.
  Only checked when that run is the only committed one (else its counts cover part of the
  rows): clips = ``files_embedded``, frames = ``frames``, errors by type."""
  by_model = counts.get("models")
  if not isinstance(by_model, dict) or committed != frozenset([run_id]):
    return []
  problems = []
  for model, record in sorted(models.items()):
    expected = by_model.get(model)
    if not isinstance(expected, dict):
      problems.append(f"{model}: files hold rows, run.json has no counts for it")
      continue
    for ours, theirs in (("clips", "files_embedded"), ("frames", "frames"),
                         ("errors_by_type", "errors_by_type")):
      if theirs in expected and expected[theirs] != record[ours]:
        problems.append(f"{model}: {ours} {record[ours]} in the files, run.json {theirs} "
                        f"{expected[theirs]}")
  for model in sorted(set(by_model) - set(models)):
    if (by_model[model] or {}).get("files_embedded"):
      problems.append(f"{model}: run.json counts {by_model[model]['files_embedded']} clips, "
                      "the files hold none")
  return problems


def _short(sha: str | None) -> str:
  return sha if sha else "?"


def format_text(record: dict[str, Any]) -> str:
  """``describe``'s record for people."""
  lines = [f"audiobeam output {record['output']}"]
  several = len(record["partitions"]) > 1
  if several:
    lines.append(f"  {len(record['partitions'])} partitions; totals: " + "; ".join(
        f"{m}: {t['clips']:,} clips, {t['frames']:,} frames, {t['errors']:,} errors"
        for m, t in sorted(record["totals"].items())))
  for partition in record["partitions"]:
    indent = "  "
    if several:
      lines.append(f"  {partition['output']}")
      indent = "    "
    committed = ", ".join(partition["committed_run_ids"])
    lines.append(f"{indent}run {partition['run_id']} (committed: {committed}), finished "
                 f"{partition.get('finished_at') or '?'}")
    if partition.get("files_matched") is not None:
      lines.append(f"{indent}files matched by the last run: {partition['files_matched']:,}")
    config = partition.get("config") or {}
    if config:
      shown = {k: config[k] for k in ("model", "input", "format", "pooling", "normalize",
                                       "short_clips", "resampler") if k in config}
      lines.append(f"{indent}config: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    for model, m in partition["models"].items():
      by_type = ", ".join(f"{k}={v}" for k, v in m["errors_by_type"].items())
      lines.append(f"{indent}{model}: {m['clips']:,} clips, {m['frames']:,} frames, "
                   f"{m['errors']:,} errors" + (f" ({by_type})" if by_type else ""))
      for name, extra in m["extras"].items():
        size = (f"{extra['rows']:,} rows" if "rows" in extra
                else f"{extra['files']} files, {extra['bytes']:,} bytes")
        lines.append(f"{indent}  {name}/: {size}")
      for run_id, run in m["runs"].items():
        lines.append(f"{indent}  run {run_id}: settings_sha256 {_short(run['settings_sha256'])}")
        for name, asset in sorted(run["assets"].items()):
          lines.append(f"{indent}    {name}: {asset.get('uri')}  "
                       f"sha256 {_short(asset.get('sha256'))}")
        settings = {k: v for k, v in (run["settings"] or {}).items() if not k.endswith("_sha256")}
        if settings:
          shown = ", ".join(f"{k}={v}" for k, v in settings.items())
          lines.append(f"{indent}    settings: {shown}")
    if partition["errors_without_model"]:
      lines.append(f"{indent}errors of no model (matching): " + ", ".join(
          f"{k}={v}" for k, v in partition["errors_without_model"].items()))
    for problem in partition["count_mismatches"]:
      lines.append(f"{indent}COUNT MISMATCH with run.json: {problem}")
    for run_id, run in partition["unfinished_runs"].items():
      state = ("writing now (it holds the lease)" if run["writing_now"] else
               "not committed: interrupted; the next run into this output removes its files")
      lines.append(f"{indent}run {run_id} started {run.get('started_at') or '?'} on "
                   f"{run.get('host') or '?'} (pid {run.get('pid')}), {run['staged_files']} "
                   f"staged files, {state}; not read")
    if partition["uncommitted_part_files"]:
      lines.append(f"{indent}uncommitted part files (a run in progress, killed, or leftovers the "
                   f"next run removes; not read): {len(partition['uncommitted_part_files'])}")
  return "\n".join(lines)
