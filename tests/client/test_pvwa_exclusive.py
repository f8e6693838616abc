"""PVWA exclusive / one-time accounts and tickets through the client, over HTTPS to the dev server:
what a retrieve carries, what a check-in does, and the typed error of a locked account."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyberark_ops.client import (
    AuthenticationFailed,
    CheckedOutByAnotherUser,
    ConfigurationError,
    Credential,
    CyberArkError,
    Forbidden,
    PlatformTokenAuth,
    PVWAClient,
    PVWAConfig,
    PVWALogonAuth,
    TokenCache,
    Unavailable,
)
from cyberark_ops.devserver import DevServer
from tests.exclusive import (
    AIRFLOW_PASSWORD,
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
    checked_out_by,
    current_password,
    exclusive_seed,
)

from .conftest import FAST


@pytest.fixture
def server(make_server: Callable[..., DevServer]) -> DevServer:
    return make_server(exclusive_seed())


def client(server: DevServer, user: str = AIRFLOW_USER, password: str = AIRFLOW_PASSWORD, **config: Any) -> PVWAClient:
    info = server.info()
    return PVWAClient(
        PVWAConfig(
            base_url=info["url"], ca_bundle=info["ca_cert"], auth=PVWALogonAuth(user, password), **FAST, **config
        )
    )


def events(server: DevServer, action: str) -> list[dict[str, Any]]:
    return list(server.app.audit.events(action=action))


def test_a_credential_of_a_check_in_connection_carries_its_account_id_and_checks_in(server: DevServer) -> None:
    with client(server, check_in=True) as pvwa:
        credential = pvwa.get_credential_by_id(EXCLUSIVE_OTP, reason="airflow dag=d task=t run=r")
    assert credential.secret == FIRST_PASSWORDS[EXCLUSIVE_OTP]
    assert credential.check_in_id == EXCLUSIVE_OTP
    assert checked_out_by(server, EXCLUSIVE_OTP) == AIRFLOW_USER
    assert FIRST_PASSWORDS[EXCLUSIVE_OTP] not in repr(credential)
    assert f"check_in_id={EXCLUSIVE_OTP!r}" in repr(credential)
    assert credential.to_dict()["check_in_id"] == EXCLUSIVE_OTP
    with client(server, check_in=True) as pvwa:
        pvwa.check_in(EXCLUSIVE_OTP)
    assert checked_out_by(server, EXCLUSIVE_OTP) is None
    assert current_password(server, EXCLUSIVE_OTP) != FIRST_PASSWORDS[EXCLUSIVE_OTP]
    (check_in,) = events(server, "pvwa.check_in")
    assert check_in["identity"] == AIRFLOW_USER and check_in["object"] == EXCLUSIVE_OTP
    assert "password changed" in check_in["detail"]


def test_without_check_in_the_credential_names_nothing_to_check_in(server: DevServer) -> None:
    with client(server) as pvwa:
        credential = pvwa.get_credential("Open", "plain")
    assert credential.check_in_id is None
    assert "check_in_id" not in repr(credential)


def test_another_users_retrieve_is_a_retryable_typed_error_naming_the_account(server: DevServer) -> None:
    with client(server, check_in=True) as pvwa:
        pvwa.retrieve_password(EXCLUSIVE)
    with client(server, OTHER_USER, OTHER_PASSWORD) as other, pytest.raises(CheckedOutByAnotherUser) as raised:
        other.get_credential_by_id(EXCLUSIVE)
    error = raised.value
    assert isinstance(error, Unavailable)  # the callers' "retry later" class
    assert error.account_id == EXCLUSIVE and error.code == "ITATS127E" and error.status == 500
    assert repr(EXCLUSIVE) in str(error) and "checked out" in str(error)
    assert FIRST_PASSWORDS[EXCLUSIVE] not in str(error) + repr(error)
    assert isinstance(pickle.loads(pickle.dumps(error)), CheckedOutByAnotherUser)
    assert "refused: checked out by another user" in events(server, "pvwa.retrieve_password")[-1]["detail"]


def test_a_suspended_user_at_logon_stays_an_authentication_failure(make_server: Callable[..., DevServer]) -> None:
    """ITATS127E on a logon means the Vault user is locked, not an account (docs/cyberark-apis.md §9.4)."""
    seed = exclusive_seed()
    seed["vault"]["pvwa_users"][0]["locked"] = True
    server = make_server(seed)
    with client(server) as pvwa, pytest.raises(AuthenticationFailed) as raised:
        pvwa.retrieve_password(PLAIN)
    assert not isinstance(raised.value, CheckedOutByAnotherUser)


def test_check_in_without_the_cpm_permission_is_forbidden_with_the_permission_named(server: DevServer) -> None:
    with client(server, NO_CPM_USER, NO_CPM_PASSWORD) as pvwa:
        pvwa.retrieve_password(EXCLUSIVE)
        with pytest.raises(Forbidden) as raised:
            pvwa.check_in(EXCLUSIVE)
    assert "Initiate CPM password management operations" in str(raised.value)
    assert checked_out_by(server, EXCLUSIVE) == NO_CPM_USER


def test_a_second_check_in_is_refused_and_says_so(server: DevServer) -> None:
    with client(server) as pvwa:
        pvwa.retrieve_password(EXCLUSIVE)
        pvwa.check_in(EXCLUSIVE)
        with pytest.raises(CyberArkError) as raised:
            pvwa.check_in(EXCLUSIVE)
    assert raised.value.status == 400 and "may not be checked out" in str(raised.value)
    assert len(events(server, "pvwa.check_in")) == 2


def test_a_ticket_from_the_config_is_sent_with_the_doc_field_names(server: DevServer) -> None:
    with client(server) as pvwa, pytest.raises(CyberArkError) as missing:
        pvwa.retrieve_password(TICKETED, reason="nightly")
    assert missing.value.status == 400
    with client(server, ticketing_system="ServiceNow", ticket_id="CHG0012345") as pvwa:
        assert pvwa.retrieve_password(TICKETED, reason="nightly") == FIRST_PASSWORDS[TICKETED]
    event = events(server, "pvwa.retrieve_password")[-1]
    assert "TicketingSystem=ServiceNow;TicketId=CHG0012345" in event["detail"]
    assert event["reason"] == "nightly"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"ticketing_system": "ServiceNow"}, "ticket_id"),
        ({"ticket_id": "CHG1"}, "ticketing_system"),
        ({"ticketing_system": "", "ticket_id": "CHG1"}, "ticketing_system"),
        ({"ticketing_system": "SN", "ticket_id": "CHG\n1"}, "ticket_id"),
        ({"check_in": "yes"}, "check_in"),
    ],
)
def test_bad_ticket_or_check_in_settings_name_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        PVWAConfig(base_url="https://pvwa.example", auth=PVWALogonAuth("u", "Some-Passw0rd"), **config)
    assert raised.value.field == field


@settings(max_examples=40, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=40),
    account_id=st.from_regex(r"[0-9]{1,6}_[0-9]{1,6}", fullmatch=True),  # PVWA ids: <safe>_<account>
)
def test_a_credential_never_shows_its_secret_whatever_it_checks_in(secret: str, account_id: str) -> None:
    credential = Credential(secret="Sx-" + secret + "-9Z", source="pvwa:id=1", check_in_id=account_id)
    shown = repr(credential) + str(credential) + f"{credential}" + json.dumps(credential.to_dict())
    assert "Sx-" + secret + "-9Z" not in shown
    assert credential.check_in_id == account_id
    with pytest.raises(TypeError):
        pickle.dumps(credential)


def test_check_in_id_must_be_a_non_empty_string() -> None:
    for bad in ("", 7):
        with pytest.raises(TypeError):
            Credential(secret="s", source="x", check_in_id=bad)  # type: ignore[arg-type]


def test_privilege_cloud_checks_in_with_its_platform_token(make_server: Callable[..., DevServer]) -> None:
    seed = exclusive_seed()
    client_id, client_secret = "airflow@cyberark.cloud.77", "Pcloud-Excl-Secret-1"
    seed["vault"]["platform_clients"] = [
        {
            "client_id": client_id,
            "client_secret": client_secret,
            "permissions": {"Exclusive": ["list", "retrieve", "initiate_cpm"]},
        }
    ]
    server = make_server(seed)
    info = server.info()
    config = PVWAConfig(
        base_url=info["url"],
        ca_bundle=info["ca_cert"],
        auth=PlatformTokenAuth(info["url"], client_id, client_secret),
        check_in=True,
        **FAST,
    )
    with PVWAClient(config, token_cache=TokenCache()) as cloud:
        credential = cloud.get_credential("Exclusive", "warehouse-exclusive")
        assert credential.check_in_id == EXCLUSIVE_OTP
        assert checked_out_by(server, EXCLUSIVE_OTP) == client_id
        cloud.check_in(EXCLUSIVE_OTP)
    assert checked_out_by(server, EXCLUSIVE_OTP) is None
    assert current_password(server, EXCLUSIVE_OTP) != FIRST_PASSWORDS[EXCLUSIVE_OTP]
