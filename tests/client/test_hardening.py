"""Defects found by trying the client layer as a hostile user would; each test failed before its fix."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from cyberark_ops.client import (
    CCPClient,
    ConfigurationError,
    ConjurApiKeyAuth,
    ConjurClient,
    CyberArkError,
    InvalidResponse,
    PVWAClient,
    TokenCache,
    Unavailable,
    parse_ref,
)
from cyberark_ops.client.ccp import ccp_reason
from cyberark_ops.client.refs import CCPRef, ConjurRef, PVWARef, validate_conjur_id
from cyberark_ops.client.transport import parse_retry_after

from .conftest import ADMIN_API_KEY, ADMIN_LOGIN, Events, Vault

NUMERIC_FIELDS = ("connect_timeout", "read_timeout", "deadline", "backoff_base", "backoff_max")


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e12, -1.0])
def test_non_finite_and_out_of_range_numbers_are_refused(vault: Vault, field: str, value: float) -> None:
    overrides: dict[str, Any] = {field: value}
    if field == "backoff_base" and value == 1e12:
        overrides["backoff_max"] = 2e12
    with pytest.raises(ConfigurationError) as raised:
        vault.conjur_config(**overrides)
    assert raised.value.field in (field, "backoff_max")


@pytest.mark.parametrize("value", [10**9, -1, True, 2.5])
def test_max_retries_is_a_bounded_integer(vault: Vault, value: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        vault.conjur_config(max_retries=value)
    assert raised.value.field == "max_retries"


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


def test_an_html_page_is_not_returned_as_a_conjur_value(vault: Vault, token_cache: TokenCache) -> None:
    client = ConjurClient(vault.conjur_config(), token_cache=token_cache)
    client.authenticate()
    vault.fault("conjur.retrieve", kind="content_type", count=1)
    with pytest.raises(InvalidResponse) as raised:
        client.get_secret("prod/db/password")
    assert "HTML" in str(raised.value)
    vault.fault("conjur.retrieve", kind="malformed", count=1)
    with pytest.raises(InvalidResponse):
        client.get_secret("prod/db/password")
    # Real Conjur's answers still pass: octet-stream and an annotated mime type.
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert client.get_secret("prod/app/config").startswith("{")


def test_a_variable_annotated_text_html_is_still_returned(
    make_vault: Callable[..., Vault], token_cache: TokenCache
) -> None:
    seed = {
        "conjur": {
            "account": "demo",
            "users": [{"id": ADMIN_LOGIN, "api_key": ADMIN_API_KEY}],
            "variables": [{"id": "web/banner", "mime_type": "text/html", "value": "<b>hello</b>"}],
        }
    }
    vault = make_vault(seed)
    client = ConjurClient(
        vault.conjur_config(auth=ConjurApiKeyAuth(ADMIN_LOGIN, ADMIN_API_KEY)), token_cache=token_cache
    )
    assert client.get_secret("web/banner") == "<b>hello</b>"


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


LONE_SURROGATE = "prod/db/\ud800password"


@pytest.mark.parametrize(
    "call",
    [
        lambda: validate_conjur_id(LONE_SURROGATE),
        lambda: parse_ref("conjur:" + LONE_SURROGATE),
        lambda: ConjurRef(LONE_SURROGATE),
        lambda: CCPRef.of(safe="DB\udfff", object="pg"),
        lambda: PVWARef(safe="DB", name="pg\ud800"),
        lambda: ConjurApiKeyAuth("host/\ud800", "key"),
        lambda: ConjurApiKeyAuth("host/a", "key\ud800"),
    ],
)
def test_lone_surrogates_give_a_configuration_error(call: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        call()
    assert "surrogate" in str(raised.value)


def test_a_lone_surrogate_in_a_conjur_fetch_is_a_typed_error(vault: Vault, token_cache: TokenCache) -> None:
    client = ConjurClient(vault.conjur_config(), token_cache=token_cache)
    for call in (lambda: client.get_secret(LONE_SURROGATE), lambda: client.get_secrets([LONE_SURROGATE])):
        with pytest.raises(ConfigurationError):
            call()


def test_a_ccp_reason_with_a_lone_surrogate_still_fetches(vault: Vault) -> None:
    assert ccp_reason("run \ud800 ok") == "run ? ok"
    with CCPClient(vault.ccp_config()) as client:
        credential = client.get(CCPRef.of(safe="DB-Prod", object="pg-prod"), reason="dag=x \udcff")
    assert credential.secret


def test_a_100kb_id_is_refused_up_front_with_a_short_message(vault: Vault, token_cache: TokenCache) -> None:
    huge = "a" * 100_000
    client = ConjurClient(vault.conjur_config(), token_cache=token_cache)
    mark = vault.mark()
    for call in (
        lambda: client.get_secret(huge),
        lambda: client.get_secrets(["prod/db/password", huge]),
        lambda: parse_ref("conjur:" + huge),
        lambda: parse_ref("ccp:Safe=" + huge),
        lambda: parse_ref("pvwa:" + huge + "/x"),
    ):
        with pytest.raises(ConfigurationError) as raised:
            call()
        assert len(str(raised.value)) < 400
    assert vault.events(mark) == []


@pytest.mark.parametrize(
    "reference",
    [
        "conjur:prod/db/password\n",
        "conjur:prod/db/password\r\n",
        " conjur:prod/db/password",
        "conjur:prod/db/password ",
    ],
)
def test_surrounding_whitespace_and_crlf_are_refused_not_stripped(reference: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_ref(reference)
    assert raised.value.field == "reference"


def test_pvwa_account_ids_are_bounded() -> None:
    with pytest.raises(ConfigurationError):
        PVWARef(account_id="1" * 1000)


def test_every_client_answers_get_with_a_credential(vault: Vault, token_cache: TokenCache) -> None:
    with ConjurClient(vault.conjur_config(), token_cache=token_cache) as conjur:
        credential = conjur.get(ConjurRef("prod/api/key", version=2), reason="dag=x")
    assert credential.secret == "demo-api-key-v2"
    assert credential.source == "conjur:prod/api/key?version=2"
    assert "demo-api-key-v2" not in repr(credential)


def test_error_messages_cut_long_paths(vault: Vault, token_cache: TokenCache) -> None:
    long_id = "x/" * 1000 + "end"
    client = ConjurClient(vault.conjur_config(), token_cache=token_cache)
    with pytest.raises(CyberArkError) as raised:
        client.get_secret(long_id)
    assert len(str(raised.value)) < 1000
