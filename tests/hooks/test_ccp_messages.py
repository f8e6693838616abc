"""What CCP tells a user: whole not-found messages, a reason whose UTC offset stays readable, and a
Test button that says what it could not check."""

from __future__ import annotations

import pytest

from cyberark_ops.client import NotFound
from cyberark_ops.client.ccp import ccp_reason
from cyberark_ops.client.profile import clean_server_message
from cyberark_ops.hooks.cyberark import CyberArkHook
from tests.hooks.conftest import Connections


def test_the_ccp_not_found_message_is_not_cut_mid_sentence(conns: Connections) -> None:
    with pytest.raises(NotFound) as raised:
        CyberArkHook(conns.ccp()).get_secret("Safe=DB-Prod;Object=nope")
    message = str(raised.value)
    assert "needed in order to use the password." in message
    long = clean_server_message("word " * 400)
    assert long is not None and long.endswith("…") and not long.endswith(" …")


def test_the_ccp_reason_keeps_a_utc_offset_readable() -> None:
    reason = ccp_reason("airflow dag=d task=t run=scheduled__2026-01-01T00:00:00+00:00 a+b & c%d;e")
    assert reason == "airflow dag=d task=t run=scheduled__2026-01-01T00:00:00Z a b c d e"


def test_the_ccp_test_button_says_what_it_could_not_check(conns: Connections) -> None:
    ok, message = CyberArkHook(conns.ccp()).test_connection()
    assert ok
    assert "its TLS certificate is trusted and the client certificate was presented" in message
    assert (
        "Not checked: whether AppID 'AirflowProd' exists and accepts this machine and its client certificate" in message
    )
    ok, message = CyberArkHook(conns.ccp("no_cert", client_cert=None, client_key=None)).test_connection()
    assert ok
    assert "No client certificate is configured: an AppID that requires one refuses every fetch." in message
