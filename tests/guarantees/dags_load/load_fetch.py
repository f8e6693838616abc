"""Mapped tasks that each fetch one credential through the hook: the load test's DAG.

Each task also logs the value it fetched (Airflow must mask it) and returns only its length, so the
canary has every chance to reach the task log and the metadata DB. ``CYBERARK_LOAD_TASKS`` sets the
number of mapped tasks (tests/guarantees/test_load.py).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

MAPPED_TASKS = int(os.environ.get("CYBERARK_LOAD_TASKS", "200"))
SECRET = "prod/db/password"

log = logging.getLogger("load")

with DAG("cyberark_load", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    # Retries are allowed, as users would: the test asserts none was needed.
    @task(retries=2, retry_delay=timedelta(seconds=2))
    def fetch(index: int) -> int:
        # Imported here: parsing the file (the dag-processor, every task process) stays cheap.
        from cyberark_ops.hooks.cyberark import CyberArkHook

        value = CyberArkHook().get_secret(SECRET)
        log.info("task %d fetched %s", index, value)
        return len(value)

    fetch.expand(index=list(range(MAPPED_TASKS)))
