"""PVWA exclusive and one-time-password accounts, tickets, check-in, and adding accounts, over real
HTTPS (docs/cyberark-apis.md §9). Each step is checked in the audit log too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from cyberark_ops.devserver import DevServer, SeedError
from tests.conftest import DevClient

PVWA = "/PasswordVault/API"
OPS = ("ops_user", "Ops-User-Pass1")
AIRFLOW = ("svc_airflow", "Airflow-Svc-Pass1")
ADMIN = ("vault_admin", "Vault-Admin-Pass1")

SEED: dict[str, Any] = {
    "vault": {
        "safes": ["Exclusive", "Open"],
        "accounts": [
            {
                "id": "x_1",
                "name": "db-exclusive",
                "safe": "Exclusive",
                "userName": "etl",
                "secret": "First-Pass-1",
                "exclusive": True,
            },
            {
                "id": "o_1",
                "name": "db-otp",
                "safe": "Exclusive",
                "userName": "otp",
                "secret": "Otp-Pass-0001",
                "one_time": True,
                "min_validity_period": 60,
            },
            {
                "id": "xo_1",
                "name": "db-exclusive-otp",
                "safe": "Exclusive",
                "userName": "xo",
                "secret": "Xo-Pass-0001",
                "exclusive": True,
                "one_time": True,
            },
            {
                "id": "t_1",
                "name": "db-ticket",
                "safe": "Open",
                "userName": "t",
                "secret": "Ticket-Pass-01",
                "ticket_required": True,
            },
            {"id": "p_1", "name": "db-plain", "safe": "Open", "userName": "p", "secret": "Plain-Pass-001"},
        ],
        "pvwa_users": [
            {
                "username": AIRFLOW[0],
                "password": AIRFLOW[1],
                "permissions": {"Exclusive": ["list", "retrieve", "initiate_cpm"], "Open": ["list", "retrieve"]},
            },
            {"username": OPS[0], "password": OPS[1], "permissions": {"Exclusive": ["list", "retrieve"]}},
            {"username": ADMIN[0], "password": ADMIN[1], "permissions": {"*": ["list", "retrieve", "add_accounts"]}},
        ],
    }
}


@pytest.fixture
def vault(make_server: Callable[..., DevServer]) -> Iterator[DevClient]:
    client = DevClient(make_server(SEED))
    yield client
    client.close()


def logon(client: DevClient, who: tuple[str, str]) -> str:
    response = client.post(f"{PVWA}/auth/CyberArk/Logon", json={"username": who[0], "password": who[1]})
    assert response.status_code == 200, response.text
    return str(response.json())


def retrieve(client: DevClient, token: str, account: str, **body: Any) -> requests.Response:
    return client.post(f"{PVWA}/Accounts/{account}/Password/Retrieve", json=body, headers={"Authorization": token})


def check_in(client: DevClient, token: str, account: str) -> requests.Response:
    return client.post(f"{PVWA}/Accounts/{account}/CheckIn/", headers={"Authorization": token})


def last(client: DevClient, action: str) -> dict[str, Any]:
    return client.server.app.audit.events(action=action)[-1]


def test_an_exclusive_account_is_checked_out_until_checked_in_and_then_changes(vault: DevClient) -> None:
    airflow, ops = logon(vault, AIRFLOW), logon(vault, OPS)
    first = retrieve(vault, airflow, "x_1", reason="dag=a task=b run=c")
    assert first.json() == "First-Pass-1"
    assert "checked out" in last(vault, "pvwa.retrieve_password")["detail"]
    assert retrieve(vault, airflow, "x_1").json() == "First-Pass-1"  # the holder may read it again
    refused = retrieve(vault, ops, "x_1")
    assert refused.status_code == 500
    assert refused.json()["ErrorCode"] == "ITATS127E"
    assert "checked out by another user" in last(vault, "pvwa.retrieve_password")["detail"]
    assert check_in(vault, ops, "x_1").status_code == 403  # no "Initiate CPM password management operations"
    released = check_in(vault, airflow, "x_1")
    assert released.status_code == 200
    assert released.content == b""
    assert "checked in;password changed to version 2" in last(vault, "pvwa.check_in")["detail"]
    fresh = retrieve(vault, ops, "x_1")
    assert fresh.status_code == 200
    assert fresh.json() not in ("", "First-Pass-1")
    assert check_in(vault, airflow, "x_1").status_code == 200
    again = check_in(vault, airflow, "x_1")
    assert again.status_code == 400
    assert again.json()["ErrorCode"] == "CAOPS400E"


def test_a_one_time_password_changes_after_its_validity_period(vault: DevClient) -> None:
    token = logon(vault, AIRFLOW)
    assert retrieve(vault, token, "o_1").json() == "Otp-Pass-0001"
    assert "one-time password: changes to version 2 after 60 s" in last(vault, "pvwa.retrieve_password")["detail"]
    assert retrieve(vault, logon(vault, OPS), "o_1").json() == "Otp-Pass-0001"  # not locked
    vault.server.app.clock.advance(61)
    changed = retrieve(vault, token, "o_1").json()
    assert changed != "Otp-Pass-0001"


def test_an_exclusive_one_time_account_changes_at_check_in(vault: DevClient) -> None:
    token = logon(vault, AIRFLOW)
    assert retrieve(vault, token, "xo_1").json() == "Xo-Pass-0001"
    assert retrieve(vault, logon(vault, OPS), "xo_1").status_code == 500
    assert check_in(vault, token, "xo_1").status_code == 200
    assert retrieve(vault, token, "xo_1").json() != "Xo-Pass-0001"


def test_tickets_are_required_where_configured_and_audited(vault: DevClient) -> None:
    token = logon(vault, AIRFLOW)
    missing = retrieve(vault, token, "t_1", reason="r")
    assert missing.status_code == 400
    assert missing.json()["ErrorCode"] == "CAOPS401E"
    half = retrieve(vault, token, "t_1", TicketingSystem="ServiceNow")
    assert half.status_code == 400
    ok = retrieve(vault, token, "t_1", Reason="nightly", TicketingSystem="ServiceNow", TicketId="CHG0012345")
    assert ok.json() == "Ticket-Pass-01"
    event = last(vault, "pvwa.retrieve_password")
    assert "TicketingSystem=ServiceNow;TicketId=CHG0012345" in event["detail"]
    assert event["reason"] == "nightly"
    assert retrieve(vault, token, "t_1", TicketId=7).status_code == 400


def test_two_users_racing_for_an_exclusive_account_get_one_winner(vault: DevClient) -> None:
    import threading

    tokens = [logon(vault, AIRFLOW), logon(vault, OPS)]
    results: list[int] = []

    def take(token: str) -> None:
        results.append(retrieve(vault, token, "x_1").status_code)

    threads = [threading.Thread(target=take, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 500]


# -- adding accounts ------------------------------------------------------------------------------


def add(client: DevClient, token: str, **body: Any) -> requests.Response:
    return client.post(f"{PVWA}/Accounts", json=body, headers={"Authorization": token})


def test_adding_an_account_then_reading_it_back(vault: DevClient) -> None:
    admin = logon(vault, ADMIN)
    created = add(
        vault,
        admin,
        name="warehouse",
        address="db.example.com",
        userName="loader",
        platformId="PostgreSQL",
        safeName="Open",
        secret="N3w p@ss:w/rd+é'\"",
        platformAccountProperties={"Port": "5432", "Database": "dw"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["safeName"] == "Open"
    assert body["platformAccountProperties"] == {"Port": "5432", "Database": "dw"}
    assert retrieve(vault, admin, body["id"]).json() == "N3w p@ss:w/rd+é'\""
    assert last(vault, "pvwa.add_account")["object"] == "Open/warehouse"
    duplicate = add(vault, admin, name="warehouse", platformId="PostgreSQL", safeName="Open", secret="x1234567")
    assert duplicate.status_code == 409
    assert duplicate.json()["ErrorCode"] == "CAOPS409E"


def test_an_account_added_without_a_secret_gets_one(vault: DevClient) -> None:
    admin = logon(vault, ADMIN)
    created = add(vault, admin, name="generated", platformId="UnixSSH", safeName="Open")
    assert created.status_code == 201
    assert len(retrieve(vault, admin, created.json()["id"]).json()) >= 12


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "a", "safeName": "Open"}, 400, "platformId"),
        ({"name": "a", "platformId": "UnixSSH"}, 400, "safeName"),
        ({"name": "a", "platformId": "UnixSSH", "safeName": "Nope"}, 400, "safeName"),
        ({"name": "a", "platformId": "UnixSSH", "safeName": "Open", "colour": "red"}, 400, "colour"),
        ({"name": "a", "platformId": "UnixSSH", "safeName": "Open", "secret": ""}, 400, "secret"),
        ({"name": "a", "platformId": "UnixSSH", "safeName": "Open", "secretType": "key"}, 400, "secretType"),
        ({"name": "a" * 200, "platformId": "UnixSSH", "safeName": "Open"}, 400, "name"),
        (
            {"name": "a", "platformId": "UnixSSH", "safeName": "Open", "platformAccountProperties": {"bad key": 1}},
            400,
            "platformAccountProperties.bad key",
        ),
    ],
)
def test_adding_refuses_what_it_cannot_hold(
    vault: DevClient, body: dict[str, Any], status: int, field: str | None
) -> None:
    response = add(vault, logon(vault, ADMIN), **body)
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["Details"][0]["ParameterName"] == field


def test_adding_needs_the_add_accounts_permission(vault: DevClient) -> None:
    response = add(vault, logon(vault, AIRFLOW), name="a", platformId="UnixSSH", safeName="Open", secret="abcdefgh")
    assert response.status_code == 403
    assert response.json()["ErrorCode"] == "PASWS041E"


def test_seed_refuses_an_unknown_permission_and_a_bad_validity() -> None:
    with pytest.raises(SeedError, match="list, retrieve, add_accounts, initiate_cpm"):
        DevServer(
            {
                "vault": {
                    "safes": ["S"],
                    "pvwa_users": [{"username": "u", "password": "p", "permissions": {"S": ["fly"]}}],
                }
            }
        )
    with pytest.raises(SeedError, match=r"vault\.accounts\[0\]\.min_validity_period"):
        DevServer(
            {
                "vault": {
                    "safes": ["S"],
                    "accounts": [{"name": "a", "safe": "S", "secret": "s", "min_validity_period": -1}],
                }
            }
        )
