"""Fetching in a real ``airflow triggerer``: the loop keeps every other trigger's schedule.

One stack (api-server, scheduler, dag-processor, **triggerer**) runs two DAGs against a dev server
that answers every Conjur fetch only after 6 s:

* ``cyberark_triggerer_proof`` (tests/airflow/scripts/triggerer): a ticking trigger writes a
  timestamp every 50 ms while ``CyberArkSecretTrigger`` fetches (the hook's async methods), then
  while a control trigger calls the sync fetch on the loop. Counted: the heartbeat's ticks inside
  each fetch's time at the vault (from the dev server's audit log) — many for the async fetch,
  none for the control, which shows the count detects a blocked loop;
* ``cyberark_deferrable`` (example_dags/): the example deferrable operator, as a user runs it.

Afterwards no form of the fetched values or of the API key may be in a task or trigger log, the
triggerer's own output, or any metadata table (event payloads and ``next_kwargs`` included).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import SCRIPTS, DagRun, connection, find_leaks, run_dags, stored_places, vault_calls
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
PROOF = "cyberark_triggerer_proof"
EXAMPLE = "cyberark_deferrable"
VAULT_LATENCY = 6.0
"""Seconds each fetch waits at the vault. Also outlasts the window of Airflow's resume race
(apache/airflow#67287, open in 3.3.2): a trigger firing within ~3 s of its deferral, before the
scheduler drained the deferring try's exit, fails the resumed try; at 2 s every try lost it in CI."""
EDGE = 0.05
"""Seconds left out at each end of a fetch's time at the vault: the audit log's times are whole milliseconds."""
FETCHED = {"db password": "Demo-PG-Passw0rd!", "db username": "airflow_demo", "host api key": HOST_API_KEY}


@dataclass
class Triggered:
    runs: dict[str, DagRun]
    stack: AirflowStack
    calls: list[dict[str, Any]]
    ticks: list[float]

    def ticks_during(self, call: dict[str, Any]) -> int:
        """Heartbeat ticks while the vault held ``call`` (its arrival to its answer)."""
        answered = dt.datetime.fromisoformat(call["time"]).timestamp()
        arrived = answered - call["duration_ms"] / 1000
        return sum(1 for tick in self.ticks if arrived + EDGE < tick < answered - EDGE)

    def fetch(self, action: str, reason_part: str) -> dict[str, Any]:
        """The last such call: the try that succeeded, when Airflow's resume race failed an earlier one."""
        calls = [c for c in self.calls if c["action"] == action and reason_part in str(c.get("reason"))]
        assert calls, f"no {action} call with {reason_part!r} in its reason"
        return calls[-1]


@pytest.fixture(scope="module")
def triggered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Triggered]:
    base = tmp_path_factory.mktemp("triggerer")
    home, dags, proof_dir = base / "home", base / "dags", base / "proof"
    proof_dir.mkdir()
    shutil.copytree(SCRIPTS / "triggerer" / "dags", dags)
    shutil.copy(EXAMPLES / f"{EXAMPLE}.py", dags)
    shutil.copytree(SCRIPTS / "triggerer" / "plugins", home / "plugins")
    with DevServer(state_dir=base / "devserver") as server:
        for endpoint in ("conjur.retrieve", "conjur.batch"):
            server.app.knobs.set_latency(endpoint, VAULT_LATENCY)
        env = {
            "AIRFLOW_CONN_CYBERARK_CONJUR": connection(
                server,
                login=HOST_LOGIN,
                password=HOST_API_KEY,
                api="conjur",
                account=server.app.conjur.account,
                read_timeout=VAULT_LATENCY * 3,  # the slowed vault answers well inside it
            ),
            "CYBERARK_PROOF_DIR": str(proof_dir),
        }
        stack = AirflowStack(home, dags, env)
        stack.add_component("triggerer", ["triggerer"])
        runs = run_dags(stack, [PROOF, EXAMPLE], timeout=400)
        calls = vault_calls(server)
    ticks_file = proof_dir / "ticks"
    ticks = [float(line) for line in ticks_file.read_text().split()] if ticks_file.exists() else []
    yield Triggered(runs, stack, calls, ticks)


