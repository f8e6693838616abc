"""Exclusive, one-time-password PVWA accounts on Airflow's real supervisor path.

One stack (api-server + scheduler with LocalExecutor + dag-processor), one dev server whose PVWA
accounts are exclusive (a retrieve checks them out) and one-time (the check-in changes the
password), three DAGs:

* the example ``cyberark_exclusive_account``: three mapped ``VaultedSqlOperator`` instances on one
  exclusive one-time account with a SQLite file as its address, run one after the other
  (``max_active_tis_per_dag=1``), each checking the account in; triggered with a ticket in
  ``dag_run.conf``;
* ``exclusive_tickets``: an account that requires a ticket, read once with the ticket id from
  ``dag_run.conf`` and once with the connection's;
* ``exclusive_killed``: a vaulted operator and a decorated ``@task`` that check an account out and
  then hang; the test marks both failed through the REST API, the supervisor SIGTERMs them, and the
  accounts must be checked in.

Then no form of any password the accounts ever had may be in a task log or a metadata table.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import devserver_connections
from cyberark_ops.devserver.vault.state import VaultModel
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import FAST_EXTRAS, DagRun, find_leaks, plain_xcom, stored_places
from tests.exclusive import AIRFLOW_USER, EXCLUSIVE, EXCLUSIVE_OTP, TICKETED, exclusive_seed

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "cyberark_exclusive_account.py"
EXAMPLE_ID = "cyberark_exclusive_account"
MAPPED = 3
KILLED_DECORATED_ACCOUNT = "x_2"
CONN_TICKET = ("ServiceNow", "CHG-CONN-0001")

DAG_SOURCE = """
import pathlib, time
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task

from cyberark_ops import vaulted, with_cyberark_secret

MARKS = pathlib.Path(MARK_DIR)
# On two busy cores the supervisor's first call to the execution API may time out before the task
# starts; a retry gets it running (marking a task failed is final: no retry follows a kill).
RETRY_START = {"retries": 2, "retry_delay": timedelta(seconds=3)}


def hold_then_hang(name):
    (MARKS / name).write_text("holding the account")
    time.sleep(600)


