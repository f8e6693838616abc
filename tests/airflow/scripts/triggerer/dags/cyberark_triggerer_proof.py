"""A heartbeat trigger beside two fetching ones, for tests/airflow/test_triggerer.py.

``heartbeat`` keeps a ticking trigger deferred while ``fetch_in_trigger`` (CyberArkSecretTrigger)
and then ``blocking_control`` (the sync fetch on the loop) read from a slowed vault.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import BaseOperator, dag
from proof_triggers import BlockingFetchTrigger, ProofFetchTrigger, TickingTrigger

PROOF_DIR = os.environ.get("CYBERARK_PROOF_DIR", "/nonexistent")
CONN_ID = "cyberark_conjur"


class Deferring(BaseOperator):
    def __init__(self, *, make_trigger: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.make_trigger = make_trigger

    def execute(self, context: Any) -> None:
        self.defer(trigger=self.make_trigger(), method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") == "error":
            raise RuntimeError(f"{event['error']}: {event['message']}")
        return event


@dag(
    dag_id="cyberark_triggerer_proof",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # Airflow's resume race (see example_dags/cyberark_deferrable.py): a retry defers anew.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
)
def cyberark_triggerer_proof() -> None:
    Deferring(task_id="heartbeat", make_trigger=lambda: TickingTrigger(PROOF_DIR))
    fetch = Deferring(
        task_id="fetch_in_trigger",
        make_trigger=lambda: ProofFetchTrigger(
            ["prod/db/password", "prod/db/username"], CONN_ID, proof_dir=PROOF_DIR, reason="triggerer proof"
        ),
    )
    blocking = Deferring(
        task_id="blocking_control",
        make_trigger=lambda: BlockingFetchTrigger("prod/db/password", CONN_ID, PROOF_DIR),
    )
    fetch >> blocking


cyberark_triggerer_proof()
