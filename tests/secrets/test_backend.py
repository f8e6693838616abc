"""The secrets backend in-process, against the dev server: lookups, mapping, caching and failures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops import scrub, secrets
from cyberark_ops.client import ConfigurationError
from cyberark_ops.client.pacing import MACHINE_WIDE
from cyberark_ops.devserver import DevServer
from cyberark_ops.fetch import FIXED_RATE_BUDGETS
from cyberark_ops.secrets import CyberArkSecretsBackend, VaultLookupFailed, reset_backend_state
from cyberark_ops.testing.process_state import reset_process_state
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN, PVWA_PASSWORD, PVWA_USER


class Vault:
    def __init__(self, server: DevServer, tmp_path: Path) -> None:
        self.server = server
        self.info = server.info()
        self.key_file = tmp_path / "conjur-api-key"
        self.key_file.write_text(HOST_API_KEY)
        self.password_file = tmp_path / "pvwa-password"
        self.password_file.write_text(PVWA_PASSWORD)
        # Copies: a stopped server deletes its state directory, and an outage must look like one.
        self.ca = tmp_path / "ca.pem"
        self.ca.write_bytes(Path(self.info["ca_cert"]).read_bytes())

    def transport(self) -> dict[str, Any]:
        return {"url": self.info["url"], "ca_bundle": str(self.ca), "read_timeout": 5, "max_retries": 1, "deadline": 15}

    def conjur(self, **kwargs: Any) -> CyberArkSecretsBackend:
        return CyberArkSecretsBackend(
            **self.transport(),
            api="conjur",
            login=HOST_LOGIN,
            api_key_file=str(self.key_file),
            account=self.info["conjur_account"],
            **{
                "env": "dev",
                "connections_path": "airflow/{env}/connections/{conn_id}",
                "variables_path": "prod/db/{variable}",
                "config_path": "prod/api/{key}",
                **kwargs,
            },
        )

    def ccp(self, **kwargs: Any) -> CyberArkSecretsBackend:
        return CyberArkSecretsBackend(
            **self.transport(),
            api="ccp",
            app_id="AirflowProd",
            client_cert=self.info["client_cert"],
            client_key=self.info["client_key"],
            **{"connections_path": "ccp:Safe=DB-Prod;Object={conn_id}", "conn_type": "postgres", **kwargs},
        )

    def pvwa(self, **kwargs: Any) -> CyberArkSecretsBackend:
        return CyberArkSecretsBackend(
            **self.transport(),
            api="pvwa",
            login=PVWA_USER,
            password_file=str(self.password_file),
            **{"connections_path": "pvwa:DB-Prod/{conn_id}", "variables_path": "DB-Prod/{variable}", **kwargs},
        )

    def calls(self, action: str | None = None) -> list[dict[str, Any]]:
        events = [e for e in self.server.app.audit.events() if not e["action"].startswith("dev.")]
        return [e for e in events if action is None or e["action"] == action]


@pytest.fixture
def vault(make_server: Callable[..., DevServer], tmp_path: Path) -> Iterator[Vault]:
    yield Vault(make_server(), tmp_path)


def test_conjur_serves_connections_variables_and_config(vault: Vault) -> None:
    backend = vault.conjur()
    assert backend.get_conn_value("demo_sqlite") == "sqlite://%2Ftmp%2Fcyberark-ops-demo.sqlite"
    conn = backend.get_connection("demo_postgres")
    assert conn is not None
    assert (conn.conn_type, conn.login, conn.password, conn.port) == (
        "postgres",
        "airflow_demo",
        "Demo-PG-Passw0rd!",
        5432,
    )
    assert backend.get_variable("username") == "airflow_demo"
    assert backend.get_config("key") == "demo-api-key-v3"
    assert backend.get_conn_value("no_such_conn") is None


def test_ccp_assembles_a_connection_from_the_account_properties(vault: Vault) -> None:
    value = vault.ccp().get_conn_value("pg-prod")
    assert value is not None
    assert json.loads(value) == {
        "conn_type": "postgres",
        "password": "Pg-Pr0d-Dev!",
        "host": "127.0.0.1",
        "login": "etl_user",
        "port": 5432,
        "schema": "sales",
    }
    reason = vault.calls("ccp.get_password")[0]["reason"]
    assert reason.startswith("airflow secrets-backend")


def test_pvwa_serves_connections_and_variables(vault: Vault) -> None:
    backend = vault.pvwa(conn_type="postgres")
    conn = json.loads(backend.get_conn_value("pg-prod") or "{}")
    assert (conn["login"], conn["password"], conn["schema"]) == ("etl_user", "Pg-Pr0d-Dev!", "sales")
    assert backend.get_variable("pg-prod") == "Pg-Pr0d-Dev!"
    assert len(vault.calls("pvwa.logon")) == 1, "one session per process, not one per lookup"
    assert vault.calls("pvwa.logoff") == []
    reset_backend_state()  # what runs at interpreter exit
    assert len(vault.calls("pvwa.logoff")) == 1


def test_ids_outside_the_lookup_pattern_cost_no_vault_call(vault: Vault) -> None:
    backend = vault.conjur(connections_lookup_pattern="^demo_", variables_lookup_pattern="^user")
    for _ in range(100):
        assert backend.get_conn_value("metastore_only") is None
        assert backend.get_variable("other") is None
    assert vault.calls() == []
    assert backend.get_conn_value("demo_sqlite")
    assert len(vault.calls("conjur.retrieve")) == 1


def test_found_and_missing_ids_are_cached_for_their_ttl(vault: Vault) -> None:
    for _ in range(3):
        backend = vault.conjur()  # Airflow 3.1 builds a backend per lookup: the cache is per process
        assert backend.get_conn_value("demo_sqlite")
        assert backend.get_conn_value("missing_conn") is None
    assert len(vault.calls("conjur.retrieve")) == 2
    assert len(vault.calls("conjur.authenticate")) == 1


def test_a_zero_ttl_turns_the_cache_off(vault: Vault) -> None:
    backend = vault.conjur(cache_ttl_seconds=0, negative_cache_ttl_seconds=0)
    for _ in range(3):
        backend.get_conn_value("demo_sqlite")
        backend.get_conn_value("missing_conn")
    assert len(vault.calls("conjur.retrieve")) == 6
    assert len(vault.calls("conjur.authenticate")) == 1


def test_a_vault_outage_fails_loudly_by_default(vault: Vault) -> None:
    backend = vault.conjur()
    vault.server.stop()
    with pytest.raises(VaultLookupFailed) as raised:
        backend.get_conn_value("demo_sqlite")
    message = str(raised.value)
    assert "connection 'demo_sqlite'" in message
    assert "airflow/dev/connections/demo_sqlite" in message
    assert "connection refused" in message
    assert isinstance(raised.value, PermissionError), "Airflow re-raises AccessDenied instead of falling through"


def test_fall_through_on_error_is_opt_in(vault: Vault, caplog: pytest.LogCaptureFixture) -> None:
    backend = vault.conjur(fall_through_on_error=True)
    vault.server.stop()
    assert backend.get_conn_value("demo_sqlite") is None
    assert "falling through" in caplog.text


def test_a_path_the_identity_may_not_read_is_access_denied(vault: Vault) -> None:
    backend = vault.conjur(variables_path="prod/restricted/{variable}")
    with pytest.raises(VaultLookupFailed, match="denied") as raised:
        backend.get_variable("audit-key")
    assert "read-only-for-the-host" not in str(raised.value)
    assert "prod/restricted/audit-key" in str(raised.value)


def test_bad_json_in_a_stored_connection_names_id_and_path_but_no_value(vault: Vault) -> None:
    vault.server.app.rotate("conjur:prod/rotating/password", value='{"conn_type": "postgres", "password": "Cut-Of')
    backend = vault.conjur(connections_path="prod/rotating/{conn_id}")
    with pytest.raises(VaultLookupFailed, match="not valid JSON") as raised:
        backend.get_conn_value("password")
    text = str(raised.value)
    assert "'password'" in text and "prod/rotating/password" in text
    assert "Cut-Of" not in text
    as_array = vault.conjur(connections_path="prod/app/{conn_id}", connection_format="json")
    vault.server.app.rotate("conjur:prod/app/config", value="[1, 2]")
    with pytest.raises(VaultLookupFailed, match="not an object"):
        as_array.get_conn_value("config")
    bad = vault.conjur(connections_path="prod/db/{conn_id}")
    with pytest.raises(VaultLookupFailed, match="neither a connection URI nor connection JSON") as raised:
        bad.get_conn_value("password")
    assert "Demo-PG-Passw0rd!" not in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"connections_path": "airflow/{conn}"}, "connections_path"),
        ({"connections_path": "airflow/{conn_id!r}"}, "connections_path"),
        ({"connections_path": "airflow/{conn_id"}, "connections_path"),
        ({"connections_path": "airflow/static"}, "connections_path"),
        ({"connections_path": "airflow/{env}/{conn_id}", "env": None}, "connections_path"),
        ({"env": "prod/../x"}, "env"),
        ({"connections_lookup_pattern": "(unclosed"}, "connections_lookup_pattern"),
        ({"cache_ttl_seconds": float("nan")}, "cache_ttl_seconds"),
        ({"cache_ttl_seconds": -1}, "cache_ttl_seconds"),
        ({"negative_cache_ttl_seconds": 1e308}, "negative_cache_ttl_seconds"),
        ({"connection_format": "yaml"}, "connection_format"),
        ({"conn_type": "post gres"}, "conn_type"),
        ({"fall_through_on_error": "maybe"}, "fall_through_on_error"),
    ],
)
def test_bad_backend_kwargs_name_the_setting(vault: Vault, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        vault.conjur(**kwargs)
    assert raised.value.field == field
    assert f"backend_kwargs: {field}:" in str(raised.value)


def test_an_inline_api_key_is_refused(vault: Vault) -> None:
    with pytest.raises(ConfigurationError, match="api_key: a secret may not be written inline"):
        CyberArkSecretsBackend(url=vault.info["url"], api_key=HOST_API_KEY, connections_path="a/{conn_id}")


@pytest.mark.parametrize("conn_id", ["a;Safe=Other", "x=y", "a?version=1", "{env}", "new\nline", "back\\slash", ""])
def test_ids_that_would_change_the_reference_cost_no_call(vault: Vault, conn_id: str) -> None:
    assert vault.ccp().get_conn_value(conn_id) is None
    assert vault.conjur().get_conn_value(conn_id) is None
    assert vault.calls() == []


def test_fetched_values_are_registered_with_the_masker(vault: Vault) -> None:
    from airflow.sdk.log import redact

    vault.conjur().get_variable("password")
    assert redact("pw=Demo-PG-Passw0rd!") == "pw=***"


def test_a_backend_without_a_credential_source_says_which_settings_give_one(vault: Vault) -> None:
    backend = CyberArkSecretsBackend(
        **vault.transport(), login=HOST_LOGIN, account=vault.info["conjur_account"], connections_path="a/{conn_id}"
    )
    with pytest.raises(
        VaultLookupFailed, match="api_key_file: the API key is required: set api_key_file or api_key_env"
    ):
        backend.get_conn_value("x")


# --- reset_process_state: the root test fixture's one call ----------------------------------


def _authentications(vault: Vault) -> int:
    return sum(1 for event in vault.server.app.audit.events() if event["action"] == "conjur.authenticate")


def test_a_reset_process_looks_up_authenticates_and_paces_anew(vault: Vault) -> None:
    backend = vault.conjur(rate_limit_per_second=50)
    value = backend.get_variable("password")
    assert value and backend.get_variable("password") == value
    assert _authentications(vault) == 1, "the second lookup came from the backend's cache"
    assert secrets._FETCHERS and len(FIXED_RATE_BUDGETS) == 1
    assert scrub.scrub(f"x {value} y") == "x *** y"
    MACHINE_WIDE.pacer(vault.info["url"]).rate = 5.0

    reset_process_state()

    assert not secrets._FETCHERS
    assert len(FIXED_RATE_BUDGETS) == 0
    assert MACHINE_WIDE.pacer(vault.info["url"]).rate is None
    assert scrub.scrub(f"x {value} y") == f"x {value} y"
    assert vault.conjur().get_variable("password") == value
    assert _authentications(vault) == 2, "neither the cached value nor the cached token survived"
