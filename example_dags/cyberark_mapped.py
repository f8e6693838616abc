"""Dynamic task mapping: one mapped task instance per credential, each fetching its own.

Each mapped instance is its own task process, so it fetches (and audits) just the credential it
needs; the reason sent to the vault names the DAG, the task, the run and the map index.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="cyberark_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
)
def cyberark_mapped() -> None:
    @task
    def secret_ids() -> list[str]:
        return [f"prod/batch/secret-{n:02d}" for n in range(1, 6)]

    @task
    def fetch_one(variable_id: str) -> dict[str, Any]:
        from cyberark_ops import CyberArkHook

        with CyberArkHook("cyberark_conjur", reason="mapped export") as hook:
            value = hook.get_secret(variable_id)
        return {"id": variable_id, "length": len(value)}

    fetch_one.expand(variable_id=secret_ids())


cyberark_mapped()
