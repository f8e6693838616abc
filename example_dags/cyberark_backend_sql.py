"""The secrets backend: an ordinary ``SQLExecuteQueryOperator``, with no CyberArk code in the DAG.

With ``cyberark_ops.secrets.CyberArkSecretsBackend`` configured (docs/secrets-backend.md), Airflow
looks the connection ``demo_sqlite`` up in Conjur at ``airflow/dev/connections/demo_sqlite``,
given ``"connections_path": "airflow/{env}/connections/{conn_id}"``, ``"env": "dev"`` and a
``connections_lookup_pattern`` of ``^demo_``. Ids outside the pattern cost no vault call.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG

with DAG(
    dag_id="cyberark_backend_sql",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
):
    SQLExecuteQueryOperator(
        task_id="sqlite_version",
        conn_id="demo_sqlite",
        sql="select 'backend' as served_by, sqlite_version() is not null as has_version",
    )
