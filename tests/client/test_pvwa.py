"""PVWA / Privilege Cloud client against the dev server: logons, sessions, search, retrieval."""

from __future__ import annotations

from typing import Any

import pytest

from cyberark_ops.client import (
    PROCESS_TOKEN_CACHE,
    AuthenticationFailed,
    ConfigurationError,
    Forbidden,
    NotFound,
    PlatformTokenAuth,
    PVWAClient,
    PVWALogonAuth,
    PVWARef,
    TokenCache,
    parse_ref,
)
from cyberark_ops.devserver.seed import demo_seed

from .conftest import (
    LDAP_PASSWORD,
    LDAP_USER,
    PLATFORM_CLIENT_ID,
    PLATFORM_CLIENT_SECRET,
    PVWA_USER,
    Vault,
)


def pvwa(vault: Vault, token_cache: TokenCache | None = None, **overrides: Any) -> PVWAClient:
    return PVWAClient(vault.pvwa_config(**overrides), token_cache=token_cache)


def platform(vault: Vault, secret: str = PLATFORM_CLIENT_SECRET) -> PlatformTokenAuth:
    return PlatformTokenAuth(vault.url, PLATFORM_CLIENT_ID, secret)


def test_cyberark_logon_get_credential_and_logoff(vault: Vault) -> None:
    with pvwa(vault) as client:
        credential = client.get_credential("DB-Prod", "pg-prod", reason="dag etl task load")
    assert credential.secret == "Pg-Pr0d-Dev!"
    assert (credential.username, credential.address, credential.port, credential.database) == (
        "etl_user",
        "127.0.0.1",
        5432,
        "sales",
    )
    assert credential.source == "pvwa:DB-Prod/pg-prod"
    assert credential.extra["id"] == "2_1" and credential.extra["safeName"] == "DB-Prod"
    assert vault.actions() == ["pvwa.logon", "pvwa.list_accounts", "pvwa.retrieve_password", "pvwa.logoff"]
    assert vault.events(action="pvwa.retrieve_password")[0]["reason"] == "dag etl task load"
    assert vault.events(action="pvwa.logon")[0]["detail"] == "auth=CyberArk"


def test_password_with_json_escapes_is_decoded_not_sliced(vault: Vault) -> None:
    with pvwa(vault) as client:
        assert client.retrieve_password("3_1") == "p@ss w0rd;&%+=?#\"'\\/<>|`$(x)ü€"


def test_ldap_logon(vault: Vault) -> None:
    with pvwa(vault, auth=PVWALogonAuth(LDAP_USER, LDAP_PASSWORD, auth_type="ldap")) as client:
        account = client.find_account("App-Dev", "sqlite-dev")
        assert account["userName"] == "airflow"
        with pytest.raises(Forbidden) as raised:
            client.retrieve_password(account["id"])
    assert "Retrieve accounts" in str(raised.value)
    assert vault.events(action="pvwa.logon")[0]["detail"] == "auth=LDAP"
    assert vault.count("pvwa.logoff") == 1


def test_wrong_password_is_authentication_failed(vault: Vault) -> None:
    with (
        pvwa(vault, auth=PVWALogonAuth(PVWA_USER, "wrong-Passw0rd")) as client,
        pytest.raises(AuthenticationFailed) as raised,
    ):
        client.logon()
    message = str(raised.value)
    assert "PVWA logon as 'svc_airflow' (CyberArk)" in message and "PASWS013E" in message
    assert "wrong-Passw0rd" not in message
    assert vault.count("pvwa.logon") == 1
    assert vault.count("pvwa.logoff") == 0  # nothing to log off


def test_locked_user_is_not_retried(vault: Vault) -> None:
    with (
        pvwa(vault, auth=PVWALogonAuth("locked_user", "Locked-Dev-Pass1")) as client,
        pytest.raises(AuthenticationFailed, match="suspended"),
    ):
        client.logon()
    assert vault.count("pvwa.logon") == 1


def test_logoff_happens_when_the_body_raises(vault: Vault) -> None:
    with pytest.raises(RuntimeError, match="task failed"), pvwa(vault) as client:
        client.find_account("DB-Prod", "pg-prod")
        raise RuntimeError("task failed")
    assert vault.actions()[-1] == "pvwa.logoff"


def test_a_failing_logoff_never_masks_the_original_error(vault: Vault) -> None:
    vault.fault("pvwa.logoff", status=500)
    with pytest.raises(NotFound), pvwa(vault, max_retries=1) as client:
        client.find_account("DB-Prod", "no-such-account")
    assert vault.count("pvwa.logoff") == 2


def test_a_failing_logoff_after_success_only_logs(vault: Vault, caplog: pytest.LogCaptureFixture) -> None:
    vault.fault("pvwa.logoff", status=500)
    with pvwa(vault, max_retries=0) as client:
        assert client.retrieve_password("2_1") == "Pg-Pr0d-Dev!"
    assert "PVWA logoff for 'svc_airflow' failed (Unavailable)" in caplog.text


def test_expired_session_is_renewed_once(vault: Vault) -> None:
    with pvwa(vault) as client:
        client.retrieve_password("2_1")
        vault.revoke_tokens()
        mark = vault.mark()
        assert client.retrieve_password("2_1") == "Pg-Pr0d-Dev!"
        assert [(e["action"], e["status"]) for e in vault.events(mark)] == [
            ("pvwa.retrieve_password", 401),
            ("pvwa.logon", 200),
            ("pvwa.retrieve_password", 200),
        ]


