"""Vaulted SQL on SQLite: ``VaultedSqlOperator`` fetches the database account inside the task.

The DAG names only *which* CyberArk account to use. At run time the operator fetches it over CCP,
hands the SQLite hook an in-memory connection, runs the SQL, scrubs the result and forgets the
account. Nothing lands in the metadata DB, the environment or a rendered template.

Against the dev server's demo seed (``cyberark-ops devserver --print-connections`` prints the
``cyberark_ccp`` connection): the account ``App-Dev/sqlite-dev`` has a SQLite file as its address.
On a real vault, point ``credential_ref`` at your own Safe and Object.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from cyberark_ops import VaultedSqlOperator

with DAG(
    dag_id="cyberark_vaulted_sql",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
):
    VaultedSqlOperator(
        task_id="sales_by_region",
        vault_conn_id="cyberark_ccp",
        credential_ref="ccp:Safe=App-Dev;Object=sqlite-dev",
        conn_type="sqlite",
        vault_reason="daily sales report",
        sql="""
            create table if not exists sales (region text, amount integer);
            delete from sales;
            insert into sales values ('emea', 120), ('amer', 340), ('apac', 95), ('emea', 60);
            select region, sum(amount) from sales group by region order by region;
        """,
        split_statements=True,
        return_last=True,
    )
