"""The demo DAG on Airflow's real supervisor path, and where its credential did not end up.

``dag.test()`` never masks and writes no task log, so this runs ``example_dags/cyberark_sqlite_demo.py``
the way production does: api-server + scheduler (LocalExecutor) + dag-processor on SQLite, in a
throwaway ``AIRFLOW_HOME``, against an in-process dev server seeded with the demo seed. The task
deliberately logs the password; the supervisor must have masked it in the task log, and no form of
it may be stored in the metadata DB. The task process also sends its metrics to a StatsD port this
test listens on, which shows that the task runner initialises ``Stats`` for the hook. The stack is
the one shared with other modules' DAGs (``tests/airflow/shared_stack.py``).

Not checked here: the scheduler's own stdout, where LocalExecutor copies task log lines; the
guarantee suite (``tests/guarantees/test_leaks.py``) searches it, with every other file.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import demo_conjur_connection
from cyberark_ops.devserver.seed import demo_seed
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import DagRun, vault_calls
from tests.airflow.shared_stack import StackPart, shared_stack_part

pytestmark = pytest.mark.airflow

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "example_dags" / "cyberark_sqlite_demo.py"
DAG_ID = "cyberark_sqlite_demo"
TASK_ID = "load_and_query"
STATSD_PREFIX = "cyberark_rp"


def _variable(seed: dict[str, Any], variable_id: str) -> dict[str, Any]:
    return next(v for v in seed["conjur"]["variables"] if v.get("id") == variable_id)


class StatsdListener:
    """Collects the ``cyberark`` lines sent to a UDP port, in a thread, for the life of the stack
    (the scheduler sends metrics too, so the socket is read continuously rather than at the end)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines += [line for line in data.decode(errors="replace").splitlines() if "cyberark" in line]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@dataclass
class DemoRun:
    stack: AirflowStack
    run_id: str
    state: str
    task_states: dict[str, str]
    calls: list[dict[str, Any]]
    password: str
    api_key: str
    statsd_lines: list[str]

    @property
    def db_files(self) -> list[Path]:
        return sorted(self.stack.home.glob("airflow.db*"))

    def log_records(self) -> list[dict[str, Any]]:
        files = self.stack.task_log_files(DAG_ID)
        return [json.loads(line) for path in files for line in path.read_text().splitlines()]


@shared_stack_part
def _demo_part(base: Path, resources: contextlib.ExitStack) -> StackPart:
    base.mkdir()
    seed = demo_seed()
    # The demo's SQLite file goes under this test's tmp dir, not the seed's fixed /tmp path.
    _variable(seed, "demo/sqlite/path")["value"] = str(base / "sales.sqlite")
    password = str(_variable(seed, "prod/db/password")["value"])
    host = next(h for h in seed["conjur"]["hosts"] if h["id"] == "airflow/worker")
    statsd = StatsdListener()
    resources.callback(statsd.close)
    server = resources.enter_context(DevServer(seed, state_dir=base / "devserver"))
    conn = demo_conjur_connection(server.info(), seed, key_dir=base)

    def finish(stack: AirflowStack, runs: Mapping[str, DagRun]) -> DemoRun:
        run = runs[DAG_ID]
        calls = vault_calls(server)
        return DemoRun(
            stack, run.run_id, run.state, run.task_states, calls, password, str(host["api_key"]), statsd.lines
        )

    return StackPart(
        dag_files={DAG_FILE.name: DAG_FILE.read_text()},
        env={
            "AIRFLOW_CONN_CYBERARK_CONJUR": json.dumps(conn),  # the connection the demo DAG names
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": STATSD_PREFIX,
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
            "AIRFLOW__METRICS__METRICS_ALLOW_LIST": "cyberark",
        },
        dag_ids=(DAG_ID,),
        finish=finish,
    )


@pytest.fixture(scope="module")
def demo(shared_stack_runs: dict[str, Any]) -> DemoRun:
    return cast(DemoRun, shared_stack_runs[__name__])


def test_the_run_succeeds_and_the_xcom_holds_the_query_rows(demo: DemoRun) -> None:
    assert demo.state == "success", f"{demo.task_states}; see {demo.stack.process_log('scheduler')}"
    assert demo.task_states == {TASK_ID: "success"}
    with sqlite3.connect(demo.stack.home / "airflow.db") as db:
        (value,) = db.execute(
            "select value from xcom where dag_id=? and run_id=? and task_id=? and key='return_value'",
            (DAG_ID, demo.run_id, TASK_ID),
        ).fetchone()
    assert json.loads(value) == [["amer", 340], ["apac", 95], ["emea", 180]]


def test_the_task_log_has_the_careless_line_masked(demo: DemoRun) -> None:
    events = [str(r.get("event", "")) for r in demo.log_records()]
    careless = [e for e in events if e.startswith("fetched the DB user")]
    # Every fetched value is masked, the user name included.
    assert careless == ["fetched the DB user *** with password ***"]
    fetches = [e for e in events if e.startswith("CyberArk fetch")]
    assert len(fetches) == 1
    assert re.fullmatch(
        r"CyberArk fetch api=conjur action=get_secrets object=3 Conjur variables outcome=success "
        r"duration_ms=[0-9.]+",
        fetches[0],
    )


def test_the_password_is_in_no_task_log_and_nowhere_in_the_metadata_db(demo: DemoRun) -> None:
    logs = demo.stack.task_log_files(DAG_ID)
    assert logs, "no task log file was written"
    assert demo.db_files
    with sqlite3.connect(demo.stack.home / "airflow.db") as db:
        dump = "\n".join(db.iterdump()).encode()  # every table, through SQLite (WAL included)
    places = {str(p.relative_to(demo.stack.home)): p.read_bytes() for p in [*logs, *demo.db_files]}
    places["sqlite dump of airflow.db"] = dump
    # Controls: the dump holds the tables, and the raw files hold what the task stored (its XCom).
    assert b"xcom" in dump
    assert any(b'["amer", 340]' in data for place, data in places.items() if place.startswith("airflow.db"))
    leaks = [
        f"{what} ({form}) in {place}"
        for what, value in (("the Conjur password", demo.password), ("the host API key", demo.api_key))
        for form, encoded in leak_forms(value).items()
        for place, data in places.items()
        if encoded.encode() in data
    ]
    assert leaks == []


def test_the_vault_saw_two_calls_naming_dag_task_and_run(demo: DemoRun) -> None:
    assert [(e["action"], e["status"]) for e in demo.calls] == [("conjur.authenticate", 200), ("conjur.batch", 200)]
    batch = demo.calls[1]
    assert batch["identity"] == "host/airflow/worker"
    reason = f"airflow dag={DAG_ID} task={TASK_ID} run={demo.run_id} nightly sales load"
    assert batch["reason"] == re.sub(r"[^A-Za-z0-9-]+", "-", reason).strip("-")
    assert "cyberark-sqlite-demo" in batch["reason"]
    assert "load-and-query" in batch["reason"]


def test_the_task_process_sends_the_hook_metrics(demo: DemoRun) -> None:
    """Inside a task the task runner initialises ``Stats`` from ``[metrics]``: nothing to set up."""
    names = [line.split(":", 1)[0] for line in demo.statsd_lines]
    assert f"{STATSD_PREFIX}.cyberark.fetch.duration,api=conjur,action=get_secrets" in names
    assert f"{STATSD_PREFIX}.cyberark.token_renewals,api=conjur" in names
    assert not any("errors" in name for name in names)