def test_reason_required_by_policy(vault: Vault) -> None:
    with pvwa(vault) as client:
        with pytest.raises(ConfigurationError) as raised:
            client.get_credential("DB-Prod", "mariadb-reporting")
        assert "PASWS204E" in str(raised.value) and "reason" in str(raised.value)
        assert client.get_credential("DB-Prod", "mariadb-reporting", reason="report").secret == "Mar1a-Rep0rt-Dev"


def test_not_found(vault: Vault) -> None:
    with pvwa(vault) as client:
        with pytest.raises(NotFound, match="no account named 'nope' in safe 'DB-Prod'"):
            client.get_credential("DB-Prod", "nope")
        with pytest.raises(NotFound) as raised:
            client.retrieve_password("99_9")
        assert raised.value.code == "PASWS044E"
        # A safe the user cannot list looks empty.
        with pytest.raises(NotFound):
            client.find_account("Restricted", "break-glass")


def test_find_account_needs_an_exact_name(make_vault: Any) -> None:
    seed = demo_seed()
    seed["vault"]["accounts"].append({"name": "pg-prod-replica", "safe": "DB-Prod", "userName": "r", "secret": "s"})
    vault = make_vault(seed)
    with pvwa(vault) as client:
        assert len(client.search("pg-prod", safe="DB-Prod")) == 2
        assert client.find_account("DB-Prod", "pg-prod")["id"] == "2_1"
        with pytest.raises(NotFound):
            client.find_account("DB-Prod", "pg")


def test_find_account_falls_back_to_case_insensitive_names(vault: Vault) -> None:
    with pvwa(vault) as client:
        assert client.find_account("db-prod", "PG-PROD")["id"] == "2_1"


def test_search_pages_through_results(vault: Vault) -> None:
    with pvwa(vault, page_size=2) as client:
        accounts = client.search(safe="DB-Prod")
    assert len(accounts) == 4
    assert len({a["id"] for a in accounts}) == 4
    assert vault.count("pvwa.list_accounts") == 2


def test_get_by_reference_and_id(vault: Vault) -> None:
    with pvwa(vault) as client:
        by_id = client.get(PVWARef(account_id="2_1"))
        alias = parse_ref("privilege-cloud:App-Dev/sqlite-dev")
        assert isinstance(alias, PVWARef)
        by_name = client.get(alias)
    assert by_id.secret == "Pg-Pr0d-Dev!" and by_id.source == "pvwa:id=2_1"
    assert by_name.username == "airflow"
    with pytest.raises(ConfigurationError):
        PVWAClient(vault.pvwa_config()).retrieve_password("2_1/../x")


def test_platform_token_is_cached_process_wide_and_never_logged_off(vault: Vault) -> None:
    try:
        for _ in range(3):
            with pvwa(vault, auth=platform(vault)) as client:
                assert client.get_credential("DB-Prod", "pg-prod", reason="x").secret == "Pg-Pr0d-Dev!"
        assert vault.count("pvwa.platform_token") == 1
        assert vault.count("pvwa.logoff") == 0
        assert vault.events(action="pvwa.retrieve_password")[0]["identity"] == PLATFORM_CLIENT_ID
    finally:
        PROCESS_TOKEN_CACHE.clear()


def test_platform_token_renewed_after_401(vault: Vault, token_cache: TokenCache) -> None:
    with pvwa(vault, token_cache, auth=platform(vault)) as client:
        client.retrieve_password("2_1")
        vault.revoke_tokens()
        client.retrieve_password("2_1")
    assert vault.count("pvwa.platform_token") == 2


def test_wrong_client_secret_is_authentication_failed(vault: Vault, token_cache: TokenCache) -> None:
    with (
        pvwa(vault, token_cache, auth=platform(vault, "wrong-secret")) as client,
        pytest.raises(AuthenticationFailed) as raised,
    ):
        client.retrieve_password("2_1")
    assert "access_denied" in str(raised.value) and "wrong-secret" not in str(raised.value)
    assert "client_id / client_secret" in str(raised.value)


def test_auth_type_is_validated() -> None:
    with pytest.raises(ConfigurationError) as raised:
        PVWALogonAuth("u", "p", auth_type="Kerberos")
    assert raised.value.field == "auth_type"
    assert PVWALogonAuth("u", "p", auth_type="radius").auth_type == "RADIUS"


@pytest.mark.parametrize("auth_type", ["RADIUS", "Windows"])
def test_radius_and_windows_logons(make_vault: Any, auth_type: str) -> None:
    seed = demo_seed()
    seed["vault"]["pvwa_users"].append(
        {
            "username": f"{auth_type.lower()}_user",
            "password": f"{auth_type}-Dev-Pass1",
            "auth_type": auth_type,
            "permissions": {"DB-Prod": ["list", "retrieve"]},
        }
    )
    vault = make_vault(seed)
    auth = PVWALogonAuth(f"{auth_type.lower()}_user", f"{auth_type}-Dev-Pass1", auth_type.lower())
    with pvwa(vault, auth=auth) as client:
        assert client.get_credential("DB-Prod", "pg-prod", reason="radius/windows check").secret == "Pg-Pr0d-Dev!"
    (logon,) = vault.events(action="pvwa.logon")
    assert logon["identity"] == f"{auth_type.lower()}_user"
    assert logon["status"] == 200
    # The same user through another auth type is refused, as the Vault does.
    wrong = PVWALogonAuth(f"{auth_type.lower()}_user", f"{auth_type}-Dev-Pass1", "CyberArk")
    with pytest.raises(AuthenticationFailed), pvwa(vault, auth=wrong) as client:
        client.logon()
