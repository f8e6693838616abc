"""CCP client against the dev server: certificates, queries, error codes, password changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from cyberark_ops.client import (
    AmbiguousQuery,
    CCPClient,
    CCPConfig,
    ConfigurationError,
    Forbidden,
    NotFound,
    PasswordChangeInProgress,
    Unavailable,
    parse_ref,
)
from cyberark_ops.client.ccp import CCP, _truthy, ccp_reason
from cyberark_ops.client.refs import CCPRef

from .conftest import Events, Vault


def ccp(vault: Vault, events: Events | None = None, **overrides: Any) -> CCPClient:
    return CCPClient(vault.ccp_config(**overrides), on_event=events)


def test_get_account_with_a_client_certificate(vault: Vault) -> None:
    credential = ccp(vault).get_account(safe="DB-Prod", object="pg-prod", reason="dag etl, task load")
    assert credential.secret == "Pg-Pr0d-Dev!"
    assert (credential.username, credential.address, credential.port, credential.database) == (
        "etl_user",
        "127.0.0.1",
        5432,
        "sales",
    )
    assert credential.source == "ccp:Safe=DB-Prod;Object=pg-prod"
    assert credential.extra["PolicyID"] == "PostgreSQL"
    assert "Content" not in credential.extra
    event = vault.events(action="ccp.get_password")[0]
    assert event["identity"] == "AirflowProd"
    assert event["object"] == "Safe=DB-Prod;Folder=Root;Object=pg-prod"
    assert event["reason"] == "dag etl, task load"
    assert "cert=" in str(event["detail"])


def test_get_by_reference(vault: Vault) -> None:
    ref = parse_ref("ccp:safe=App-Dev;object=sqlite-dev")
    assert isinstance(ref, CCPRef)
    credential = ccp(vault).get(ref)
    assert credential.secret == "Sqlite-Dev-Pass"
    assert credential.extra["LogonDomain"] == "DEV"


def test_special_characters_in_the_secret_survive(vault: Vault) -> None:
    credential = ccp(vault).get_account(safe="App-Dev", object="api-special")
    assert credential.secret == "p@ss w0rd;&%+=?#\"'\\/<>|`$(x)ü€"


def test_dual_account_query_returns_the_active_member(vault: Vault) -> None:
    credential = ccp(vault).get_account(safe="DB-Prod", query="VirtualUsername=etl-dual")
    assert credential.username == "etl_a"
    assert credential.extra["DualAccountStatus"] == "Active"


def test_regexp_query_format(vault: Vault) -> None:
    credential = ccp(vault).get_account(safe="DB-Prod", object="^pg-p.*$", query_format="Regexp")
    assert credential.username == "etl_user"


def test_missing_certificate_is_forbidden_with_a_hint(vault: Vault) -> None:
    with pytest.raises(Forbidden) as raised:
        ccp(vault, cert=False).get_account(safe="DB-Prod", object="pg-prod")
    message = str(raised.value)
    assert raised.value.code == "APPAP306E"
    assert "No client certificate was presented" in message
    assert "allowed machines" in message and "client certificate" in message
    assert vault.count("ccp.get_password") == 1  # not retried


def test_an_app_id_without_certificate_rules_needs_none(vault: Vault) -> None:
    credential = ccp(vault, cert=False, app_id="AirflowNoCert").get_account(safe="App-Dev", object="sqlite-dev")
    assert credential.username == "airflow"


def test_disabled_app_id_is_forbidden(vault: Vault) -> None:
    with pytest.raises(Forbidden) as raised:
        ccp(vault, app_id="AirflowDisabled").get_account(safe="DB-Prod", object="pg-prod")
    assert raised.value.code == "APPAP008E"
    assert "AppID" in str(raised.value)


def test_not_found(vault: Vault) -> None:
    with pytest.raises(NotFound) as raised:
        ccp(vault).get_account(safe="DB-Prod", object="nope")
    message = str(raised.value)
    assert raised.value.code == "APPAP004E"
    assert "Object=nope" in message and "members of the safe" in message
    assert raised.value.path == "/AIMWebService/api/Accounts"


def test_a_safe_the_app_may_not_use_looks_missing(vault: Vault) -> None:
    with pytest.raises(NotFound):
        ccp(vault).get_account(safe="Restricted", object="break-glass")


def test_a_query_matching_several_accounts_is_ambiguous(vault: Vault) -> None:
    with pytest.raises(AmbiguousQuery) as raised:
        ccp(vault).get_account(safe="DB-Prod", database="warehouse")
    assert isinstance(raised.value, ConfigurationError)
    assert raised.value.code == "APPAP227E"
    assert "several accounts" in str(raised.value)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"safe": "DB-Prod", "object": "pg&prod"}, "Object"),
        ({"safe": "DB+Prod", "object": "pg-prod"}, "Safe"),
        ({"safe": "DB-Prod", "object": "100%"}, "Object"),
        ({"safe": "DB-Prod", "object": "a;b"}, "Object"),
        ({"safe": "DB-Prod", "folder": "Root\\..\\Secrets", "object": "x"}, "Folder"),
        ({"safe": "DB-Prod", "username": "etl\nuser"}, "UserName"),
    ],
)
def test_values_ccp_cannot_carry_are_refused_before_any_call(vault: Vault, params: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ccp(vault).get_account(**params)
    assert raised.value.field == name
    assert name in str(raised.value)
    assert vault.events() == []


def test_query_format_is_checked(vault: Vault) -> None:
    with pytest.raises(ConfigurationError, match="Exact or Regexp"):
        ccp(vault).get_account(safe="DB-Prod", object="pg-prod", query_format="Fuzzy")


def test_reason_is_cleaned_not_refused(vault: Vault) -> None:
    ccp(vault).get_account(safe="DB-Prod", object="pg-prod", reason="run scheduled__2026-11-25T10:00+00:00 & more")
    assert (
        vault.events(action="ccp.get_password")[0]["reason"] == "run scheduled__2026-11-25T10:00Z more"
    )  # issue 16: was " 00:00"
    assert ccp_reason("\n") is None


def test_password_change_in_process_is_waited_out(vault: Vault, events: Events) -> None:
    """``PasswordChangeInProcess: True`` -> wait and ask again; the change window ends on the server clock."""
    vault.server.app.rotate("vault:2_1", "Pg-Rotated-2", change_window=30)

    def on_event(name: str, tags: dict[str, Any]) -> None:
        events(name, tags)
        if name == "retry" and tags.get("reason") == "password_change":
            vault.advance(31)

    client = CCPClient(vault.ccp_config(password_change_wait=0.01), on_event=on_event)
    credential = client.get_account(safe="DB-Prod", object="pg-prod")
    assert credential.secret == "Pg-Rotated-2"
    assert credential.extra["PasswordChangeInProcess"] == "False"
    assert vault.count("ccp.get_password") == 2
    assert [t["reason"] for t in events.named("retry")] == ["password_change"]


def test_password_change_that_never_ends_raises(vault: Vault) -> None:
    vault.server.app.rotate("vault:2_1", None, change_window=3600)
    client = ccp(vault, password_change_retries=2, password_change_wait=0.01)
    with pytest.raises(PasswordChangeInProgress) as raised:
        client.get_account(safe="DB-Prod", object="pg-prod")
    assert "after 2 wait(s)" in str(raised.value)
    assert vault.count("ccp.get_password") == 3


def test_fail_request_on_password_change(vault: Vault) -> None:
    vault.server.app.rotate("vault:2_1", None, change_window=3600)
    client = ccp(vault, fail_on_password_change=True, password_change_retries=1, password_change_wait=0.01)
    with pytest.raises(PasswordChangeInProgress) as raised:
        client.get_account(safe="DB-Prod", object="pg-prod")
    assert raised.value.code == "APPAP282E" and raised.value.status == 500
    statuses = [e["status"] for e in vault.events(action="ccp.get_password")]
    assert statuses == [500, 500]  # the transport does not retry APPAP282E on its own


def test_config_validation() -> None:
    base: dict[str, Any] = {"base_url": "https://ccp.example.com"}
    with pytest.raises(ConfigurationError) as raised:
        CCPConfig(**base, app_id="Airflow&Prod")
    assert raised.value.field == "app_id"
    with pytest.raises(ConfigurationError) as raised:
        CCPConfig(**base, app_id="AirflowProd", connection_timeout=60, read_timeout=30)
    assert raised.value.field == "connection_timeout"
    with pytest.raises(ConfigurationError) as raised:
        CCPConfig(**base, app_id="AirflowProd", service_path="../admin")
    assert raised.value.field == "service_path"


def test_true_in_both_forms_and_both_message_keys() -> None:
    assert _truthy("True") and _truthy("true") and _truthy(True)
    assert not _truthy("False") and not _truthy(False) and not _truthy(None)
    response = requests.Response()
    response.status_code = 404
    response.headers["Content-Type"] = "application/json"
    response._content = b'{"ErrorCode":"APPAP004E","ErrorMessage":"spelled the PVWA way"}'
    assert CCP.parse_error_body(response) == ("APPAP004E", "spelled the PVWA way")


def test_check_service_sends_no_request(make_vault: Callable[..., Vault], closed_port: int) -> None:
    vault, other = make_vault(), make_vault()
    message = ccp(vault).check_service()
    assert "reachable" in message and "client certificate was presented" in message
    assert vault.events() == []
    with pytest.raises(ConfigurationError, match="ca_bundle"):
        ccp(vault, ca_bundle=other.ca).check_service()
    with pytest.raises(Unavailable, match="connection refused"):
        ccp(vault, base_url=f"https://127.0.0.1:{closed_port}").check_service()
