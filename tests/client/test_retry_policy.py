"""When the client layer retries and when it does not: the deadline bounds retries against a closed
port, Retry-After is honoured (and odd values ignored), and a PVWA retrieve with side effects is
retried only on 429."""

from __future__ import annotations

import time

import pytest

from cyberark_ops.client import ConjurClient, PVWAClient, TokenCache, Unavailable
from cyberark_ops.client.transport import parse_retry_after

from .conftest import Events, Vault


def test_a_fetch_against_a_closed_port_is_bounded_by_the_deadline(vault: Vault, token_cache: TokenCache) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = vault.conjur_config(base_url=f"https://127.0.0.1:{port}", max_retries=100, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        ConjurClient(config, token_cache=token_cache).get_secret("prod/db/password")
    assert time.monotonic() - started < 5


def test_retry_after_is_honoured_on_503(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = ConjurClient(vault.conjur_config(), token_cache=token_cache, on_event=events)
    client.authenticate()
    vault.fault("conjur.retrieve", status=503, retry_after=1, count=1)
    started = time.monotonic()
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert time.monotonic() - started >= 1.0
    assert events.named("retry")[0]["delay"] >= 1.0


@pytest.mark.parametrize("header", ["²", "1" * 40, "NaN", "-5", "inf"])
def test_odd_retry_after_headers_are_ignored(header: str) -> None:
    assert parse_retry_after(header) is None


def test_pvwa_password_retrieve_is_not_retried_on_503(vault: Vault, token_cache: TokenCache) -> None:
    client = PVWAClient(vault.pvwa_config(), token_cache=token_cache)
    client.logon()
    mark = vault.mark()
    vault.fault("pvwa.retrieve_password", status=503, count=1)
    with pytest.raises(Unavailable) as raised:
        client.retrieve_password("2_1")
    assert vault.count("pvwa.retrieve_password", mark) == 1
    assert "Not retried" in str(raised.value)
    client.close()


def test_pvwa_password_retrieve_is_retried_on_429(vault: Vault, token_cache: TokenCache) -> None:
    client = PVWAClient(vault.pvwa_config(), token_cache=token_cache)
    client.logon()
    mark = vault.mark()
    vault.fault("pvwa.retrieve_password", status=429, retry_after=0, count=1)
    assert client.retrieve_password("2_1") == "Pg-Pr0d-Dev!"
    assert vault.count("pvwa.retrieve_password", mark) == 2
    client.close()