with DAG("exclusive_killed", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    vaulted(PythonOperator)(
        task_id="killed_operator",
        vault_conn_id="cyberark_pvwa",
        credential_ref=OPERATOR_REF,
        check_in=True,
        python_callable=hold_then_hang,
        op_args=["killed_operator"],
        **RETRY_START,
    )

    @task(**RETRY_START)
    @with_cyberark_secret(vault_conn_id="cyberark_pvwa", check_in=True, password=DECORATED_REF)
    def killed_decorated(password):
        hold_then_hang("killed_decorated")

    killed_decorated()


with DAG("exclusive_tickets", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):

    @task(**RETRY_START)
    @with_cyberark_secret(
        vault_conn_id="cyberark_pvwa",
        check_in=True,
        ticket_id="{{ dag_run.conf.get('ticket_id', '') }}",
        password=TICKETED_REF,
    )
    def ticket_from_conf(password):
        return len(password)

    @task(**RETRY_START)
    @with_cyberark_secret(vault_conn_id="cyberark_pvwa", check_in=True, password=TICKETED_REF)
    def ticket_from_connection(password):
        return len(password)

    ticket_from_conf() >> ticket_from_connection()
"""


@dataclass
class Runs:
    stack: AirflowStack
    runs: dict[str, DagRun]
    calls: list[dict[str, Any]]
    passwords: dict[str, list[str]]
    """Every value each account ever had, first to last."""
    holders: dict[str, str | None]
    """Who holds each account once everything ended."""
    held_before_kill: dict[str, str | None]


def _seed(sqlite_path: Path) -> dict[str, Any]:
    seed = copy.deepcopy(exclusive_seed())
    accounts = seed["vault"]["accounts"]
    next(a for a in accounts if a["id"] == EXCLUSIVE_OTP)["address"] = str(sqlite_path)
    second = copy.deepcopy(next(a for a in accounts if a["id"] == EXCLUSIVE))
    second.update(id=KILLED_DECORATED_ACCOUNT, name="exclusive-two", secret="X2-Canary-Pass-0001")
    accounts.append(second)
    return seed


def _wait(what: str, condition: Any, timeout: float, stack: AirflowStack) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; see {stack.process_log('scheduler')}")
        time.sleep(0.5)


def _mark_failed(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> None:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    for attempt in range(5):
        try:
            stack.api("PATCH", path, {"new_state": "failed"})
            return
        except Exception:  # SQLite busy: the api-server answers 500; try again
            if attempt == 4:
                raise
            time.sleep(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    base = tmp_path_factory.mktemp("exclusive")
    dags, marks = base / "dags", base / "marks"
    dags.mkdir()
    marks.mkdir()
    (dags / EXAMPLE.name).write_text(EXAMPLE.read_text())
    source = (
        DAG_SOURCE.replace("MARK_DIR", repr(str(marks)))
        .replace("OPERATOR_REF", repr(f"pvwa:id={EXCLUSIVE}"))
        .replace("DECORATED_REF", repr(f"pvwa:id={KILLED_DECORATED_ACCOUNT}"))
        .replace("TICKETED_REF", repr(f"pvwa:id={TICKETED}"))
    )
    (dags / "exclusive_tests.py").write_text(source)
    seed = _seed(base / "warehouse.sqlite")
    with DevServer(seed, state_dir=base / "devserver") as server:
        vault = server.app.model("vault", VaultModel)

        def holder(account_id: str) -> str | None:
            account = vault.account(account_id, server.app.clock.now())
            assert account is not None
            return account.checked_out_by

        pvwa = devserver_connections(server.info(), seed)["cyberark_pvwa"]
        assert pvwa["login"] == AIRFLOW_USER
        pvwa["extra"].update(FAST_EXTRAS, ticketing_system=CONN_TICKET[0], ticket_id=CONN_TICKET[1])
        env = {
            "AIRFLOW_CONN_CYBERARK_PVWA": json.dumps(pvwa),
            "AIRFLOW_VAR_EXCLUSIVE_ACCOUNT_REF": f"pvwa:id={EXCLUSIVE_OTP}",
        }
        stack = AirflowStack(base / "home", dags, env)
        stack.migrate()
        stack.start()
        try:
            for dag_id in (EXAMPLE_ID, "exclusive_tickets", "exclusive_killed"):
                stack.wait_for_dag(dag_id)
            run_ids = {
                EXAMPLE_ID: stack.trigger(EXAMPLE_ID, conf={"ticketing_system": "Jira", "ticket_id": "OPS-CONF-7"}),
                "exclusive_tickets": stack.trigger("exclusive_tickets", conf={"ticket_id": "CHG-CONF-0009"}),
                "exclusive_killed": stack.trigger("exclusive_killed"),
            }
            killed = ("killed_operator", "killed_decorated")
            _wait(
                "both hanging tasks hold their account", lambda: all((marks / t).exists() for t in killed), 240, stack
            )
            held_before_kill = {a: holder(a) for a in (EXCLUSIVE, KILLED_DECORATED_ACCOUNT)}
            for task_id in killed:
                _mark_failed(stack, "exclusive_killed", run_ids["exclusive_killed"], task_id)
            _wait(
                "the killed tasks' accounts are checked in",
                lambda: holder(EXCLUSIVE) is None and holder(KILLED_DECORATED_ACCOUNT) is None,
                120,
                stack,
            )
            states = {dag_id: stack.wait_for_run(dag_id, run_id, 400) for dag_id, run_id in run_ids.items()}
            tasks = {dag_id: stack.task_states(dag_id, run_id) for dag_id, run_id in run_ids.items()}
        finally:
            stack.stop()
        accounts = {a.id: a for a in vault.accounts(server.app.clock.now())}
        passwords = {account_id: [v.value for v in account.versions] for account_id, account in accounts.items()}
        holders = {account_id: account.checked_out_by for account_id, account in accounts.items()}
        calls = [e for e in server.app.audit.events() if str(e["action"]).startswith("pvwa.")]
    yield Runs(
        stack,
        {d: DagRun(stack, d, run_ids[d], states[d], tasks[d]) for d in run_ids},
        calls,
        passwords,
        holders,
        held_before_kill,
    )


def _account_calls(runs: Runs, account_id: str) -> list[dict[str, Any]]:
    return [
        c
        for c in runs.calls
        if c["object"] == account_id and c["action"] in ("pvwa.retrieve_password", "pvwa.check_in")
    ]


def test_the_mapped_tasks_each_check_the_account_out_and_in_and_the_password_changes(runs: Runs) -> None:
    run = runs.runs[EXAMPLE_ID]
    assert run.state == "success", run.explain()
    assert run.task_states == {f"load_partition[{i}]": "success" for i in range(MAPPED)}, run.explain()
    calls = _account_calls(runs, EXCLUSIVE_OTP)
    # One after the other: retrieve, check-in, retrieve, check-in... never two retrieves in a row.
    assert [c["action"] for c in calls] == ["pvwa.retrieve_password", "pvwa.check_in"] * MAPPED, calls
    assert all(c["status"] == 200 for c in calls)
    retrieves = [c for c in calls if c["action"] == "pvwa.retrieve_password"]
    assert all(f"run={run.run_id}" in str(c["reason"]) and "task=load_partition" in str(c["reason"]) for c in retrieves)
    # Each task got a password no task before it had: the check-in changed it every time.
    assert len(set(runs.passwords[EXCLUSIVE_OTP])) == MAPPED + 1
    assert runs.holders[EXCLUSIVE_OTP] is None
    # The ticket of the run's conf, not the connection's.
    assert all("TicketingSystem=Jira;TicketId=OPS-CONF-7" in c["detail"] for c in retrieves)
    rows = runs.stack.query(
        "select value from xcom where dag_id=:dag_id and run_id=:run_id and key='return_value'",
        dag_id=EXAMPLE_ID,
        run_id=run.run_id,
    )
    results = sorted(tuple(row) for (value,) in rows for row in plain_xcom(json.loads(value)))
    assert results == [("north", 1), ("south", 2), ("west", 3)]


def test_a_ticket_comes_from_dag_run_conf_or_the_connection(runs: Runs) -> None:
    run = runs.runs["exclusive_tickets"]
    assert run.task_states == {"ticket_from_conf": "success", "ticket_from_connection": "success"}, run.explain()
    calls = _account_calls(runs, TICKETED)
    assert [c["action"] for c in calls] == ["pvwa.retrieve_password", "pvwa.check_in"] * 2
    first, second = (c for c in calls if c["action"] == "pvwa.retrieve_password")
    assert f"TicketingSystem={CONN_TICKET[0]};TicketId=CHG-CONF-0009" in first["detail"]
    assert "task=ticket_from_conf" in str(first["reason"])
    assert f"TicketingSystem={CONN_TICKET[0]};TicketId={CONN_TICKET[1]}" in second["detail"]


def test_a_task_killed_mid_run_leaves_its_account_checked_in(runs: Runs) -> None:
    run = runs.runs["exclusive_killed"]
    assert run.task_states == {"killed_operator": "failed", "killed_decorated": "failed"}, run.explain()
    assert runs.held_before_kill == {EXCLUSIVE: AIRFLOW_USER, KILLED_DECORATED_ACCOUNT: AIRFLOW_USER}
    for account_id in (EXCLUSIVE, KILLED_DECORATED_ACCOUNT):
        calls = _account_calls(runs, account_id)
        assert [c["action"] for c in calls] == ["pvwa.retrieve_password", "pvwa.check_in"], calls
        assert runs.holders[account_id] is None
        assert len(runs.passwords[account_id]) == 2  # the check-in changed it


def test_no_password_any_account_ever_had_is_in_logs_or_the_metadata_db(runs: Runs) -> None:
    places = stored_places(runs.stack, list(runs.runs))
    logs = b"".join(data for place, data in places.items() if not place.startswith(("table ", "sqlite")))
    assert b"CyberArk check-in api=pvwa" in logs and b"outcome=success" in logs
    forms = {
        f"{account_id} v{n} {form}": value
        for account_id, values in runs.passwords.items()
        for n, password in enumerate(values)
        for form, value in leak_forms(password).items()
    }
    assert find_leaks(places, forms) == []
