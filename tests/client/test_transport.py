"""The shared request path: TLS, retries, Retry-After, deadlines, error mapping, connection reuse."""

from __future__ import annotations

import email.utils
import pickle
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from cyberark_ops.client import (
    AuthenticationFailed,
    ConfigurationError,
    ConjurApiKeyAuth,
    ConjurClient,
    ConjurConfig,
    CyberArkError,
    InvalidResponse,
    NotFound,
    RateLimited,
    TokenCache,
    TransportConfig,
    Unavailable,
)
from cyberark_ops.client.ccp import CCP
from cyberark_ops.client.conjur import CONJUR
from cyberark_ops.client.pvwa import PVWA
from cyberark_ops.client.transport import parse_retry_after

from .conftest import FAST, HOST_API_KEY, HOST_LOGIN, Events, Vault

pytestmark = pytest.mark.waits  # real Retry-After and rate-limit waits


def conjur(vault: Vault, token_cache: TokenCache, events: Events | None = None, **overrides: Any) -> ConjurClient:
    return ConjurClient(vault.conjur_config(**overrides), token_cache=token_cache, on_event=events)


# -- configuration --------------------------------------------------------------------------------


def test_plain_http_is_refused_unless_allowed(vault: Vault) -> None:
    with pytest.raises(ConfigurationError) as raised:
        TransportConfig(base_url="http://conjur.example.com")
    assert raised.value.field == "base_url"
    assert "allow_insecure_http" in str(raised.value)
    assert TransportConfig(base_url="http://conjur.example.com", allow_insecure_http=True).base_url


def test_insecure_http_works_when_explicitly_allowed(make_vault: Callable[..., Vault], token_cache: TokenCache) -> None:
    plain = make_vault(tls=False)
    assert plain.url.startswith("http://")
    config = ConjurConfig(
        base_url=plain.url,
        account=plain.account,
        auth=ConjurApiKeyAuth(HOST_LOGIN, HOST_API_KEY),
        allow_insecure_http=True,
        **FAST,
    )
    with ConjurClient(config, token_cache=token_cache) as client:
        assert client.get_secret("prod/db/username") == "airflow_demo"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"base_url": "https://user:hunter2@conjur.example.com"}, "base_url"),
        ({"base_url": "ftp://conjur.example.com"}, "base_url"),
        ({"base_url": "https://conjur.example.com?x=1"}, "base_url"),
        ({"base_url": "https://c.example.com", "ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle"),
        ({"base_url": "https://c.example.com", "client_key": "/tmp/key.pem"}, "client_key"),
        ({"base_url": "https://c.example.com", "read_timeout": 0}, "read_timeout"),
        ({"base_url": "https://c.example.com", "max_retries": -1}, "max_retries"),
        ({"base_url": "https://c.example.com", "backoff_base": 2, "backoff_max": 1}, "backoff_max"),
        ({"base_url": "https://c.example.com", "verify": "yes"}, "verify"),
    ],
)
def test_config_errors_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        TransportConfig(**settings)
    assert raised.value.field == field
    assert "hunter2" not in str(raised.value)


def test_a_ca_bundle_that_is_not_pem_is_a_configuration_error(
    vault: Vault, tmp_path: Any, token_cache: TokenCache
) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigurationError) as raised:
        conjur(vault, token_cache, ca_bundle=str(bogus))
    assert raised.value.field == "ca_bundle"


# -- TLS ------------------------------------------------------------------------------------------


def test_wrong_ca_is_a_configuration_error_that_names_the_ca_bundle(
    make_vault: Callable[..., Vault], token_cache: TokenCache
) -> None:
    target, other = make_vault(), make_vault()
    client = conjur(target, token_cache, ca_bundle=other.ca)
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as raised:
        client.get_secret("prod/db/password")
    assert time.monotonic() - started < 2, "a certificate problem is not retried"
    message = str(raised.value)
    assert "TLS certificate verification failed" in message
    assert other.ca in message and "ca_bundle" in message
    assert raised.value.field == "ca_bundle"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert target.events() == []  # the handshake failed before any request was answered


