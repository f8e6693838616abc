"""Conjur client against the dev server: auth methods, reads, batches, encoding, token lifecycle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from cyberark_ops._version import __version__
from cyberark_ops.client import (
    PROCESS_TOKEN_CACHE,
    AuthenticationFailed,
    ConfigurationError,
    ConjurApiKeyAuth,
    ConjurClient,
    ConjurConfig,
    ConjurJWTAuth,
    Forbidden,
    InvalidResponse,
    NotFound,
    TokenCache,
)
from cyberark_ops.client.auth import lenient_b64decode, renewal_delay
from cyberark_ops.client.conjur import request_id_for
from cyberark_ops.devserver.seed import demo_seed

from .conftest import ADMIN_API_KEY, ADMIN_LOGIN, CONJUR_BATCH, HOST_API_KEY, HOST_LOGIN, Events, Vault

SPECIAL_IDS = {
    "a/ b /c": "space-and-slash",
    "research+development": "plus-sign",
    "sales&marketing": "ampersand",
    "alice@devops": "at-sign",
    "percent%literal": "percent-sign",
    "unicode/clé-ключ": "ünïcödé-välue",
}
BATCH_IDS = [f"prod/batch/secret-{n:02d}" for n in range(1, 21)]


def client_for(vault: Vault, token_cache: TokenCache, events: Events | None = None, **overrides: Any) -> ConjurClient:
    return ConjurClient(vault.conjur_config(**overrides), token_cache=token_cache, on_event=events)


def mint_jwt(vault: Vault, claims: dict[str, Any], ttl: int = 300) -> str:
    response = requests.post(
        f"{vault.url}/_dev/conjur/jwt",
        json={"claims": claims, "ttl": ttl},
        headers={"Authorization": f"Bearer {vault.info['admin_token']}"},
        verify=vault.ca,
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["jwt"])


# -- authentication methods ------------------------------------------------------------------------


def test_the_server_sees_the_package_version_as_user_agent(vault: Vault, token_cache: TokenCache) -> None:
    with client_for(vault, token_cache) as client:
        assert client.whoami()["user_agent"] == f"cyberark-ops/{__version__}"


def test_api_key_as_host(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    assert client.authenticate() == HOST_LOGIN
    assert client.whoami()["username"] == HOST_LOGIN
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    authn = vault.events(action="conjur.authenticate")
    assert len(authn) == 1 and authn[0]["identity"] == HOST_LOGIN


def test_api_key_as_user(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache, auth=ConjurApiKeyAuth(ADMIN_LOGIN, ADMIN_API_KEY))
    assert client.whoami()["username"] == ADMIN_LOGIN
    assert client.get_secret("admin/break-glass") == "break-glass-only-for-admin"


def test_wrong_api_key_is_authentication_failed(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache, auth=ConjurApiKeyAuth(HOST_LOGIN, "wrong-key"))
    with pytest.raises(AuthenticationFailed) as raised:
        client.get_secret("prod/db/password")
    message = str(raised.value)
    assert "Conjur authenticate for login 'host/airflow/worker': HTTP 401" in message
    assert "API key" in message and "wrong-key" not in message
    assert vault.count("conjur.authenticate") == 1  # a failed login is not retried
    assert vault.count("conjur.retrieve") == 0


def test_jwt_from_a_file_is_read_again_on_each_authentication(
    vault: Vault, token_cache: TokenCache, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(mint_jwt(vault, {"sub": "worker"}) + "\n")
    client = client_for(vault, token_cache, auth=ConjurJWTAuth("airflow", token_file=token_file))
    assert client.whoami()["username"] == HOST_LOGIN
    assert vault.events(action="conjur.authenticate_jwt")[0]["status"] == 200
    # A rotated token file is picked up by the next authentication.
    token_file.write_text(mint_jwt(vault, {"sub": "worker"}))
    vault.revoke_tokens()
    assert client.get_secret("prod/db/username") == "airflow_demo"
    assert vault.count("conjur.authenticate_jwt") == 2
    token_file.write_text("not a jwt")
    vault.revoke_tokens()
    with pytest.raises(ConfigurationError) as raised:
        client.get_secret("prod/db/username")
    assert raised.value.field == "token_file" and "not a jwt" not in str(raised.value)


def test_jwt_from_a_callable_with_the_host_in_the_url(
    make_vault: Callable[..., Vault], token_cache: TokenCache
) -> None:
    seed = demo_seed()
    # A service without token_app_property: the host id comes from the URL.
    seed["conjur"]["authn_jwt"].append({"service_id": "airflow-url", "issuer": "https://devserver.cyberark-ops.local"})
    vault = make_vault(seed)
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return mint_jwt(vault, {"sub": "worker"})

    auth = ConjurJWTAuth("airflow-url", token_provider=provider, login=HOST_LOGIN)
    client = client_for(vault, token_cache, auth=auth)
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert len(calls) == 1
    assert vault.count("conjur.authenticate_jwt") == 1


def test_expired_jwt_is_authentication_failed(vault: Vault, token_cache: TokenCache) -> None:
    jwt = mint_jwt(vault, {"sub": "worker"}, ttl=60)
    vault.advance(120)
    client = client_for(vault, token_cache, auth=ConjurJWTAuth("airflow", token_provider=lambda: jwt))
    with pytest.raises(AuthenticationFailed) as raised:
        client.whoami()
    assert "authn-jwt/airflow" in str(raised.value)
    assert jwt not in str(raised.value)


def test_jwt_auth_needs_exactly_one_source() -> None:
    with pytest.raises(ConfigurationError):
        ConjurJWTAuth("airflow")
    with pytest.raises(ConfigurationError):
        ConjurJWTAuth("airflow", token_file="/x", token_provider=lambda: "a.b.c")


def test_missing_token_file_is_a_configuration_error(vault: Vault, token_cache: TokenCache, tmp_path: Path) -> None:
    client = client_for(vault, token_cache, auth=ConjurJWTAuth("airflow", token_file=tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="cannot read the JWT"):
        client.whoami()


# -- SaaS layout ----------------------------------------------------------------------------------


def test_cloud_host_names_are_detected() -> None:
    config = ConjurConfig(
        base_url="https://acme.secretsmgr.cyberark.cloud", auth=ConjurApiKeyAuth("host/data/app", "k")
    )
    assert (config.cloud, config.account, config.api_prefix) == (True, "conjur", "/api")
    explicit = ConjurConfig(
        base_url="https://acme.secretsmgr.cyberark.cloud/api/", auth=ConjurApiKeyAuth("host/data/app", "k")
    )
    assert explicit.api_prefix == "" and explicit.base_url.endswith("/api")
    with pytest.raises(ConfigurationError) as raised:
        ConjurConfig(base_url="https://conjur.example.com", auth=ConjurApiKeyAuth("host/app", "k"))
    assert raised.value.field == "account"


def test_cloud_mode_uses_the_api_prefix(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache, cloud=True)
    assert client.get_secrets(["prod/db/username", "prod/db/password"])["prod/db/username"] == "airflow_demo"


# -- reads ----------------------------------------------------------------------------------------


def test_versions(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    assert client.get_secret("prod/api/key") == "demo-api-key-v3"
    assert client.get_secret("prod/api/key", version=1) == "demo-api-key-v1"
    with pytest.raises(NotFound, match="version 9"):
        client.get_secret("prod/api/key", version=9)
    with pytest.raises(ConfigurationError):
        client.get_secret("prod/api/key", version=0)


def test_binary_values(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    single = client.get_secret_bytes("certs/keystore")
    assert single.startswith(b"\xfe\xed\xfe\xed")
    assert client.get_secrets_bytes(["certs/keystore"]) == {"certs/keystore": single}
    with pytest.raises(InvalidResponse, match="get_secret_bytes"):
        client.get_secret("certs/keystore")
    with pytest.raises(InvalidResponse, match="get_secrets_bytes"):
        client.get_secrets(["certs/keystore", "prod/db/username"])


@pytest.mark.parametrize(("variable_id", "value"), list(SPECIAL_IDS.items()))
def test_special_ids_round_trip_singly(vault: Vault, token_cache: TokenCache, variable_id: str, value: str) -> None:
    assert client_for(vault, token_cache).get_secret(variable_id) == value
    assert vault.events(action="conjur.retrieve")[-1]["object"] == variable_id


def test_special_ids_round_trip_in_one_batch(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    client.authenticate()
    mark = vault.mark()
    assert client.get_secrets(list(SPECIAL_IDS)) == SPECIAL_IDS
    assert vault.actions(mark) == [CONJUR_BATCH]


def test_batch_mixes_binary_and_text_and_fetches_comma_ids_singly(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    client.authenticate()
    mark = vault.mark()
    ids = ["prod/db/username", "certs/keystore", "with,comma", "prod/db/username"]
    values = client.get_secrets_bytes(ids)
    assert list(values) == ["prod/db/username", "certs/keystore", "with,comma"]
    assert values["prod/db/username"] == b"airflow_demo"
    assert values["with,comma"] == b"comma-cannot-batch"
    assert values["certs/keystore"] == client.get_secret_bytes("certs/keystore")
    assert vault.actions(mark)[:2] == [CONJUR_BATCH, "conjur.retrieve"]
    assert vault.events(mark)[0]["status"] == 200  # duplicates were removed before sending


def test_twenty_secrets_cost_two_calls(vault: Vault, token_cache: TokenCache) -> None:
    """The call-count guarantee: authenticate + one batch, whatever the number of secrets."""
    client = client_for(vault, token_cache)
    values = client.get_secrets(BATCH_IDS, reason="dag etl task load")
    assert values == {i: f"batch-value-{i[-2:]}" for i in BATCH_IDS}
    assert vault.actions() == ["conjur.authenticate", CONJUR_BATCH]


def test_long_batches_are_split_by_url_length(make_vault: Callable[..., Vault], token_cache: TokenCache) -> None:
    ids = [f"big/{'x' * 60}-{n:03d}" for n in range(150)]
    seed = {
        "conjur": {
            "account": "demo",
            "hosts": [{"id": "airflow/worker", "api_key": HOST_API_KEY}],
            "variables": [{"id": i, "value": f"v{n}"} for n, i in enumerate(ids)],
            "permits": [{"role": "host:airflow/worker", "privileges": ["read", "execute"], "resources": ["big/*"]}],
        }
    }
    vault = make_vault(seed)
    client = client_for(vault, token_cache)
    client.authenticate()
    values = client.get_secrets(ids)
    assert values == {i: f"v{n}" for n, i in enumerate(ids)}
    batches = vault.count(CONJUR_BATCH)
    assert 2 <= batches <= 3


def test_empty_batch_costs_nothing(vault: Vault, token_cache: TokenCache) -> None:
    assert client_for(vault, token_cache).get_secrets([]) == {}
    assert vault.events() == []


@pytest.mark.parametrize("bad_id", ["../admin/break-glass", "prod/../admin/break-glass", "prod//x", "/prod", "x\r\n"])
def test_bad_ids_never_reach_the_server(vault: Vault, token_cache: TokenCache, bad_id: str) -> None:
    client = client_for(vault, token_cache)
    with pytest.raises(ConfigurationError) as raised:
        client.get_secret(bad_id)
    assert raised.value.field == "variable_id"
    with pytest.raises(ConfigurationError):
        client.get_secrets(["prod/db/username", bad_id])
    assert vault.events() == []


def test_forbidden_and_not_found_messages(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    with pytest.raises(Forbidden) as forbidden:
        client.get_secret("prod/restricted/audit-key")
    message = str(forbidden.value)
    assert "Conjur retrieve variable 'prod/restricted/audit-key': HTTP 403" in message
    assert "lacks execute" in message and HOST_LOGIN in message
    assert forbidden.value.path == "/secrets/demo/variable/prod%2Frestricted%2Faudit-key"

    with pytest.raises(NotFound) as missing:
        client.get_secret("admin/break-glass")
    assert "CONJ00076E" in str(missing.value) and "not visible to" in str(missing.value)
    assert missing.value.code == "not_found"

    with pytest.raises(NotFound, match="empty or not found"):
        client.get_secret("prod/db/empty")

    # In a batch Conjur checks privileges first: an invisible variable is 403, not 404.
    with pytest.raises(Forbidden) as batch:
        client.get_secrets(["prod/db/username", "admin/break-glass"])
    assert "fetch them singly" in str(batch.value)
    with pytest.raises(NotFound, match="prod/db/nope"):
        client.get_secrets(["prod/db/username", "prod/db/nope"])


def test_reason_is_sent_as_a_sanitised_request_id(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    client.get_secret("prod/db/password", reason="dag=etl task=load run=scheduled__2026-11-25T10:00:00+00:00")
    event = vault.events(action="conjur.retrieve")[-1]
    assert event["reason"] == "dag-etl-task-load-run-scheduled-2026-11-25T10-00-00-00-00"
    assert request_id_for("  ") is None
    assert request_id_for("ü" * 3) is None
    assert len(request_id_for("a" * 400) or "") == 255


def test_list_variables(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    ids = {r["id"] for r in client.list_variables()}
    assert "demo:variable:prod/db/password" in ids
    assert "demo:variable:admin/break-glass" not in ids
    batch = client.list_variables(search="batch")
    assert len(batch) == 20


# -- token lifecycle ------------------------------------------------------------------------------


def test_expired_token_is_renewed_once_after_401(vault: Vault, token_cache: TokenCache, events: Events) -> None:
    client = client_for(vault, token_cache, events)
    client.get_secret("prod/db/password")
    vault.advance(600)  # past the 480 s token lifetime, on the server's clock only
    mark = vault.mark()
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert [(e["action"], e["status"]) for e in vault.events(mark)] == [
        ("conjur.retrieve", 401),
        ("conjur.authenticate", 200),
        ("conjur.retrieve", 200),
    ]
    assert [t["reason"] for t in events.named("token_renewal")] == ["initial", "unauthorized"]


def test_token_is_renewed_before_it_expires(vault: Vault, events: Events) -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    client = client_for(vault, cache, events)
    client.get_secret("prod/db/password")
    now[0] += 300  # below 80 % of 480 s
    client.get_secret("prod/db/password")
    assert vault.count("conjur.authenticate") == 1
    now[0] += 100  # 400 s > 384 s: renew proactively, no 401 round trip
    mark = vault.mark()
    client.get_secret("prod/db/password")
    assert vault.actions(mark) == ["conjur.authenticate", "conjur.retrieve"]
    assert [t["reason"] for t in events.named("token_renewal")] == ["initial", "expiring"]


def test_revoked_token_is_replaced_once(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    client.get_secret("prod/db/password")
    vault.revoke_tokens()
    client.get_secret("prod/db/password")
    assert vault.count("conjur.authenticate") == 2


def test_a_second_401_fails_after_exactly_one_reauthentication(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    client.authenticate()
    vault.fault("conjur.retrieve", status=401, count=2)
    mark = vault.mark()
    with pytest.raises(AuthenticationFailed) as raised:
        client.get_secret("prod/db/password")
    assert vault.actions(mark) == ["conjur.retrieve", "conjur.authenticate", "conjur.retrieve"]
    assert raised.value.status == 401


def test_clients_with_one_identity_share_the_process_token_cache(vault: Vault) -> None:
    config = vault.conjur_config()
    try:
        for _ in range(3):  # e.g. Airflow 3.1 building a backend per lookup
            assert ConjurClient(config).get_secret("prod/db/username") == "airflow_demo"
        assert ConjurClient(vault.conjur_config()).get_secret("prod/db/username") == "airflow_demo"
        assert vault.count("conjur.authenticate") == 1
        other = vault.conjur_config(auth=ConjurApiKeyAuth(ADMIN_LOGIN, ADMIN_API_KEY))
        ConjurClient(other).get_secret("prod/db/username")
        assert vault.count("conjur.authenticate") == 2
    finally:
        PROCESS_TOKEN_CACHE.clear()


def test_concurrent_callers_authenticate_once(vault: Vault, token_cache: TokenCache) -> None:
    client = client_for(vault, token_cache)
    results: list[str] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            results.append(client.get_secret("prod/db/username"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == ["airflow_demo"] * 8
    assert vault.count("conjur.authenticate") == 1


def test_wrong_account_is_authentication_failed(vault: Vault, token_cache: TokenCache) -> None:
    with pytest.raises(AuthenticationFailed, match="account 'other'"):
        client_for(vault, token_cache, account="other").get_secret("prod/db/password")


# -- token helpers --------------------------------------------------------------------------------


def test_lenient_base64_and_renewal_schedule() -> None:
    assert lenient_b64decode("eyJhIjoxfQ") == b'{"a":1}'  # no padding
    assert lenient_b64decode("eyJhIjoxfQ==\n") == b'{"a":1}'
    assert lenient_b64decode("-_8") == b"\xfb\xff"  # url-safe alphabet
    assert renewal_delay(480) == 384
    assert renewal_delay(100) == 70  # 30 s before expiry comes first
    assert renewal_delay(10) == 8
