"""DAG for ``tests/migrate/test_end_to_end.py``: plain Airflow code, no CyberArk import. Every
connection and variable comes from whatever Airflow resolves; the task compares digests with the
expected ones and returns only the ids that differ (its XCom holds no value)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pendulum
from airflow.sdk import BaseHook, Variable, dag, task

EXPECTED = json.loads(os.environ.get("CYBERARK_TEST_EXPECTED", '{"connections": {}, "variables": {}}'))


def connection_digest(conn: Any) -> str:
    fields = [getattr(conn, name) for name in ("conn_type", "host", "login", "password", "schema", "port")]
    fields.append(conn.extra_dejson)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dag(dag_id="migrated_secrets", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def migrated_secrets() -> None:
    @task
    def use_everything() -> dict[str, object]:
        wrong = [c for c, d in EXPECTED["connections"].items() if connection_digest(BaseHook.get_connection(c)) != d]
        wrong += [
            k for k, d in EXPECTED["variables"].items() if hashlib.sha256(Variable.get(k).encode()).hexdigest() != d
        ]
        return {"checked": len(EXPECTED["connections"]) + len(EXPECTED["variables"]), "wrong": wrong}

    use_everything()


migrated_secrets()
