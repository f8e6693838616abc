"""Vaulted SQL on PostgreSQL: host, port, database, user and password all come from CyberArk.

``VaultedSqlOperator`` with no ``conn_id``: the CCP account ``DB-Prod/pg-prod`` of the demo seed
carries its address, port and database, so the DAG needs no Airflow connection for the database.
Needs ``apache-airflow-providers-postgres`` (the ``postgres`` extra) and, against the demo seed, a
PostgreSQL at 127.0.0.1:5432 with the login role ``etl_user`` (password: the account's secret in
the seed) owning the database ``sales``. If the account is rotated
between the fetch and the login, the operator fetches it again once and retries the statement.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from cyberark_ops import VaultedSqlOperator

with DAG(
    dag_id="cyberark_vaulted_postgres",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
):
    VaultedSqlOperator(
        task_id="whoami",
        vault_conn_id="cyberark_ccp",
        credential_ref="ccp:Safe=DB-Prod;Object=pg-prod",
        conn_type="postgres",
        vault_reason="warehouse health check",
        sql="select current_user, current_database()",
    )
