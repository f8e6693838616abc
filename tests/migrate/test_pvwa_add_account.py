"""``PVWAClient.add_account`` and ``update_password`` against the dev server over HTTPS: the writes a
migration into PVWA / Privilege Cloud makes, read back through the same client's retrieval
(docs/cyberark-apis.md §9.5; Password/Update in docs/migrating.md, "PVWA: --overwrite")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyberark_ops.client import CheckedOutByAnotherUser, ConfigurationError, Forbidden, NotFound, PVWALogonAuth
from cyberark_ops.client.config import PVWAConfig
from cyberark_ops.client.errors import CyberArkError
from cyberark_ops.client.pvwa import PVWAClient
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.knobs import Fault
from tests.migrate.conftest import FAST

SECRET = "CANARY-pvwa-N3w p@ss:w/rd+é'\""
SEED: dict[str, Any] = {
    "vault": {
        "safes": ["Airflow-Prod"],
        "accounts": [{"id": "9_1", "name": "locked", "safe": "Airflow-Prod", "secret": "x", "exclusive": True}],
        "pvwa_users": [
            {
                "username": "migrator",
                "password": "Migrator-Pass-1",
                "permissions": {"Airflow-Prod": ["list", "retrieve", "add_accounts", "update_password"]},
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


def no_secret_in(error: BaseException, secret: str = SECRET) -> None:
    assert secret not in str(error) and secret not in repr(error) and secret not in repr(vars(error))


def test_update_password_changes_the_value_in_the_vault_only_as_a_new_version(
    make_server: Callable[..., DevServer],
) -> None:
    server = make_server(SEED)
    with client(server, "migrator", "Migrator-Pass-1") as migrator:
        account_id = migrator.add_account(safe="Airflow-Prod", platform_id="P", secret="old value", name="w")["id"]
        assert migrator.update_password(account_id, SECRET) is None
        assert migrator.retrieve_password(account_id) == SECRET
        migrator.update_password(account_id, f"  {SECRET}\t\n")
        assert migrator.retrieve_password(account_id) == SECRET  # the Vault trims, as CyberArk documents
        assert SECRET not in repr(migrator)
    (first, _) = server.app.audit.events(action="pvwa.update_password")
    assert (first["status"], first["identity"], first["object"]) == (200, "migrator", account_id)
    assert first["detail"].endswith(";password updated in the Vault to version 2")
    assert SECRET not in json.dumps(server.app.audit.events())
    with client(server, "reader", "Reader-Pass-1") as reader:
        assert reader.retrieve_password(account_id) == SECRET


def test_update_password_accepts_a_204(make_server: Callable[..., DevServer]) -> None:
    server = make_server(SEED)
    server.app.knobs.add_fault(Fault(endpoint="pvwa.update_password", status=204, count=1))
    with client(server, "migrator", "Migrator-Pass-1") as migrator:
        assert migrator.update_password("9_1", SECRET) is None


def test_update_password_refusals_raise_typed_errors_that_hold_no_value(make_server: Callable[..., DevServer]) -> None:
    server = make_server(SEED)
    with client(server, "reader", "Reader-Pass-1") as reader, pytest.raises(Forbidden) as denied:
        reader.update_password("9_1", SECRET)
    assert denied.value.status == 403 and denied.value.code == "PASWS041E"
    assert "'Update password value' on the account's safe" in str(denied.value)
    no_secret_in(denied.value)
    with client(server, "migrator", "Migrator-Pass-1") as migrator:
        with pytest.raises(NotFound) as unknown:
            migrator.update_password("77_7", SECRET)
        assert unknown.value.status == 404
        no_secret_in(unknown.value)
        with pytest.raises(ConfigurationError, match="new_value: must be a non-empty string") as empty:
            migrator.update_password("9_1", "")
        no_secret_in(empty.value)
    with client(server, "reader", "Reader-Pass-1") as reader:
        reader.retrieve_password("9_1")  # an exclusive account: the reader checks it out
    with client(server, "migrator", "Migrator-Pass-1") as migrator, pytest.raises(CheckedOutByAnotherUser) as locked:
        migrator.update_password("9_1", SECRET)
    assert locked.value.code == "ITATS127E" and "update_password" in str(locked.value)
    no_secret_in(locked.value)
    assert [e["status"] for e in server.app.audit.events(action="pvwa.update_password")] == [403, 404, 500]
    assert SECRET not in json.dumps(server.app.audit.events())


def test_any_value_without_surrounding_white_space_round_trips_byte_for_byte(
    make_server: Callable[..., DevServer],
) -> None:
    server = make_server(SEED)
    with client(server, "migrator", "Migrator-Pass-1") as migrator:
        account_id = migrator.add_account(safe="Airflow-Prod", platform_id="P", secret="old value", name="w")["id"]

        @settings(max_examples=25, deadline=None)
        @given(st.text(min_size=1, max_size=64).filter(lambda v: v == v.strip() and v != ""))
        def round_trip(value: str) -> None:
            migrator.update_password(account_id, value)
            assert migrator.retrieve_password(account_id).encode("utf-8") == value.encode("utf-8")

        round_trip()