def test_every_deferred_task_succeeds(triggered: Triggered) -> None:
    explain = "; ".join(run.explain() for run in triggered.runs.values())
    assert triggered.runs[PROOF].task_states == dict.fromkeys(
        ("heartbeat", "fetch_in_trigger", "blocking_control"), "success"
    ), explain
    assert triggered.runs[EXAMPLE].task_states == dict.fromkeys(("wait_until_readable", "connect"), "success"), explain


def test_the_events_and_xcoms_hold_refs_and_facts_only(triggered: Triggered) -> None:
    assert triggered.runs[PROOF].xcom("fetch_in_trigger") == {
        "status": "readable",
        "refs": ["prod/db/password", "prod/db/username"],
    }
    assert triggered.runs[EXAMPLE].xcom("wait_until_readable") == {
        "status": "readable",
        "refs": ["prod/db/username", "prod/db/password"],
    }
    assert triggered.runs[EXAMPLE].xcom("connect") == {
        "fetched": ["prod/db/password", "prod/db/username"],
        "password_length": len(FETCHED["db password"]),
    }
    assert triggered.runs[PROOF].xcom("heartbeat")["ticks"] == len(triggered.ticks)


def test_the_heartbeat_keeps_its_schedule_while_the_trigger_fetches(triggered: Triggered) -> None:
    batch = triggered.fetch("conjur.batch", "task-fetch-in-trigger")
    assert batch["duration_ms"] >= VAULT_LATENCY * 1000
    assert triggered.ticks_during(batch) >= 5, "the triggerer's loop stalled during the async fetch"


def test_the_control_shows_a_sync_fetch_on_the_loop_stops_the_heartbeat(triggered: Triggered) -> None:
    blocking = triggered.fetch("conjur.retrieve", "blocking-control")
    assert blocking["duration_ms"] >= VAULT_LATENCY * 1000
    assert triggered.ticks_during(blocking) == 0
    # The heartbeat was running before and after it: the gap is the blocked loop, not a late start.
    answered = dt.datetime.fromisoformat(blocking["time"]).timestamp()
    assert min(triggered.ticks) < answered - VAULT_LATENCY < answered < max(triggered.ticks)


def test_the_trigger_audits_the_deferred_task(triggered: Triggered) -> None:
    batch = triggered.fetch("conjur.batch", "task-fetch-in-trigger")
    run_id = triggered.runs[PROOF].run_id
    assert batch["reason"].startswith(f"airflow-dag-{PROOF.replace('_', '-')}-task-fetch-in-trigger-run-")
    assert batch["reason"].endswith("triggerer-proof")
    assert run_id.split("__")[0] in batch["reason"]


def test_a_value_the_trigger_logs_comes_out_masked(triggered: Triggered) -> None:
    texts = [path.read_text(errors="replace") for path in triggered.stack.task_log_files(PROOF)]
    texts.append(triggered.stack.process_log("triggerer").read_text(errors="replace"))
    logged = [text for text in texts if "canary from the trigger: " in text]
    assert logged, "the trigger's log line reached no log"
    assert all("canary from the trigger: ***" in text for text in logged)


def test_no_form_of_any_fetched_value_is_stored_anywhere(triggered: Triggered) -> None:
    places = stored_places(triggered.stack, [PROOF, EXAMPLE])
    for name in ("triggerer", "scheduler", "dag-processor"):
        places[f"{name} output"] = triggered.stack.process_log(name).read_bytes()
    forms = {f"{what} {form}": value for what, secret in FETCHED.items() for form, value in leak_forms(secret).items()}
    assert find_leaks(places, forms) == []
