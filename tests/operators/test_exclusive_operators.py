"""``vaulted(...)``, ``VaultedSqlOperator`` and ``@with_cyberark_secret`` check in the exclusive
accounts they fetched when the task ends: success, failure and ``on_kill``; a failed check-in
leaves the outcome alone. SQLite is the target: no shared database role is touched."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseHook

from cyberark_ops import VaultedSqlOperator, checkin, vaulted, with_cyberark_secret
from cyberark_ops.client import CheckedOutByAnotherUser, ConfigurationError
from cyberark_ops.devserver import DevServer
from tests.exclusive import (
    AIRFLOW_USER,
    EXCLUSIVE,
    EXCLUSIVE_OTP,
    FIRST_PASSWORDS,
    NO_CPM_PASSWORD,
    NO_CPM_USER,
    OTHER_PASSWORD,
    OTHER_USER,
    TICKETED,
    Exclusive,
    checked_out_by,
    current_password,
    exclusive_seed,
)

VaultedPython = vaulted(PythonOperator)


@pytest.fixture
def vault(make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Exclusive]:
    yield Exclusive(make_server(exclusive_seed()), monkeypatch)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def read_target_password() -> str:
    """What the operator's in-memory connection hands the wrapped operator: its password's digest."""
    password = BaseHook.get_connection("ex_target").password
    assert password is not None
    return digest(password)


def test_vaulted_checks_in_after_success_and_the_password_changes(vault: Exclusive) -> None:
    op = VaultedPython(
        task_id="use",
        vault_conn_id=vault.pvwa_as("ex_pvwa", check_in=True),
        credential_ref=f"pvwa:id={EXCLUSIVE_OTP}",
        target_conn_id="ex_target",
        conn_type="generic",
        python_callable=read_target_password,
    )
    assert op.execute({}) == digest(FIRST_PASSWORDS[EXCLUSIVE_OTP])
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) is None
    assert current_password(vault.server, EXCLUSIVE_OTP) != FIRST_PASSWORDS[EXCLUSIVE_OTP]
    assert vault.actions(EXCLUSIVE_OTP) == ["pvwa.retrieve_password", "pvwa.check_in"]
    assert checkin.held() == 0


def test_vaulted_checks_in_when_the_task_fails(vault: Exclusive) -> None:
    def fail() -> None:
        raise RuntimeError("the load failed")

    op = VaultedPython(
        task_id="fails",
        vault_conn_id=vault.pvwa_as("ex_pvwa"),
        check_in=True,
        credential_ref=f"pvwa:id={EXCLUSIVE}",
        python_callable=fail,
    )
    with pytest.raises(RuntimeError, match="the load failed"):
        op.execute({})
    assert checked_out_by(vault.server, EXCLUSIVE) is None
    assert vault.actions(EXCLUSIVE) == ["pvwa.retrieve_password", "pvwa.check_in"]


def test_on_kill_checks_in_what_the_running_task_holds(vault: Exclusive) -> None:
    op = VaultedPython(
        task_id="killed",
        vault_conn_id=vault.pvwa_as("ex_pvwa", check_in=True),
        credential_ref=f"pvwa:id={EXCLUSIVE_OTP}",
        python_callable=lambda: None,
    )
    op.fetch_credential()  # what execute does first; the supervisor's SIGTERM comes mid-run
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) == AIRFLOW_USER
    op.on_kill()
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) is None
    assert checkin.held() == 0
    op.on_kill()  # twice: nothing left to check in
    assert vault.actions(EXCLUSIVE_OTP) == ["pvwa.retrieve_password", "pvwa.check_in"]


def test_a_failed_check_in_leaves_the_tasks_success_alone(vault: Exclusive, caplog: pytest.LogCaptureFixture) -> None:
    op = VaultedPython(
        task_id="nocpm",
        vault_conn_id=vault.pvwa_as("ex_nocpm", NO_CPM_USER, NO_CPM_PASSWORD, check_in=True),
        credential_ref=f"pvwa:id={EXCLUSIVE}",
        python_callable=lambda: "done",
    )
    with caplog.at_level(logging.WARNING, logger="cyberark_ops"):
        assert op.execute({}) == "done"
    assert any("check-in" in r.getMessage() and EXCLUSIVE in r.getMessage() for r in caplog.records)
    assert all(FIRST_PASSWORDS[EXCLUSIVE] not in r.getMessage() for r in caplog.records)
    assert checked_out_by(vault.server, EXCLUSIVE) == NO_CPM_USER


def test_the_sql_operator_on_sqlite_checks_in(
    vault: Exclusive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "ex.db"
    sqlite3.connect(database).close()
    monkeypatch.setenv("AIRFLOW_CONN_EX_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    op = VaultedSqlOperator(
        task_id="sql",
        vault_conn_id=vault.pvwa_as("ex_pvwa", check_in=True),
        credential_ref=f"pvwa:id={EXCLUSIVE_OTP}",
        conn_id="ex_sqlite",
        sql="select 41 + 1",
    )
    assert op.execute({}) == [(42,)]
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) is None
    assert vault.actions(EXCLUSIVE_OTP) == ["pvwa.retrieve_password", "pvwa.check_in"]


def test_a_ticket_templated_from_dag_run_conf_is_sent(vault: Exclusive) -> None:
    op = VaultedPython(
        task_id="ticketed",
        vault_conn_id=vault.pvwa_as("ex_pvwa", check_in=True, ticketing_system="ServiceNow", ticket_id="CHG-CONN"),
        credential_ref=f"pvwa:id={TICKETED}",
        ticket_id="{{ dag_run.conf.get('ticket_id', '') }}",
        python_callable=lambda: None,
    )
    assert "ticket_id" in op.template_fields and "ticketing_system" in op.template_fields
    context: Any = {"dag_run": SimpleNamespace(conf={"ticket_id": "CHG-FROM-CONF"})}
    op.render_template_fields(context)
    op.execute(context)
    retrieve = [e for e in vault.calls("pvwa") if e["action"] == "pvwa.retrieve_password"][-1]
    assert "TicketingSystem=ServiceNow;TicketId=CHG-FROM-CONF" in retrieve["detail"]
    assert checked_out_by(vault.server, TICKETED) is None


def test_a_locked_account_fails_the_task_with_the_typed_error(vault: Exclusive) -> None:
    VaultedPython(
        task_id="human",
        vault_conn_id=vault.pvwa_as("ex_ops", OTHER_USER, OTHER_PASSWORD),
        credential_ref=f"pvwa:id={EXCLUSIVE}",
        python_callable=lambda: None,
    ).fetch_credential()
    op = VaultedPython(
        task_id="second",
        vault_conn_id=vault.pvwa_as("ex_pvwa", check_in=True),
        credential_ref=f"pvwa:id={EXCLUSIVE}",
        python_callable=lambda: None,
    )
    with pytest.raises(CheckedOutByAnotherUser):
        op.execute({})
    assert checked_out_by(vault.server, EXCLUSIVE) == OTHER_USER  # not ours to check in


# -- the decorator ---------------------------------------------------------------------------------


def test_the_decorator_checks_in_after_the_function_returns_and_raises(vault: Exclusive) -> None:
    conn_id = vault.pvwa_as("ex_dec", check_in=True)

    @with_cyberark_secret(vault_conn_id=conn_id, password=f"pvwa:id={EXCLUSIVE_OTP}")
    def load(password: str, fail: bool = False) -> str:
        assert checked_out_by(vault.server, EXCLUSIVE_OTP) == AIRFLOW_USER
        if fail:
            raise ValueError("load failed")
        return digest(password)

    assert load() == digest(FIRST_PASSWORDS[EXCLUSIVE_OTP])
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) is None
    second = current_password(vault.server, EXCLUSIVE_OTP)
    with pytest.raises(ValueError, match="load failed"):
        load(fail=True)
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) is None
    assert current_password(vault.server, EXCLUSIVE_OTP) not in (second, FIRST_PASSWORDS[EXCLUSIVE_OTP])
    assert vault.actions(EXCLUSIVE_OTP) == ["pvwa.retrieve_password", "pvwa.check_in"] * 2


def test_the_decorators_check_in_override_and_ticket(vault: Exclusive) -> None:
    conn_id = vault.pvwa_as("ex_dec2")

    @with_cyberark_secret(
        vault_conn_id=conn_id, check_in=True, ticketing_system="Jira", ticket_id="OPS-7", cred=f"pvwa:id={TICKETED}"
    )
    def use(cred: str) -> int:
        return len(cred)

    assert use() == len(FIRST_PASSWORDS[TICKETED])
    assert checked_out_by(vault.server, TICKETED) is None
    retrieve = [e for e in vault.calls("pvwa") if e["action"] == "pvwa.retrieve_password"][-1]
    assert "TicketingSystem=Jira;TicketId=OPS-7" in retrieve["detail"]


async def _use_async(vault: Exclusive) -> str:
    @with_cyberark_secret(vault_conn_id=vault.pvwa_as("ex_async", check_in=True), password=f"pvwa:id={EXCLUSIVE}")
    async def load(password: str) -> str:
        return digest(password)

    return await load()


def test_the_async_decorator_checks_in(vault: Exclusive) -> None:
    import asyncio

    assert asyncio.run(_use_async(vault)) == digest(FIRST_PASSWORDS[EXCLUSIVE])
    assert checked_out_by(vault.server, EXCLUSIVE) is None


@pytest.mark.parametrize("rendered", [12345, ["CHG1"], {"id": "CHG1"}], ids=repr)
def test_a_ticket_that_renders_to_no_string_names_the_field_and_its_type(vault: Exclusive, rendered: Any) -> None:
    op = VaultedPython(
        task_id="typed_ticket",
        vault_conn_id=vault.pvwa_as("ex_pvwa", check_in=True, ticketing_system="ServiceNow", ticket_id="CHG-CONN"),
        credential_ref=f"pvwa:id={TICKETED}",
        ticket_id=rendered,
        python_callable=lambda: None,
    )
    with pytest.raises(ConfigurationError) as raised:
        op.execute({})
    assert raised.value.field == "ticket_id"
    assert f"got {type(rendered).__name__}" in str(raised.value) and "typed_ticket" in str(raised.value)
    assert vault.actions(TICKETED) == []  # refused before any call


def test_the_decorator_refuses_a_ticket_that_is_no_string() -> None:
    with pytest.raises(ConfigurationError) as raised:
        with_cyberark_secret(ticket_id=7, password="pvwa:id=1")  # type: ignore[arg-type]
    assert raised.value.field == "ticket_id"
