"""The Airflow DAG in dags/ loads cleanly and really runs the pipeline, idempotently.

Airflow lives in its own venv (``.venv-airflow``, ``make airflow-venv``): these tests
drive it through the scripts in tests/airflow_checks/ as subprocesses. The ``dag.test()``
run uses a temporary AIRFLOW_HOME with a sqlite metadata DB (``airflow db migrate``),
the local runner, a tiny corpus and the test weights; the operator launches
``python -m pipelines.embed`` with this venv's interpreter (``$AUDIOBEAM_PYTHON``).

Without ``.venv-airflow`` the tests fail under ``CI=true`` (CI must run them) and are
skipped otherwise, with the command that creates it.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

__all__: list[str] = []

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DAGS = _REPO / "dags"
_CHECKS = pathlib.Path(__file__).resolve().parent / "airflow_checks"
_AIRFLOW_PYTHON = _REPO / ".venv-airflow" / "bin" / "python"
_DAG_ID = "audiobeam_embed_daily"
_HEAVY_MODULES = ("apache_beam", "tensorflow", "pipelines", "transforms", "vggish")
_LOGICAL_DATE = "2026-03-04"


@pytest.fixture(scope="session")
def airflow_python() -> pathlib.Path:
  if not _AIRFLOW_PYTHON.exists():
    message = (f"expected Airflow's venv at {_AIRFLOW_PYTHON.parent.parent}, found none; "
               "create it with `make airflow-venv`")
    if os.environ.get("CI", "").lower() == "true":
      pytest.fail(message)
    pytest.skip(message)
  return _AIRFLOW_PYTHON


def _airflow_env(airflow_home: pathlib.Path) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
  env.update({
      "AIRFLOW_HOME": str(airflow_home),
      "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
      "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
      "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
      "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
      "AUDIOBEAM_PYTHON": sys.executable,  # the pipeline runs in this (the test) venv
      "PYTHONPATH": "",
  })
  return env


def _run(args, env, timeout_seconds: float) -> subprocess.CompletedProcess:
  process = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout_seconds,
                           cwd=str(env["AIRFLOW_HOME"]))
  if process.returncode != 0:
    raise AssertionError(f"expected {args[1:3]} to exit 0, found {process.returncode}:\n"
                         f"{process.stdout[-4000:]}\n{process.stderr[-8000:]}")
  return process


def test_dag_files_import_neither_beam_nor_tensorflow_at_top_level():
  for path in sorted(_DAGS.glob("*.py")):
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = set()
    for node in tree.body:  # module level only: imports inside functions are fine
      if isinstance(node, ast.Import):
        imported |= {alias.name.split(".")[0] for alias in node.names}
      elif isinstance(node, ast.ImportFrom) and node.module:
        imported.add(node.module.split(".")[0])
    assert not imported & set(_HEAVY_MODULES), (path.name, sorted(imported & set(_HEAVY_MODULES)))


@pytest.fixture(scope="module")
def airflow_home(airflow_python, tmp_path_factory) -> pathlib.Path:
  home = tmp_path_factory.mktemp("airflow_home")
  airflow = airflow_python.parent / "airflow"
  _run([str(airflow), "db", "migrate"], _airflow_env(home), timeout_seconds=300)
  return home


def test_dagbag_loads_dag_without_import_errors(airflow_python, tmp_path):
  process = _run([str(airflow_python), str(_CHECKS / "check_dag_import.py"), str(_DAGS)],
                 _airflow_env(tmp_path), timeout_seconds=300)
  report = json.loads(process.stdout.strip().splitlines()[-1])

  assert report["import_errors"] == {}
  assert report["heavy_modules_loaded"] == []
  dag = report["dags"][_DAG_ID]
  assert dag["tasks"] == ["embed"] and dag["operators"] == ["BeamRunPythonPipelineOperator"]
  assert {"input", "output_root", "runner", "config", "checkpoint", "pca_params",
          "incremental"} <= set(dag["params"])
  assert dag["max_active_runs"] == 1 and dag["catchup"] is False


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> pathlib.Path:
  directory = tmp_path_factory.mktemp("dag_corpus")
  rate_hz = 16000
  t = np.arange(int(rate_hz * 2.1)) / rate_hz
  sf.write(directory / "tone_a.wav", 0.3 * np.sin(2 * np.pi * 440.0 * t), rate_hz, subtype="PCM_16")
  sf.write(directory / "tone_b.wav", 0.3 * np.sin(2 * np.pi * 660.0 * t), rate_hz, subtype="PCM_16")
  return directory


def _dag_test(airflow_python, airflow_home, conf, logical_date: str = _LOGICAL_DATE) -> dict:
  process = _run([str(airflow_python), str(_CHECKS / "run_dag_test.py"), str(_DAGS), _DAG_ID,
                  logical_date, json.dumps(conf)], _airflow_env(airflow_home), timeout_seconds=600)
  lines = [l for l in process.stdout.splitlines() if l.startswith("AUDIOBEAM_DAG_TEST_RESULT ")]
  assert lines, process.stdout[-4000:] + process.stderr[-4000:]
  return json.loads(lines[-1].split(" ", 1)[1])


def _clips(partition: pathlib.Path) -> dict[str, list[float]]:
  rows = {}
  for path in sorted((partition / "vggish" / "clips").glob("*.parquet")):
    table = pq.read_table(path, columns=["uri", "embedding"]).to_pydict()
    rows.update(zip(table["uri"], table["embedding"]))
  return rows


def test_dag_run_embeds_into_date_partition_and_rerun_of_date_is_idempotent(
    airflow_python, airflow_home, tiny_corpus, test_weights, tmp_path):
  output_root = tmp_path / "embeddings"
  conf = {
      "input": [str(tiny_corpus / "*.wav")],
      "output_root": str(output_root),
      "runner": "FnApiRunner",
      "config": str(_REPO / "configs" / "local.yaml"),
      "checkpoint": test_weights.checkpoint,
      "pca_params": test_weights.pca_params,
  }
  partition = output_root / f"dt={_LOGICAL_DATE}"

  first = _dag_test(airflow_python, airflow_home, conf)
  first_clips = _clips(partition)
  first_run = json.loads((partition / "run.json").read_text())

  assert first["state"] == "success" and first["tasks"] == {"embed": "success"}, first
  assert [p.name for p in output_root.iterdir()] == [partition.name]
  assert sorted(first_clips) == sorted(str(p) for p in tiny_corpus.glob("*.wav"))
  assert len(list((partition / "vggish" / "frames").glob("*.parquet"))) >= 1
  assert first_run["config"]["model"] == ["vggish"]

  second = _dag_test(airflow_python, airflow_home, conf)  # the same date again
  second_run = json.loads((partition / "run.json").read_text())

  assert second["state"] == "success", second
  assert second_run["run_id"] != first_run["run_id"]
  # Same rows, once. By default the DAG is incremental, so the re-run finds every input in
  # the date's manifest, embeds nothing and keeps the first run's files.
  assert _clips(partition) == first_clips
  assert _row_count(partition / "vggish" / "clips") == len(first_clips)
  assert _row_count(partition / "vggish" / "frames") == first_run["counts"]["models"]["vggish"]["frames"]
  assert second_run["counts"]["files_skipped_existing"] == len(first_clips)


def _row_count(directory: pathlib.Path) -> int:
  return sum(pq.read_metadata(path).num_rows for path in directory.glob("*.parquet"))


def test_non_incremental_rerun_of_a_date_replaces_its_files(
    airflow_python, airflow_home, tiny_corpus, test_weights, tmp_path):
  output_root = tmp_path / "embeddings"
  conf = {
      "input": [str(tiny_corpus / "*.wav")], "output_root": str(output_root),
      "runner": "FnApiRunner", "config": str(_REPO / "configs" / "local.yaml"),
      "checkpoint": test_weights.checkpoint, "pca_params": test_weights.pca_params,
      "incremental": False,
  }
  partition = output_root / f"dt={_LOGICAL_DATE}"
  _dag_test(airflow_python, airflow_home, conf)
  first_clips = _clips(partition)
  second = _dag_test(airflow_python, airflow_home, conf)
  second_run = json.loads((partition / "run.json").read_text())

  assert second["state"] == "success", second
  assert _clips(partition) == first_clips
  parts = [p.name for sub in ("vggish/clips", "vggish/frames", "errors")
           for p in (partition / sub).glob("part-*")]
  assert parts and all(name.startswith(f"part-{second_run['run_id']}-") for name in parts), parts


def test_incremental_dag_runs_embed_only_new_files_into_the_next_partition(
    airflow_python, airflow_home, tiny_corpus, test_weights, tmp_path):
  audio, output_root = tmp_path / "audio", tmp_path / "embeddings"
  audio.mkdir()
  for path in tiny_corpus.glob("*.wav"):
    (audio / path.name).write_bytes(path.read_bytes())
  conf = {
      "input": [str(audio / "*.wav")], "output_root": str(output_root), "runner": "FnApiRunner",
      "config": str(_REPO / "configs" / "local.yaml"), "incremental": True,
      "checkpoint": test_weights.checkpoint, "pca_params": test_weights.pca_params,
  }
  first = _dag_test(airflow_python, airflow_home, conf, logical_date="2026-03-05")
  rate_hz = 16000
  t = np.arange(int(rate_hz * 1.5)) / rate_hz
  sf.write(audio / "tone_new.wav", 0.3 * np.sin(2 * np.pi * 880.0 * t), rate_hz, subtype="PCM_16")

  second = _dag_test(airflow_python, airflow_home, conf, logical_date="2026-03-06")

  assert first["state"] == second["state"] == "success", (first, second)
  assert sorted(_clips(output_root / "dt=2026-03-05")) == sorted(
      str(audio / p.name) for p in tiny_corpus.glob("*.wav"))
  assert sorted(_clips(output_root / "dt=2026-03-06")) == [str(audio / "tone_new.wav")]
