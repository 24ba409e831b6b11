"""Loads dags/ with Airflow's DagBag and prints what a test needs to know, as JSON.

Runs inside .venv-airflow (``make airflow-venv``), started by tests/test_dags.py:

  .venv-airflow/bin/python tests/airflow_checks/check_dag_import.py DAGS_FOLDER
"""

from __future__ import annotations

import json
import sys

__all__: list[str] = []


def main(dags_folder: str) -> None:
  try:
    from airflow.dag_processing.dagbag import DagBag
  except ImportError:  # older Airflow 3 layouts
    from airflow.models.dagbag import DagBag
  bag = DagBag(dag_folder=dags_folder)  # examples: AIRFLOW__CORE__LOAD_EXAMPLES=False
  dags = {}
  for dag_id in sorted(bag.dags):
    dag = bag.dags[dag_id]  # no DB lookup
    dags[dag_id] = {
        "tasks": sorted(t.task_id for t in dag.tasks),
        "operators": sorted({type(t).__name__ for t in dag.tasks}),
        "params": sorted(dag.params.keys()),
        "schedule": type(dag.timetable).__name__,
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
    }
  print(json.dumps({
      "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
      "dags": dags,
      "heavy_modules_loaded": sorted(m for m in ("tensorflow", "pipelines", "transforms", "vggish")
                                     if m in sys.modules),
  }))


if __name__ == "__main__":
  main(sys.argv[1])
