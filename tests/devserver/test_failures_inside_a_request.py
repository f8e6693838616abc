"""The request path survives whatever goes wrong inside it: a broken clock or a failing audit write
is a 500, never silence, and the server answers again afterwards."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import DevClient


def assert_alive(client: DevClient) -> None:
    health = client.get("/_dev/health", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


def test_a_broken_clock_gives_500s_not_silence(make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server()
    client = DevClient(server)
    # What POST /_dev/clock {"advance": NaN} used to leave behind: every audit timestamp fails.
    server.app.clock._offset = float("nan")
    with caplog.at_level(logging.ERROR, logger="cyberark_ops.devserver"):
        for _ in range(3):
            assert client.get("/_dev/health", timeout=5).status_code == 500
            assert client.get("/", timeout=5).status_code == 500
    notes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert notes and all(r.exc_info is None and "\n" not in r.getMessage() for r in notes)
    server.app.clock._offset = 0.0
    assert_alive(client)
    assert client.get("/").status_code == 200
    client.close()


def test_a_failing_audit_write_gives_a_500_and_the_server_recovers(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    client = DevClient(server)

    def broken(event: dict[str, Any], now: float) -> None:
        raise OverflowError("timestamp out of range")

    with monkeypatch.context() as patch:
        patch.setattr(server.app.audit, "record", broken)
        assert client.get("/_dev/health").status_code == 500
        assert client.admin("GET", "/knobs").status_code == 500
    assert_alive(client)
    assert client.admin("GET", "/knobs").status_code == 200
    client.close()
