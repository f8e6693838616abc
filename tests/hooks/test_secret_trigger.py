"""``CyberArkSecretTrigger`` run on an event loop in this process, against the dev server over HTTPS.

What it fires is stored in the metadata DB and handed to the task, so every event is checked for
the values it must never hold. The real triggerer runs it in ``tests/airflow/test_triggerer.py``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
from typing import Any

import pytest

from cyberark_ops.scrub import leak_forms
from cyberark_ops.triggers import CyberArkSecretTrigger
from cyberark_ops.triggers.cyberark import MIN_POLL_INTERVAL
from tests.hooks.conftest import Connections

DB_PASSWORD = "Demo-PG-Passw0rd!"


def events(trigger: CyberArkSecretTrigger, *, limit: int = 5) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        fired = []
        async for event in trigger.run():
            fired.append(event.payload)
            if len(fired) >= limit:
                break
        return fired

    return asyncio.run(collect())


def assert_holds_no_value(payload: Any, *values: str) -> None:
    text = json.dumps(payload)
    for value in values:
        for form, leaked in leak_forms(value).items():
            assert leaked not in text, f"{form} of a fetched value in the event"


def test_readable_refs_fire_one_event_with_the_refs_only(conns: Connections) -> None:
    trigger = CyberArkSecretTrigger(["prod/db/password", "prod/db/username"], conns.conjur())
    fired = events(trigger)
    assert fired == [{"status": "readable", "refs": ["prod/db/password", "prod/db/username"]}]
    assert_holds_no_value(fired, DB_PASSWORD, "airflow_demo")
    assert [e["action"] for e in conns.calls()] == ["conjur.authenticate", "conjur.batch"]


def test_an_unreadable_ref_fires_an_error_naming_it_and_no_value(conns: Connections) -> None:
    trigger = CyberArkSecretTrigger(["prod/db/password", "prod/no/such"], conns.conjur())
    (event,) = events(trigger)
    assert event["status"] == "error"
    assert event["error"] == "NotFound"
    assert "prod/no/such" in event["message"]
    assert_holds_no_value(event, DB_PASSWORD)


def test_a_rotation_fires_changed_naming_the_rotated_ref(conns: Connections) -> None:
    trigger = CyberArkSecretTrigger(
        ["prod/db/password", "prod/db/username"], conns.conjur(), wait_for_change=True, poll_interval=MIN_POLL_INTERVAL
    )

    async def rotate_while_waiting() -> list[dict[str, Any]]:
        run = trigger.run()
        waiting = asyncio.ensure_future(run.__anext__())
        while not [e for e in conns.calls() if e["action"] == "conjur.batch"]:
            await asyncio.sleep(0.01)  # the first values were read
        conns.server.app.rotate("conjur:prod/db/password", "Rotated-PG-Passw0rd!")
        event = await waiting
        await run.aclose()
        return [event.payload]

    (event,) = asyncio.run(rotate_while_waiting())
    assert event["status"] == "changed"
    assert event["changed"] == ["prod/db/password"]
    assert event["polls"] >= 1
    assert_holds_no_value(event, DB_PASSWORD, "Rotated-PG-Passw0rd!")
    # The first values lived in the run's frame only: nothing of them on the trigger, its repr or
    # what it serializes into the trigger table.
    kept = repr(vars(trigger)) + repr(trigger) + json.dumps(trigger.serialize())
    assert DB_PASSWORD not in kept and "Rotated-PG-Passw0rd!" not in kept


def test_the_audited_reason_names_the_deferred_task(conns: Connections) -> None:
    class DeferredTask:
        dag_id, task_id, run_id, map_index = "etl", "wait_for_db", "manual__2026", 3

    trigger = CyberArkSecretTrigger(["prod/db/password"], conns.conjur(), reason="rotation gate")
    trigger.task_instance = DeferredTask()
    events(trigger)
    (batch,) = [e for e in conns.calls() if e["action"] == "conjur.batch"]
    assert batch["reason"] == "airflow-dag-etl-task-wait-for-db-run-manual-2026-map-3-rotation-gate"


def test_serialize_round_trips_through_the_classpath(conns: Connections) -> None:
    trigger = CyberArkSecretTrigger(["a/b", "a/b", "c"], "cyberark_x", wait_for_change=True, poll_interval=5)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["refs"] == ["a/b", "c"]  # duplicates read once
    json.dumps(kwargs)  # stored as JSON in the trigger table


@pytest.mark.parametrize(
    ("refs", "poll_interval", "named"),
    [
        ("prod/db/password", 60.0, "refs"),
        ([], 60.0, "refs"),
        (["ok", ""], 60.0, "refs"),
        (["ok", 3], 60.0, "refs"),
        (["ok"], 0.01, "poll_interval"),
        (["ok"], math.nan, "poll_interval"),
        (["ok"], math.inf, "poll_interval"),
        (["ok"], True, "poll_interval"),
        (["ok"], "60", "poll_interval"),
    ],
)
def test_bad_arguments_are_refused_naming_the_parameter(refs: Any, poll_interval: Any, named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named}:"):
        CyberArkSecretTrigger(refs, poll_interval=poll_interval)
