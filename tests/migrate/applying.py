"""What the apply tests of both vaults (Conjur, PVWA) build the same way: Airflow's side as ``Held``
values, and ``apply_plan`` run with the migration identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from cyberark_ops.client.conjur import ConjurClient
from cyberark_ops.client.pvwa import PVWAClient
from cyberark_ops.migrate import Held, Plan, Report, apply_plan
from cyberark_ops.migrate.sources import connection_value


class Conn:
    """An Airflow-connection-shaped object for ``connection_value`` (what sources.py reads)."""

    def __init__(self, **fields: Any) -> None:
        self.conn_type = fields.pop("conn_type", "postgres")
        self.extra = fields.pop("extra", None)
        for name in ("description", "host", "login", "password", "schema", "port"):
            setattr(self, name, fields.pop(name, None))


def held_secrets(
    canary: str, *, connections: int, variables: int, password_tail: str, token_tail: str = ""
) -> list[Held]:
    """``connections`` Postgres connections with a password and ``variables`` token variables, each
    value starting with ``canary`` (then ``password_tail`` / ``token_tail``: the characters to try)."""
    conns = [
        Held(
            "connection",
            f"db_{i}",
            "db",
            connection_value(
                Conn(host=f"db{i}.internal", login="etl", password=f"{canary}pw{i}{password_tail}", port=5432)
            ),
            ("password",),
            "postgres",
        )
        for i in range(connections)
    ]
    tokens = [
        Held("variable", f"api_token_{i}", "db", f"{canary}token{i}{token_tail}", ("value",)) for i in range(variables)
    ]
    return conns + tokens


class _Target(Protocol):
    def migrator(self) -> ConjurClient | PVWAClient: ...


def run(target: _Target, plan: Plan, path: Path, held: list[Held], client: Any = None, **kw: Any) -> Report:
    """``apply_plan`` with ``--execute`` unless ``kw`` says otherwise, as the migration identity
    (or ``client``)."""
    with client or target.migrator() as migrator:
        return apply_plan(plan, path, migrator, held=held, **{"execute": True, **kw})
