"""Runs one DAG with ``dag.test()`` (in process, sqlite metadata DB) and prints the outcome as JSON.

Runs inside .venv-airflow, started by tests/test_dags.py with AIRFLOW_HOME and the
metadata DB prepared (``airflow db migrate``):

  .venv-airflow/bin/python tests/airflow_checks/run_dag_test.py DAGS_FOLDER DAG_ID LOGICAL_DATE CONF_JSON
"""

from __future__ import annotations

import json
import sys

__all__: list[str] = []


def main(dags_folder: str, dag_id: str, logical_date: str, conf_json: str) -> None:
  import pendulum
  try:
    from airflow.dag_processing.dagbag import DagBag
  except ImportError:
    from airflow.models.dagbag import DagBag
  bag = DagBag(dag_folder=dags_folder)  # examples: AIRFLOW__CORE__LOAD_EXAMPLES=False
  if bag.import_errors:
    raise SystemExit(f"expected no DAG import errors, found {bag.import_errors}")
  dag = bag.dags[dag_id]  # no DB lookup
  dag_run = dag.test(logical_date=pendulum.parse(logical_date), run_conf=json.loads(conf_json))
  tasks = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
  print("AUDIOBEAM_DAG_TEST_RESULT " + json.dumps({"state": str(dag_run.state), "tasks": tasks,
                                                   "run_id": dag_run.run_id}))


if __name__ == "__main__":
  main(*sys.argv[1:5])
