"""A dev server whose CCP accounts point at the local PostgreSQL and MariaDB, and DB users to match.

PostgreSQL (127.0.0.1:5432, trust auth for ``postgres``) and MariaDB (127.0.0.1:3306, ``root``
without a password) are real servers; tests needing one skip only when it is absent and ``CI`` is
unset (on CI a missing server is a failure).
"""

from __future__ import annotations

import copy
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.seed import demo_seed
from tests.hooks.conftest import Connections

#: Every character class the issue names: @ : / % + " ' \ & space, and unicode.
CANARY = "c@n:ry/pw%2B+\"q'\\&sp ace-é✓-Zk9"
PG_USER = "vop_pg"
MY_USER = "vop_my"
SAFE = "VaultedOps"
PG_REF = f"ccp:Safe={SAFE};Object=vop-pg"
MY_REF = f"ccp:Safe={SAFE};Object=vop-maria"
PG_TARGET = "vault:9_1"
MY_TARGET = "vault:9_2"
# A MariaDB account of its own for the real-path rotation test, so no other task races with it.
ROT_USER = "vop_rot"
ROT_REF = f"ccp:Safe={SAFE};Object=vop-rot"
ROT_TARGET = "vault:9_3"


def vaulted_seed(password: str = CANARY) -> dict[str, Any]:
    """The demo seed plus a safe with one PostgreSQL and one MariaDB account on 127.0.0.1."""
    seed = copy.deepcopy(demo_seed())
    vault = seed["vault"]
    vault["safes"].append({"name": SAFE, "id": 9})
    vault["accounts"] += [
        {
            "name": "vop-pg",
            "safe": SAFE,
            "userName": PG_USER,
            "address": "127.0.0.1",
            "platformId": "PostgreSQL",
            "secret": password,
            "properties": {"Port": 5432, "Database": "test"},
        },
        {
            "name": "vop-maria",
            "safe": SAFE,
            "userName": MY_USER,
            "address": "127.0.0.1",
            "platformId": "MySQL",
            "secret": password,
            "properties": {"Port": 3306, "Database": "test"},
        },
        {
            "name": "vop-rot",
            "safe": SAFE,
            "userName": ROT_USER,
            "address": "127.0.0.1",
            "platformId": "MySQL",
            "secret": password,
            "properties": {"Port": 3306, "Database": "test"},
        },
    ]
    for app in vault["ccp_applications"]:
        if app["app_id"] == "AirflowProd":
            app["allowed_safes"].append(SAFE)
    return seed


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def need_server(port: int, name: str) -> None:
    if not _listening(port) and not os.environ.get("CI"):
        pytest.skip(f"{name} is not listening on 127.0.0.1:{port} (and CI is unset)")


def set_pg_password(password: str, user: str = PG_USER) -> None:
    """Create or alter the PostgreSQL role (client-side quoting: utility statements take no binds)."""
    import psycopg2

    need_server(5432, "PostgreSQL")
    with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test") as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_roles where rolname = %s", (user,))
            verb = "alter" if cur.fetchone() else "create"
            cur.execute(f"{verb} role {user} login password %s", (password,))
    conn.close()


def need_pg_password_auth() -> None:
    """Rotation needs PostgreSQL to check the role's password; a trust rule accepts any.

    Set up on this machine with ``host all vop_pg 127.0.0.1/32 scram-sha-256`` above the trust
    line of ``pg_hba.conf`` (then ``select pg_reload_conf()``); it concerns this role only.
    """
    import psycopg2

    need_server(5432, "PostgreSQL")
    try:
        psycopg2.connect(host="127.0.0.1", port=5432, user=PG_USER, password="not-the-password", dbname="test").close()
    except psycopg2.OperationalError:
        return
    if not os.environ.get("CI"):
        pytest.skip(f"pg_hba.conf trusts {PG_USER} on 127.0.0.1: a rotated password cannot be rejected")
    pytest.fail(f"pg_hba.conf trusts {PG_USER} on 127.0.0.1; see need_pg_password_auth")


def set_my_password(password: str, user: str = MY_USER) -> None:
    import mysql.connector

    need_server(3306, "MariaDB")
    conn = mysql.connector.connect(host="127.0.0.1", port=3306, user="root", database="test")
    try:
        cur = conn.cursor()
        for host in ("%", "localhost", "127.0.0.1"):
            cur.execute(f"create user if not exists '{user}'@'{host}' identified by %s", (password,))
            cur.execute(f"alter user '{user}'@'{host}' identified by %s", (password,))
            cur.execute(f"grant all on test.* to '{user}'@'{host}'")
        cur.execute("flush privileges")
    finally:
        conn.close()


@pytest.fixture
def vault(make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    """The dev server (CCP over mutual TLS) and a ``cyberark_ccp`` connection in the environment."""
    conns = Connections(make_server(vaulted_seed()), monkeypatch)
    conns.ccp()
    yield conns


@pytest.fixture
def sqlite_conn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow connection with only the non-secret parts of a SQLite database (its path)."""
    path = tmp_path / "vaulted.db"
    monkeypatch.setenv("AIRFLOW_CONN_LOCAL_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return "local_sqlite"
