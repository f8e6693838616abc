"""``PVWAClient.add_account`` against the dev server over HTTPS: the write a migration into PVWA /
Privilege Cloud makes, read back through the same client's retrieval (docs/cyberark-apis.md §9.5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cyberark_ops.client import ConfigurationError, Forbidden, PVWALogonAuth
from cyberark_ops.client.config import PVWAConfig
from cyberark_ops.client.errors import CyberArkError
from cyberark_ops.client.pvwa import PVWAClient
from cyberark_ops.devserver import DevServer
from tests.migrate.conftest import FAST

SECRET = "CANARY-pvwa-N3w p@ss:w/rd+é'\""
SEED: dict[str, Any] = {
    "vault": {
        "safes": ["Airflow-Prod"],
        "accounts": [],
        "pvwa_users": [
            {
                "username": "migrator",
                "password": "Migrator-Pass-1",
                "permissions": {"Airflow-Prod": ["list", "retrieve", "add_accounts"]},
            },
            {"username": "reader", "password": "Reader-Pass-1", "permissions": {"Airflow-Prod": ["list", "retrieve"]}},
        ],
    }
}


def client(server: DevServer, user: str, password: str) -> PVWAClient:
    info = server.info()
    return PVWAClient(
        PVWAConfig(base_url=info["url"], ca_bundle=info["ca_cert"], auth=PVWALogonAuth(user, password), **FAST)
    )


def test_an_added_account_reads_back_equal_and_its_answer_holds_no_secret(
    make_server: Callable[..., DevServer],
) -> None:
    server = make_server(SEED)
    with client(server, "migrator", "Migrator-Pass-1") as migrator:
        account = migrator.add_account(
            safe="Airflow-Prod",
            platform_id="PostgreSQL",
            secret=SECRET,
            name="warehouse",
            address="pg.internal",
            user_name="etl",
            properties={"Port": "5432", "Database": "dw"},
        )
        assert SECRET not in repr(account)
        assert (account["safeName"], account["name"], account["userName"]) == ("Airflow-Prod", "warehouse", "etl")
        with pytest.raises(CyberArkError) as duplicate:
            migrator.add_account(safe="Airflow-Prod", platform_id="PostgreSQL", secret=SECRET, name="warehouse")
        assert "409" in str(duplicate.value) and SECRET not in str(duplicate.value)
    with client(server, "reader", "Reader-Pass-1") as reader:
        credential = reader.get_credential("Airflow-Prod", "warehouse")
        assert credential.secret == SECRET and credential.port == 5432
        with pytest.raises(Forbidden) as denied:
            reader.add_account(safe="Airflow-Prod", platform_id="PostgreSQL", secret=SECRET, name="other")
        assert "'Add accounts' on safe 'Airflow-Prod'" in str(denied.value) and SECRET not in str(denied.value)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"safe": "", "platform_id": "P", "secret": "x"}, "safe: required"),
        ({"safe": "S", "platform_id": " ", "secret": "x"}, "platform_id: required"),
        ({"safe": "S", "platform_id": "P", "secret": ""}, "secret: must be a non-empty string"),
    ],
)
def test_missing_fields_are_named_before_any_request(
    make_server: Callable[..., DevServer], fields: dict[str, str], problem: str
) -> None:
    server = make_server(SEED)
    with client(server, "migrator", "Migrator-Pass-1") as migrator, pytest.raises(ConfigurationError, match=problem):
        migrator.add_account(**fields)
    assert not server.app.audit.events(action="pvwa.add_account")
