"""What the client layer tells ``cyberark-ops doctor``: the server's clock offset, fresh token facts,
and a bare TCP + TLS check; all without exposing a credential."""

from __future__ import annotations

import dataclasses

import pytest

from cyberark_ops.client import (
    AuthenticationFailed,
    ConjurApiKeyAuth,
    ConjurClient,
    PVWAClient,
    TokenCache,
)

from .conftest import HOST_LOGIN, Vault


def test_the_clock_offset_follows_the_servers_date_header(vault: Vault, token_cache: TokenCache) -> None:
    with ConjurClient(vault.conjur_config(), token_cache=token_cache) as client:
        assert client.server_clock_offset is None  # nothing answered yet
        client.check_connection()
        assert client.server_clock_offset is None  # a handshake carries no Date
        client.whoami()
        offset = client.server_clock_offset
        assert offset is not None and abs(offset) <= 1.5
        vault.server.app.clock.advance(120)
        client.whoami()
        ahead = client.server_clock_offset
        assert ahead is not None and 118.5 <= ahead <= 121.5


def test_errors_are_dated_too(vault: Vault, token_cache: TokenCache) -> None:
    config = vault.conjur_config(auth=ConjurApiKeyAuth(HOST_LOGIN, "not-the-api-key-0000000000"))
    with ConjurClient(config, token_cache=token_cache) as client:
        with pytest.raises(AuthenticationFailed) as failure:
            client.fresh_token()
        assert failure.value.status == 401
        assert client.server_clock_offset is not None


def test_fresh_token_bypasses_the_cache_and_shows_no_token(vault: Vault, token_cache: TokenCache) -> None:
    vault.server.app.set_token_ttl(300)
    with ConjurClient(vault.conjur_config(), token_cache=token_cache) as client:
        first = client.fresh_token()
        assert first.subject == HOST_LOGIN
        assert first.lifetime == 300.0
        assert first.renew_in == 240.0
        mark = vault.mark()
        second = client.fresh_token()
        assert second.lifetime == 300.0
        assert vault.count("conjur.authenticate", since=mark) == 1  # not served from the cache
        assert [f.name for f in dataclasses.fields(second)] == ["subject", "lifetime", "renew_in"]


def test_pvwa_fresh_token_logs_on(vault: Vault, token_cache: TokenCache) -> None:
    with PVWAClient(vault.pvwa_config(), token_cache=token_cache) as client:
        facts = client.fresh_token()
        assert facts.lifetime is None  # a PVWA session token carries no expiry
        assert client.login == "svc_airflow"
