"""A Vault seed with exclusive, one-time and ticket-requiring PVWA accounts, shared by the client,
glue and Airflow tests of check-in after use (docs/operators.md, "Exclusive accounts")."""

from __future__ import annotations

from typing import Any

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.vault.state import VaultModel
from tests.hooks.conftest import Connections

AIRFLOW_USER = "svc_exclusive"
AIRFLOW_PASSWORD = "Excl-Svc-Pass-01"
OTHER_USER = "ops_human"
OTHER_PASSWORD = "Ops-Human-Pass-01"
NO_CPM_USER = "svc_nocpm"
NO_CPM_PASSWORD = "No-Cpm-Pass-0001"

EXCLUSIVE_OTP = "xo_1"
"""Exclusive and one-time: a retrieve checks it out, the check-in changes its password."""
EXCLUSIVE = "x_1"
TICKETED = "t_1"
"""Exclusive, one-time, and every retrieve must carry TicketingSystem and TicketId."""
PLAIN = "p_1"

FIRST_PASSWORDS = {
    EXCLUSIVE_OTP: "Xo-Canary-Pass-0001",
    EXCLUSIVE: "X-Canary-Pass-00001",
    TICKETED: "T-Canary-Pass-00001",
    PLAIN: "P-Canary-Pass-00001",
}


def exclusive_seed() -> dict[str, Any]:
    accounts: list[dict[str, Any]] = [
        {
            "id": EXCLUSIVE_OTP,
            "name": "warehouse-exclusive",
            "safe": "Exclusive",
            "userName": "loader",
            "address": "db.example.com",
            "secret": FIRST_PASSWORDS[EXCLUSIVE_OTP],
            "exclusive": True,
            "one_time": True,
        },
        {
            "id": EXCLUSIVE,
            "name": "exclusive-only",
            "safe": "Exclusive",
            "userName": "etl",
            "secret": FIRST_PASSWORDS[EXCLUSIVE],
            "exclusive": True,
        },
        {
            "id": TICKETED,
            "name": "ticketed",
            "safe": "Exclusive",
            "userName": "tk",
            "secret": FIRST_PASSWORDS[TICKETED],
            "exclusive": True,
            "one_time": True,
            "ticket_required": True,
        },
        {"id": PLAIN, "name": "plain", "safe": "Open", "userName": "p", "secret": FIRST_PASSWORDS[PLAIN]},
    ]
    return {
        "vault": {
            "safes": ["Exclusive", "Open"],
            "accounts": accounts,
            "pvwa_users": [
                {
                    "username": AIRFLOW_USER,
                    "password": AIRFLOW_PASSWORD,
                    "permissions": {
                        "Exclusive": ["list", "retrieve", "initiate_cpm"],
                        "Open": ["list", "retrieve"],
                    },
                },
                {
                    "username": OTHER_USER,
                    "password": OTHER_PASSWORD,
                    "permissions": {"Exclusive": ["list", "retrieve", "initiate_cpm"]},
                },
                {
                    "username": NO_CPM_USER,
                    "password": NO_CPM_PASSWORD,
                    "permissions": {"Exclusive": ["list", "retrieve"]},
                },
            ],
        }
    }


def _account(server: DevServer, account_id: str) -> Any:
    account = server.app.model("vault", VaultModel).account(account_id, server.app.clock.now())
    assert account is not None, account_id
    return account


def current_password(server: DevServer, account_id: str) -> str:
    """The Vault's value now, read from the dev server's model (not through the API: no audit)."""
    return str(_account(server, account_id).secret)


def checked_out_by(server: DevServer, account_id: str) -> str | None:
    holder = _account(server, account_id).checked_out_by
    return None if holder is None else str(holder)


class Exclusive(Connections):
    """Hook connections to the exclusive-accounts dev server, and what the vault saw per account."""

    def pvwa_as(self, conn_id: str, user: str = AIRFLOW_USER, password: str = AIRFLOW_PASSWORD, **extra: Any) -> str:
        return self.add(conn_id, login=user, password=password, api="pvwa", **extra)

    def actions(self, account_id: str) -> list[str]:
        return [
            str(e["action"])
            for e in self.calls("pvwa")
            if e["object"] == account_id and e["action"] in ("pvwa.retrieve_password", "pvwa.check_in")
        ]
