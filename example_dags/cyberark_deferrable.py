"""Deferrable: a task waits in the triggerer until its secrets are readable, then fetches them itself.

``WaitForCyberArkSecrets`` defers to ``CyberArkSecretTrigger``, so the wait holds no worker slot:
the triggerer reads the references in its event loop (the hook's async methods, never blocking the
other triggers there) and fires an event holding only the references and a status, never a value.
The downstream task fetches the value in its own process, masked there as every fetch is. With
``wait_for_change=True`` the same operator waits for a rotation instead (a gate before a job that
must run with the new password).

Needs a triggerer (``airflow triggerer``) beside the scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import BaseOperator, dag, task

from cyberark_ops.triggers import CyberArkSecretTrigger

REFS = ["prod/db/username", "prod/db/password"]


class WaitForCyberArkSecrets(BaseOperator):
    """Defers until ``refs`` are readable (or, with ``wait_for_change``, until one is rotated)."""

    def __init__(
        self,
        *,
        refs: Sequence[str],
        cyberark_conn_id: str = "cyberark_default",
        wait_for_change: bool = False,
        poll_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.refs = list(refs)
        self.cyberark_conn_id = cyberark_conn_id
        self.wait_for_change = wait_for_change
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> None:
        trigger = CyberArkSecretTrigger(
            self.refs,
            self.cyberark_conn_id,
            wait_for_change=self.wait_for_change,
            poll_interval=self.poll_interval,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event["status"] == "error":
            raise RuntimeError(f"{event['error']}: {event['message']}")
        return event  # references and a status: safe as XCom


@dag(
    dag_id="cyberark_deferrable",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
)
def cyberark_deferrable() -> None:
    # retries: a trigger that fires within seconds of the deferral can race the executor's report of
    # the deferring run on a busy machine; Airflow then fails the resumed task, and a retry defers anew
    # (apache/airflow#67287: the scheduler forgives that stale report only for a TI still "scheduled").
    ready = WaitForCyberArkSecrets(
        task_id="wait_until_readable",
        refs=REFS,
        cyberark_conn_id="cyberark_conjur",
        retries=2,
        retry_delay=timedelta(seconds=2),
    )

    @task
    def connect() -> dict[str, Any]:
        from cyberark_ops import CyberArkHook

        with CyberArkHook("cyberark_conjur") as hook:
            values = hook.get_secrets(REFS)
        # Each fetched value is masked, the username too: only facts about them leave the task.
        return {"fetched": sorted(values), "password_length": len(values["prod/db/password"])}

    ready >> connect()


cyberark_deferrable()
