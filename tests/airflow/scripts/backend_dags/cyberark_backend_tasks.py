"""DAG for ``tests/airflow/test_secrets_backend.py``: tasks with no CyberArk code at all.

Connections and variables come from whatever secrets backend the stack configures. Each task
returns only non-secret facts (login, a SHA-256 of the password, its pid), so its XCom holds no
credential while the test can still check the values and count task processes.
"""

from __future__ import annotations

import hashlib
import os

import pendulum
from airflow.sdk import BaseHook, Variable, dag, task

CONN_ID = os.environ.get("CYBERARK_TEST_CONN_ID", "missing")
VARIABLE = os.environ.get("CYBERARK_TEST_VARIABLE", "missing")
TASKS = int(os.environ.get("CYBERARK_TEST_TASKS", "2"))


def _digest(value: str | None) -> str:
    return hashlib.sha256((value or "").encode()).hexdigest()


@dag(
    dag_id="cyberark_backend_tasks",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "test"],
)
def cyberark_backend_tasks() -> None:
    @task
    def use_connection(n: int) -> dict[str, object]:
        conn = BaseHook.get_connection(CONN_ID)
        again = BaseHook.get_connection(CONN_ID)  # hooks look connections up more than once
        value = Variable.get(VARIABLE)
        return {
            "n": n,
            "conn_type": conn.conn_type,
            # As a digest: every value a task fetched is scrubbed from its XComs, and the Conjur case's
            # variable holds the same text as the login.
            "login_sha256": _digest(conn.login),
            "password_sha256": _digest(conn.password),
            "same_twice": again.password == conn.password,
            "variable_sha256": _digest(value),
            "pid": os.getpid(),
        }

    for n in range(TASKS):
        use_connection.override(task_id=f"use_connection_{n}")(n)


cyberark_backend_tasks()
