"""The hook and the fetch core with exclusive PVWA accounts: check-in after use, the task's
overrides of the connection's check_in / ticket extras, and check-in failures that only log."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cyberark_ops import checkin
from cyberark_ops.client import CheckedOutByAnotherUser, ConfigurationError
from cyberark_ops.devserver import DevServer
from cyberark_ops.hooks.cyberark import CyberArkHook, retrieve_overrides
from tests.exclusive import (
    AIRFLOW_USER,
    EXCLUSIVE,
    EXCLUSIVE_OTP,
    FIRST_PASSWORDS,
    NO_CPM_PASSWORD,
    NO_CPM_USER,
    OTHER_PASSWORD,
    OTHER_USER,
    PLAIN,
    TICKETED,
    Exclusive,
    checked_out_by,
    current_password,
    exclusive_seed,
)


@pytest.fixture
def vault(make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Exclusive]:
    yield Exclusive(make_server(exclusive_seed()), monkeypatch)


def test_the_hook_checks_in_what_it_fetched_and_the_password_changes(vault: Exclusive) -> None:
    conn_id = vault.pvwa_as("ex_pvwa", check_in=True)
    with CyberArkHook(conn_id) as hook:
        credential = hook.get_credential(f"pvwa:id={EXCLUSIVE_OTP}")
        assert hook.checked_out == (EXCLUSIVE_OTP,)
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) == AIRFLOW_USER
    assert hook.check_in_all() == []  # after close: a check-in opens its own session
    assert hook.checked_out == ()
    assert credential.secret == FIRST_PASSWORDS[EXCLUSIVE_OTP]
    assert checked_out_by(vault.server, EXCLUSIVE_OTP) is None
    assert current_password(vault.server, EXCLUSIVE_OTP) != FIRST_PASSWORDS[EXCLUSIVE_OTP]
    assert vault.actions(EXCLUSIVE_OTP) == ["pvwa.retrieve_password", "pvwa.check_in"]
    assert hook.check_in_all() == []  # nothing left: no second call
    assert vault.actions(EXCLUSIVE_OTP) == ["pvwa.retrieve_password", "pvwa.check_in"]


def test_a_secret_fetched_twice_is_checked_in_once(vault: Exclusive) -> None:
    with CyberArkHook(vault.pvwa_as("ex_twice", check_in=True)) as hook:
        assert hook.get_secret(f"pvwa:id={EXCLUSIVE}") == hook.get_secret(f"pvwa:id={EXCLUSIVE}")
        assert hook.check_in_all() == []
    assert vault.actions(EXCLUSIVE) == ["pvwa.retrieve_password"] * 2 + ["pvwa.check_in"]


def test_the_tasks_check_in_overrides_the_connection(vault: Exclusive) -> None:
    conn_id = vault.pvwa_as("ex_plain_conn")
    with CyberArkHook(conn_id) as hook:
        hook.get_secret(f"pvwa:id={EXCLUSIVE}")
        assert hook.checked_out == ()
    assert checked_out_by(vault.server, EXCLUSIVE) == AIRFLOW_USER
    with CyberArkHook(conn_id, check_in=True) as hook:
        hook.get_secret(f"pvwa:id={EXCLUSIVE}")  # the holder may read it again
        hook.check_in_all()
    assert checked_out_by(vault.server, EXCLUSIVE) is None
    with CyberArkHook(vault.pvwa_as("ex_on", check_in=True), check_in=False) as hook:
        hook.get_secret(f"pvwa:id={PLAIN}")
        assert hook.checked_out == ()


def test_a_ticket_comes_from_the_connection_and_a_tasks_ticket_id_overrides_it(vault: Exclusive) -> None:
    conn_id = vault.pvwa_as("ex_ticket", check_in=True, ticketing_system="ServiceNow", ticket_id="CHG0000001")
    for override, expected in ((None, "CHG0000001"), ("", "CHG0000001"), ("CHG0000042", "CHG0000042")):
        with CyberArkHook(conn_id, ticket_id=override) as hook:
            assert hook.get_secret(f"pvwa:id={TICKETED}") == current_password(vault.server, TICKETED)
            hook.check_in_all()
        retrieve = [e for e in vault.calls("pvwa") if e["action"] == "pvwa.retrieve_password"][-1]
        assert f"TicketingSystem=ServiceNow;TicketId={expected}" in retrieve["detail"]


def test_without_a_ticket_the_vault_refuses_and_nothing_is_held(vault: Exclusive) -> None:
    with CyberArkHook(vault.pvwa_as("ex_noticket", check_in=True)) as hook:
        with pytest.raises(Exception, match="400"):
            hook.get_secret(f"pvwa:id={TICKETED}")
        assert hook.checked_out == ()


def test_ticket_overrides_on_a_connection_without_them_name_the_field(vault: Exclusive) -> None:
    conn_id = vault.ccp("ex_ccp")
    with pytest.raises(ConfigurationError) as raised:
        CyberArkHook(conn_id, ticket_id="CHG1", ticketing_system="SN").get_secret("ccp:Safe=x;Object=y")
    assert raised.value.field in ("ticket_id", "ticketing_system")
    assert "PVWA and Privilege Cloud only" in str(raised.value)


def test_overrides_drop_what_keeps_the_connections_value() -> None:
    assert retrieve_overrides(check_in=None, ticketing_system="", ticket_id=None) == {}
    assert retrieve_overrides(check_in=False, ticket_id="7") == {"check_in": False, "ticket_id": "7"}


def test_another_users_checkout_is_the_typed_error_through_the_hook(vault: Exclusive) -> None:
    with CyberArkHook(vault.pvwa_as("ex_ops", OTHER_USER, OTHER_PASSWORD)) as ops:
        ops.get_secret(f"pvwa:id={EXCLUSIVE}")
    with CyberArkHook(vault.pvwa_as("ex_af", check_in=True)) as hook:
        with pytest.raises(CheckedOutByAnotherUser) as raised:
            hook.get_secret(f"pvwa:id={EXCLUSIVE}")
        assert hook.checked_out == ()
    assert raised.value.account_id == EXCLUSIVE
    assert FIRST_PASSWORDS[EXCLUSIVE] not in str(raised.value)


def test_a_failed_check_in_is_a_warning_naming_the_account_never_an_error(
    vault: Exclusive, caplog: pytest.LogCaptureFixture
) -> None:
    with CyberArkHook(vault.pvwa_as("ex_nocpm", NO_CPM_USER, NO_CPM_PASSWORD, check_in=True)) as hook:
        secret = hook.get_secret(f"pvwa:id={EXCLUSIVE}")
        with caplog.at_level(logging.INFO, logger="cyberark_ops"):
            assert hook.check_in_all() == [EXCLUSIVE]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"account_id={EXCLUSIVE}" in w and "Forbidden" in w for w in warnings), warnings
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert checked_out_by(vault.server, EXCLUSIVE) == NO_CPM_USER


def test_sigterm_checks_in_before_the_task_runners_handler(vault: Exclusive, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task runner's SIGTERM handler only calls ``on_kill``; ours, chained in front of it,
    checks in what the process holds, then hands over."""
    runner_saw: list[tuple[int, str | None]] = []

    def task_runner_on_term(signum: int, frame: Any) -> None:
        runner_saw.append((signum, checked_out_by(vault.server, EXCLUSIVE_OTP)))

    monkeypatch.setattr(checkin, "_INSTALLED", [])
    original = signal.signal(signal.SIGTERM, task_runner_on_term)
    try:
        hook = CyberArkHook(vault.pvwa_as("ex_term", check_in=True))
        hook.get_secret(f"pvwa:id={EXCLUSIVE_OTP}")
        checkin.hold(hook)
        assert checkin.held() == 1
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, original)
    assert runner_saw == [(signal.SIGTERM, None)]
    assert checkin.held() == 0
    assert vault.actions(EXCLUSIVE_OTP) == ["pvwa.retrieve_password", "pvwa.check_in"]


def test_no_handler_is_chained_where_sigterm_means_die(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkin, "_INSTALLED", [])
    original = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        checkin.release_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, original)
