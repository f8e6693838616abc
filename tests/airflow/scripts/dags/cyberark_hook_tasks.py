"""DAG for ``tests/airflow/test_hook_in_tasks.py``: tasks that fetch through ``CyberArkHook``.

A hook is built at module level on purpose: the dag-processor imports this file over and over,
and that must never reach the vault. Tasks return only non-secret facts (lengths, user names,
booleans), so the XComs the test reads hold no credential.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from cyberark_ops import CyberArkHook

BATCH_PATHS = [f"prod/batch/secret-{n:02d}" for n in range(1, 21)]

# Constructed while the file is parsed; only ``get_*`` inside a task may call the vault.
MODULE_HOOK = CyberArkHook("cyberark_default")


@dag(
    dag_id="cyberark_hook_tasks",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "test"],
)
def cyberark_hook_tasks() -> None:
    @task
    def conjur_secret() -> int:
        return len(MODULE_HOOK.get_secret("prod/db/password"))

    @task
    def conjur_batch() -> dict[str, bool]:
        # Its own identity (connection cyberark_batch), so its vault calls can be told apart.
        values = CyberArkHook("cyberark_batch").get_secrets(BATCH_PATHS)
        return {path: values[path] == f"batch-value-{path[-2:]}" for path in BATCH_PATHS}

    @task
    def ccp_credential() -> str | None:
        hook = CyberArkHook("cyberark_ccp", reason="nightly load")
        return hook.get_credential("Safe=DB-Prod;Object=pg-prod").username

    conjur_secret() >> conjur_batch() >> ccp_credential()


cyberark_hook_tasks()
