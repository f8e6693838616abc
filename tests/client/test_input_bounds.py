"""Numbers, ids and text the client layer refuses before sending anything: non-finite or out-of-range
settings, lone surrogates, huge ids, surrounding whitespace; each refusal is short and names the field."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cyberark_ops.client import (
    CCPClient,
    ConfigurationError,
    ConjurApiKeyAuth,
    ConjurClient,
    CyberArkError,
    TokenCache,
    parse_ref,
)
from cyberark_ops.client.ccp import ccp_reason
from cyberark_ops.client.refs import CCPRef, ConjurRef, PVWARef, validate_conjur_id
from cyberark_ops.client.validation import validate_base_url

from .conftest import Vault

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


def test_error_messages_cut_long_paths(vault: Vault, token_cache: TokenCache) -> None:
    long_id = "x/" * 1000 + "end"
    client = ConjurClient(vault.conjur_config(), token_cache=token_cache)
    with pytest.raises(CyberArkError) as raised:
        client.get_secret(long_id)
    assert len(str(raised.value)) < 1000


@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda scheme, rest: f"{scheme}://{rest}",
            st.sampled_from(["https", "http", "ftp", ""]),
            st.text(alphabet="[]:@/?#%.0123456789abcdefxyz-", max_size=30),
        ),
    )
)
def test_any_base_url_is_accepted_or_refused_with_a_configuration_error(url: str) -> None:
    """``http://[``, ``https://h:99999``: urlsplit's own ValueError never escapes as such."""
    try:
        validated = validate_base_url(url, "url", allow_insecure_http=True)
    except ConfigurationError as refused:
        assert refused.field == "url"
    else:
        assert validated.startswith(("https://", "http://"))


@pytest.mark.parametrize("url", ["http://[", "https://[::1", "https://host:99999", "https://u:pw@[x"])
def test_an_unreadable_host_or_port_is_named_and_the_url_not_echoed(url: str) -> None:
    with pytest.raises(ConfigurationError, match="url: is not a URL: its host or port cannot be read") as refused:
        validate_base_url(url, "url", allow_insecure_http=True)
    assert url not in str(refused.value)
