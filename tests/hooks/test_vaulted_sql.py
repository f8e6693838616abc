"""``VaultedSqlOperator`` against the dev server and real databases (SQLite, PostgreSQL at 127.0.0.1).

Behaviour only: these run ``execute`` in-process, where Airflow masks nothing, so they prove what
the operator returns, fetches and builds; leaks through Airflow's own processes are checked on
the real supervisor path.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.providers.sqlite.hooks.sqlite import SqliteHook
from airflow.sdk import Connection

from cyberark_ops import VaultedSqlOperator, scrub
from cyberark_ops.client import ConfigurationError
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.seed import demo_seed
from cyberark_ops.operators.sql import ShortSecretRefused, attach_connection
from tests.hooks.conftest import Connections

PASSWORD = "Demo-PG-Passw0rd!"


@pytest.fixture
def sales_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite file whose connection (non-secret parts only) is an ``AIRFLOW_CONN_*`` variable."""
    path = tmp_path / "sales.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("create table notes (region text, note text)")
        db.executemany("insert into notes values (?, ?)", [("emea", f"pw is {PASSWORD}"), ("amer", "nothing here")])
        db.commit()
    monkeypatch.setenv("AIRFLOW_CONN_SALES_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


needs_postgres = pytest.mark.skipif(
    not _postgres_up() and not os.environ.get("CI"), reason="PostgreSQL is not running on 127.0.0.1:5432"
)


def test_it_is_a_common_sql_operator_importable_from_the_package() -> None:
    assert issubclass(VaultedSqlOperator, SQLExecuteQueryOperator)
    assert "credential" in VaultedSqlOperator.template_fields


def test_sqlite_query_runs_and_the_result_is_scrubbed(conns: Connections, sales_db: Path) -> None:
    op = VaultedSqlOperator(
        task_id="notes",
        vault_conn_id=conns.conjur(),
        credential="prod/db/password",
        conn_id="sales_sqlite",
        sql="select region, note from notes order by region",
    )
    rows = op.execute({})
    assert [tuple(row) for row in rows] == [("amer", "nothing here"), ("emea", "pw is ***")]
    assert [e["action"] for e in conns.calls("conjur")].count("conjur.retrieve") == 1
    assert len(scrub.registry()) == 0, "the task scope dropped the credential"
    assert op._vaulted_hook is None
    for field in op.template_fields:
        assert PASSWORD not in repr(getattr(op, field, None))


def test_the_hook_is_built_once_and_holds_an_in_memory_connection(conns: Connections, sales_db: Path) -> None:
    op = VaultedSqlOperator(
        task_id="hook",
        vault_conn_id=conns.conjur(),
        credential="prod/db/password",
        conn_id="sales_sqlite",
        sql="select 1",
    )
    hook = op.get_db_hook()
    assert op.get_db_hook() is hook  # OpenLineage asks again: no second fetch
    assert isinstance(hook, SqliteHook)
    assert hook.get_connection("sales_sqlite").password is None  # SQLite has no login: kept out of its URI
    assert [e["action"] for e in conns.calls("conjur")].count("conjur.retrieve") == 1
    assert not any(key.startswith("AIRFLOW_CONN_CYBERARK_VAULTED") for key in os.environ)


@needs_postgres
def test_without_conn_id_the_account_gives_host_port_database_and_login(
    make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = demo_seed()
    account = next(a for a in seed["vault"]["accounts"] if a["name"] == "pg-prod")
    account.update(userName="postgres", address="127.0.0.1")
    account["properties"].update(Port=5432, Database="test")
    conns = Connections(make_server(seed), monkeypatch)
    op = VaultedSqlOperator(
        task_id="pg",
        vault_conn_id=conns.ccp(),
        credential="Safe=DB-Prod;Object=pg-prod",
        conn_type="postgres",
        sql="select current_user, current_database(), inet_server_port()",
    )
    rows = op.execute({})
    assert [tuple(row) for row in rows] == [("postgres", "test", 5432)]
    assert conns.calls("ccp")[0]["object"] is not None


def test_a_value_airflow_cannot_mask_is_refused_unless_allowed(conns: Connections, sales_db: Path) -> None:
    conns.server.app.rotate("conjur:prod/rotating/password", value="abc")
    kwargs: dict[str, Any] = {
        "vault_conn_id": conns.conjur(),
        "credential": "prod/rotating/password",
        "conn_id": "sales_sqlite",
        "sql": "select count(*) from notes",
    }
    with pytest.raises(ShortSecretRefused, match="has 3 characters; Airflow masks only values of at least 5") as raised:
        VaultedSqlOperator(task_id="short", **kwargs).execute({})
    assert "abc" not in str(raised.value).replace("characters", "")
    rows = VaultedSqlOperator(task_id="short_ok", allow_short_secret=True, **kwargs).execute({})
    assert [tuple(row) for row in rows] == [(2,)]


def test_neither_conn_id_nor_conn_type_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"give conn_id .* or conn_type"):
        VaultedSqlOperator(task_id="nothing", credential="prod/db/password", sql="select 1")


def test_each_vault_call_names_dag_task_and_run(conns: Connections, sales_db: Path) -> None:
    from airflow.sdk.execution_time.context import set_current_context

    op = VaultedSqlOperator(
        task_id="count_notes",
        vault_conn_id=conns.conjur(),
        credential="prod/db/password",
        conn_id="sales_sqlite",
        sql="select count(*) from notes",
    )
    ti = SimpleNamespace(dag_id="vaulted_sql_reason", task_id="count_notes", run_id="manual__2026-01-01")
    with set_current_context({"ti": ti}):  # type: ignore[arg-type]  # what the task runner sets
        op.execute({})
    reasons = [e["reason"] for e in conns.calls("conjur") if e["action"] == "conjur.retrieve"]
    assert reasons == ["airflow-dag-vaulted-sql-reason-task-count-notes-run-manual-2026-01-01"]


def test_attach_connection_still_steers_every_hook_kind(tmp_path: Path) -> None:
    """Fails loudly when a common-sql or provider release stops honouring the override."""
    db = tmp_path / "guard.sqlite"
    sqlite_conn = Connection(conn_id="not_defined_anywhere", conn_type="sqlite", host=str(db))
    sqlite_hook = SqliteHook(sqlite_conn_id="not_defined_anywhere")
    attach_connection(sqlite_hook, sqlite_conn)
    assert sqlite_hook.get_records("select 41 + 1") == [(42,)]
    pg_conn = Connection(conn_id="pg_not_defined", conn_type="postgres", host="db.invalid", login="u", password="p" * 8)
    pg_hook = PostgresHook(postgres_conn_id="pg_not_defined")
    attach_connection(pg_hook, pg_conn)
    assert pg_hook.connection is pg_conn
    assert pg_hook.get_connection("pg_not_defined") is pg_conn