def test_configured_ca_wins_over_requests_ca_bundle(
    make_vault: Callable[..., Vault], token_cache: TokenCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, other = make_vault(), make_vault()
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(variable, other.ca)
    assert conjur(target, token_cache).get_secret("prod/db/username") == "airflow_demo"


def test_system_store_does_not_trust_the_dev_ca(vault: Vault, token_cache: TokenCache) -> None:
    with pytest.raises(ConfigurationError, match="system trust store"):
        conjur(vault, token_cache, ca_bundle=None).get_secret("prod/db/password")


# -- retries ----------------------------------------------------------------------------------------


def test_5xx_is_retried_then_succeeds(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = conjur(vault, token_cache, events)
    client.authenticate()
    vault.fault("conjur.retrieve", status=503, count=2)
    mark = vault.mark()
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert [e["status"] for e in vault.events(mark)] == [503, 503, 200]
    retries = events.named("retry")
    assert [r["reason"] for r in retries] == ["status_503", "status_503"]
    assert all(r["api"] == "conjur" and r["action"] == "retrieve" for r in retries)
    requests_seen = [t for t in events.named("request") if t["action"] == "retrieve"]
    assert [t["status"] for t in requests_seen] == ["503", "503", "200"]
    assert all(isinstance(t["duration"], float) for t in requests_seen)


def test_5xx_exhaustion_is_unavailable(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = conjur(vault, token_cache, events, max_retries=2)
    client.authenticate()
    vault.fault("conjur.retrieve", status=502)
    mark = vault.mark()
    with pytest.raises(Unavailable) as raised:
        client.get_secret("prod/db/password")
    assert vault.count("conjur.retrieve", mark) == 3
    error = raised.value
    assert (error.api, error.action, error.status) == ("conjur", "retrieve", 502)
    assert "Conjur retrieve variable 'prod/db/password': HTTP 502" in str(error)
    assert "/secrets/demo/variable/prod%2Fdb%2Fpassword" in str(error)
    assert events.named("error") == [{"api": "conjur", "action": "retrieve", "error": "Unavailable", "status": "502"}]


def test_an_authentication_failure_is_reported_once(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = conjur(vault, token_cache, events, auth=ConjurApiKeyAuth(HOST_LOGIN, "wrong"))
    with pytest.raises(AuthenticationFailed):
        client.get_secret("prod/db/password")
    assert [(t["action"], t["error"]) for t in events.named("error")] == [("authenticate", "AuthenticationFailed")]


def test_4xx_is_not_retried(vault: Vault, token_cache: TokenCache) -> None:
    client = conjur(vault, token_cache)
    client.authenticate()
    mark = vault.mark()
    with pytest.raises(NotFound):
        client.get_secret("nope")
    assert vault.count("conjur.retrieve", mark) == 1


def test_429_retry_after_is_honoured(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = conjur(vault, token_cache, events)
    client.authenticate()
    vault.fault("conjur.retrieve", status=429, retry_after=1, count=1)
    started = time.monotonic()
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert time.monotonic() - started >= 1.0
    assert events.named("rate_limited")[0]["retry_after"] == 1.0
    assert events.named("retry")[0]["delay"] >= 1.0


def test_rate_limit_knob_is_ridden_out(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = conjur(vault, token_cache, events, max_retries=5)
    client.authenticate()
    vault.rate_limit(5, burst=2)
    values = [client.get_secret("prod/db/username") for _ in range(6)]
    assert values == ["airflow_demo"] * 6
    assert events.named("rate_limited"), "the limit was hit at least once"
    assert all(t["retry_after"] >= 1 for t in events.named("rate_limited"))


def test_retry_after_beyond_the_deadline_raises_rate_limited_at_once(vault: Vault, token_cache: TokenCache) -> None:
    client = conjur(vault, token_cache, deadline=3.0)
    client.authenticate()
    vault.fault("conjur.retrieve", status=429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(RateLimited) as raised:
        client.get_secret("prod/db/password")
    assert time.monotonic() - started < 1.5
    assert raised.value.retry_after == 30
    assert "30s" in str(raised.value)


def test_dropped_connection_is_retried(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = conjur(vault, token_cache, events)
    client.authenticate()
    vault.fault("conjur.retrieve", kind="drop", count=1)
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert events.named("retry")[0]["reason"] == "connection"


def test_read_timeout_is_unavailable_within_the_deadline(vault: Vault, token_cache: TokenCache) -> None:
    client = conjur(vault, token_cache, read_timeout=0.3, max_retries=1, deadline=3.0)
    client.authenticate()
    vault.latency("conjur.retrieve", 2.0)
    started = time.monotonic()
    with pytest.raises(Unavailable) as raised:
        client.get_secret("prod/db/password")
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert "read_timeout" in str(raised.value)


def test_the_deadline_bounds_a_slow_server(vault: Vault, token_cache: TokenCache) -> None:
    client = conjur(vault, token_cache, read_timeout=5.0, deadline=0.5)
    client.authenticate()
    vault.latency("conjur.retrieve", 1.5)
    started = time.monotonic()
    with pytest.raises(Unavailable) as raised:
        client.get_secret("prod/db/password")
    assert time.monotonic() - started < 1.2
    assert "deadline" in str(raised.value) or "read_timeout" in str(raised.value)


def test_the_deadline_covers_the_authentication_made_for_a_call(vault: Vault, token_cache: TokenCache) -> None:
    client = conjur(vault, token_cache, deadline=0.8)
    vault.latency("conjur.authenticate", 0.5)
    vault.latency("conjur.retrieve", 0.5)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"deadline|read_timeout"):
        client.get_secret("prod/db/password")
    assert time.monotonic() - started < 1.0


def test_dead_server_is_unavailable_with_a_clear_message(
    vault: Vault, token_cache: TokenCache, closed_port: int
) -> None:
    client = conjur(vault, token_cache, base_url=f"https://127.0.0.1:{closed_port}", max_retries=2)
    started = time.monotonic()
    with pytest.raises(Unavailable) as raised:
        client.get_secret("prod/db/password")
    assert time.monotonic() - started < 3
    message = str(raised.value)
    assert "connection refused" in message
    assert f"127.0.0.1:{closed_port}" in message
    assert "after 3 attempt(s)" in message
    assert "check that base_url is right" in message
    assert raised.value.__cause__ is None and raised.value.__context__ is None


# -- malformed answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["malformed", "content_type"])
def test_malformed_answers_are_invalid_response(vault: Vault, token_cache: TokenCache, kind: str) -> None:
    client = conjur(vault, token_cache)
    client.authenticate()
    vault.fault("conjur.whoami", kind=kind, count=1)
    with pytest.raises(InvalidResponse) as raised:
        client.whoami()
    assert "not JSON" in str(raised.value)
    assert "check that base_url points at Conjur" in str(raised.value)


# -- connection reuse and observer -----------------------------------------------------------------


def test_warm_calls_reuse_one_connection(vault: Vault, token_cache: TokenCache) -> None:
    client = conjur(vault, token_cache)
    for _ in range(20):
        client.get_secret("prod/db/username")
    adapter = client._transport._session.get_adapter(vault.url)
    pools = list(adapter.poolmanager.pools._container.values())  # type: ignore[attr-defined]
    assert len(pools) == 1
    assert pools[0].num_connections == 1


def test_a_failing_observer_never_breaks_a_fetch(vault: Vault, token_cache: TokenCache) -> None:
    def broken(name: str, tags: dict[str, Any]) -> None:
        raise RuntimeError("metrics backend down")

    client = ConjurClient(vault.conjur_config(), token_cache=token_cache, on_event=broken)
    assert client.get_secret("prod/db/username") == "airflow_demo"


# -- helpers ----------------------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    value = parse_retry_after(later)
    assert value is not None and 25 <= value <= 31
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0


def _response(status: int, body: bytes, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    return response


def test_each_profile_reads_its_error_shapes() -> None:
    conjur_body = b'{"error":{"code":"not_found","message":"CONJ00076E Variable x is empty or not found."}}'
    assert CONJUR.parse_error_body(_response(404, conjur_body)) == (
        "not_found",
        "CONJ00076E Variable x is empty or not found.",
    )
    assert CCP.parse_error_body(_response(404, b'{"ErrorCode":"APPAP004E","ErrorMsg":"not found"}')) == (
        "APPAP004E",
        "not found",
    )
    assert PVWA.parse_error_body(_response(401, b'{"ErrorCode":"PASWS006E","ErrorMessage":"expired"}')) == (
        "PASWS006E",
        "expired",
    )
    assert PVWA.parse_error_body(_response(401, b'{"error":"access_denied","error_description":"bad"}')) == (
        "access_denied",
        "bad",
    )
    assert CONJUR.parse_error_body(_response(401, b"Unauthorized: Invalid token", "text/plain")) == (
        None,
        "Unauthorized: Invalid token",
    )
    for profile in (CONJUR, CCP, PVWA):
        assert profile.parse_error_body(_response(403, b"")) == (None, None)


def test_errors_survive_pickling() -> None:
    error = AuthenticationFailed("Conjur authenticate: HTTP 401", api="conjur", action="authenticate", status=401)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is AuthenticationFailed
    assert (str(copy), copy.api, copy.status) == (str(error), "conjur", 401)
    limited = pickle.loads(pickle.dumps(RateLimited("slow down", retry_after=3.0, api="ccp")))
    assert limited.retry_after == 3.0
    assert isinstance(limited, CyberArkError)
    config_error = pickle.loads(pickle.dumps(ConfigurationError("x: bad", field="x")))
    assert config_error.field == "x" and isinstance(config_error, ValueError)
