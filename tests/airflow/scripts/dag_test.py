"""Subprocess entry point: runs one DAG with ``dag.test()`` and prints the outcome as JSON.

Runs in its own interpreter so that the caller's ``AIRFLOW_HOME`` / ``AIRFLOW_CONN_*`` settings
apply before Airflow is imported, and nothing leaks into (or out of) the pytest process.
Usage: ``python dag_test.py <dag_id>`` with ``AIRFLOW__CORE__DAGS_FOLDER`` set and the DB migrated.
The last stdout line is ``RESULT {"run_id": ..., "state": ..., "task_states": {...}}``.
"""

from __future__ import annotations

import json
import sys


def main(dag_id: str) -> int:
    from airflow import settings

    try:
        from airflow.dag_processing.dagbag import DagBag  # 3.2+
    except ImportError:
        from airflow.models.dagbag import DagBag  # 3.1

    bag = DagBag(settings.DAGS_FOLDER)
    if bag.import_errors:
        print("RESULT " + json.dumps({"import_errors": bag.import_errors}), flush=True)
        return 1
    dag = bag.get_dag(dag_id)
    if dag is None:
        print("RESULT " + json.dumps({"import_errors": {dag_id: "not found"}}), flush=True)
        return 1
    run = dag.test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print("RESULT " + json.dumps({"run_id": run.run_id, "state": str(run.state), "task_states": states}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
