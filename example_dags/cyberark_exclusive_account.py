"""An exclusive, one-time-password PVWA account used by mapped tasks, checked in after each.

On a platform with "Enforce check-in/check-out exclusive access", a retrieve checks the account out
to the PVWA user: nobody else can retrieve it until it is checked in. With "Enforce one-time
password access" the CPM changes the password at check-in. ``check_in=True`` makes the operator
check the account in when the task ends (success, failure, ``on_kill``, SIGTERM), so the next task,
or a person, gets a fresh password at once instead of waiting for the CPM's release.

Two tasks wanting the account at once would collide ("checked out by another user"), so the mapped
instances run one after the other: ``max_active_tis_per_dag=1`` here, and for several DAGs sharing
the account an Airflow pool of size 1 (``airflow pools set cyberark_exclusive 1 "exclusive PVWA
account"``, then ``pool="cyberark_exclusive"``). Retries with backoff cover an account a person has
checked out.

Setup: the ``cyberark_pvwa`` connection (``cyberark-ops devserver --print-connections``); the
account through the Airflow variable ``exclusive_account_ref`` (default: the dev server's demo
SQLite account, which is not exclusive: there the check-in is refused and logged, and the tasks
succeed all the same). A ticket for platforms that require one comes from the connection's
``ticketing_system`` / ``ticket_id`` extras, or per run: trigger with
``{"ticketing_system": "ServiceNow", "ticket_id": "CHG0012345"}``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from cyberark_ops import VaultedSqlOperator

with DAG(
    dag_id="cyberark_exclusive_account",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
):
    VaultedSqlOperator.partial(
        task_id="load_partition",
        vault_conn_id="cyberark_pvwa",
        credential_ref="{{ var.value.get('exclusive_account_ref', 'pvwa:App-Dev/sqlite-dev') }}",
        conn_type="sqlite",
        check_in=True,
        # Empty when the run's conf has no ticket: the connection's ticket (if any) is sent.
        ticketing_system="{{ dag_run.conf.get('ticketing_system', '') }}",
        ticket_id="{{ dag_run.conf.get('ticket_id', '') }}",
        max_active_tis_per_dag=1,
        retries=3,
        retry_delay=timedelta(seconds=20),
        retry_exponential_backoff=2,
    ).expand(sql=["select 'north', 1", "select 'south', 2", "select 'west', 3"])
