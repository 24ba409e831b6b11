"""Helpers for the robustness tests: run ``python -m pipelines.embed`` for real and read
its outputs back with pyarrow.

Used by test_hostile_inputs.py, test_rerun.py and test_long_files.py. A run is a
subprocess (the CLI users run), optionally as an unprivileged uid so that permission
errors are real even when the tests run as root.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

__all__ = [
    "REPO_ROOT",
    "EmbedRun",
    "Outputs",
    "can_drop_file_permission_override",
    "embed_command",
    "embed_env",
    "run_embed",
    "read_outputs",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
_OUTPUT_TABLES = ("frames", "clips", "errors")


_DROP_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def can_drop_file_permission_override() -> bool:
  """True when we are root and can start a child without CAP_DAC_OVERRIDE and
  CAP_DAC_READ_SEARCH (``setpriv``), so that mode-000 files are unreadable to it.

  (Switching to uid nobody does not work here: the interpreter lives under a 0700 /root.)
  """
  if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv")):
    return False
  probe = subprocess.run([*_DROP_DAC, "true"], capture_output=True)
  return probe.returncode == 0


def embed_command(argv: Sequence[str], *, drop_file_permission_override: bool = False
                  ) -> list[str]:
  prefix = list(_DROP_DAC) if drop_file_permission_override else []
  return [*prefix, sys.executable, "-m", "pipelines.embed", *argv]


def embed_env(home: Path) -> dict[str, str]:
  env = dict(os.environ)
  env.update({
      "HOME": str(home),
      "AUDIOBEAM_CACHE_DIR": str(home / "cache"),
      "PYTHONDONTWRITEBYTECODE": "1",
      "TF_CPP_MIN_LOG_LEVEL": "2",
      "CUDA_VISIBLE_DEVICES": "",
      "OMP_NUM_THREADS": "1",
  })
  return env


@dataclasses.dataclass
class EmbedRun:
  """A finished CLI run."""
  returncode: int
  stdout: str
  stderr: str


def run_embed(argv: Sequence[str], *, home: Path, drop_file_permission_override: bool = False,
              extra_env: dict[str, str] | None = None, timeout_seconds: float = 300) -> EmbedRun:
  """Runs ``python -m pipelines.embed argv`` to completion (cwd: the repo root)."""
  home.mkdir(parents=True, exist_ok=True)
  env = embed_env(home)
  env.update(extra_env or {})
  proc = subprocess.run(
      embed_command(argv, drop_file_permission_override=drop_file_permission_override),
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_seconds)
  return EmbedRun(proc.returncode, proc.stdout, proc.stderr)


@dataclasses.dataclass
class Outputs:
  """Everything under an output dir, read back: every part file, not only run.json's.

  Keys ``frames``, ``clips``, ``tfrecord`` are the model's folders (``<model>/frames``,
  ...), ``errors`` the top-level ``errors/``; ``model_counts`` is run.json's counts of
  the model.
  """
  directory: Path
  tables: dict[str, pa.Table]  # frames, clips, errors (all part files concatenated)
  part_files: dict[str, list[str]]  # subdir -> part files present
  run_record: dict | None
  model: str = "vggish"

  @property
  def model_counts(self) -> dict:
    return self.run_record["counts"]["models"][self.model]

  def rows(self, name: str) -> list[dict]:
    return self.tables[name].to_pylist()


def _read_parquet_files(paths: list[str]) -> pa.Table | None:
  tables = [pq.read_table(p) for p in paths]
  if not tables:
    return None
  return pa.concat_tables([t.replace_schema_metadata(None) for t in tables])


def read_outputs(directory: Path, model: str = "vggish") -> Outputs:
  """Reads <model>/frames/, <model>/clips/, errors/ (every ``*.parquet`` present),
  <model>/tfrecord/ names and run.json. Errors rows of other models are left out."""
  part_files = {}
  tables = {}
  for sub in ("frames", "clips", "errors", "tfrecord"):
    folder = directory / sub if sub == "errors" else directory / model / sub
    part_files[sub] = sorted(glob.glob(str(folder / "*")))
  for sub in _OUTPUT_TABLES:
    parquet = [p for p in part_files[sub] if p.endswith(".parquet") and os.path.isfile(p)]
    table = _read_parquet_files(parquet)
    tables[sub] = table if table is not None else pa.table({"uri": pa.array([], pa.string())})
  if "model" in tables["errors"].column_names:
    errors = tables["errors"]
    tables["errors"] = errors.filter(pa.compute.equal(errors["model"], model))
  run_json = directory / "run.json"
  record = json.loads(run_json.read_text()) if run_json.exists() else None
  return Outputs(directory, tables, part_files, record, model)
