"""The generic wrapper on common-sql and BashOperator, and the guards on the Airflow internals."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.sqlite.hooks.sqlite import SqliteHook
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import BaseHook, Connection

from cyberark_ops import VaultedMixin, scrub, vaulted
from cyberark_ops.operators.vaulted import bind_connection, is_auth_error, serve_connection
from cyberark_ops.redaction.registry import Registry
from tests.hooks.conftest import Connections
from tests.operators.conftest import CANARY, PG_REF, PG_USER, set_pg_password

# Sets the passwords of the shared test database roles: run apart from other processes (.ci/pytest-split).
pytestmark = pytest.mark.database_roles

BASH_CHECK = (
    '[ "$(printf %s "$VOP_SECRET" | sha256sum | cut -d" " -f1)" = "{sha}" ] && echo "match {{{{ params.x }}}}" '
    "|| echo differ"
)


def test_vaulted_common_sql_operator_gets_the_in_memory_connection(vault: Connections) -> None:
    set_pg_password(CANARY)
    op = vaulted(SQLExecuteQueryOperator)(
        task_id="g",
        vault_conn_id="cyberark_ccp",
        credential_ref=PG_REF,
        target_conn_id="vop_pg_nowhere",
        conn_type="postgres",
        conn_id="vop_pg_nowhere",
        sql="select current_user, %(pw)s",
        parameters={"pw": CANARY},
    )
    assert isinstance(op, VaultedMixin) and isinstance(op, SQLExecuteQueryOperator)
    assert op.execute({}) == [(PG_USER, "***")]
    assert "AIRFLOW_CONN_VOP_PG_NOWHERE" not in os.environ
    with pytest.raises(Exception, match="vop_pg_nowhere"):
        BaseHook.get_connection("vop_pg_nowhere")  # served only while the task body ran


def test_vaulted_bash_operator_child_alone_sees_the_secret(vault: Connections) -> None:
    sha = hashlib.sha256(CANARY.encode()).hexdigest()
    op = vaulted(BashOperator)(
        task_id="b",
        vault_conn_id="cyberark_ccp",
        credential_ref=PG_REF,
        secret_env="VOP_SECRET",
        bash_command=BASH_CHECK.format(sha=sha),
        env={"PATH": os.environ["PATH"]},
        params={"x": "ok"},
    )
    op.render_template_fields({"params": {"x": "ok"}})
    assert op.execute({}) == "match ok"
    assert "VOP_SECRET" not in os.environ
    assert op.env == {"PATH": os.environ["PATH"]}, "the rendered env template field stays secret-free"
    assert len(scrub.registry()) == 0


def test_bash_return_value_is_scrubbed(vault: Connections) -> None:
    op = vaulted(BashOperator)(
        task_id="b2",
        vault_conn_id="cyberark_ccp",
        credential_ref=PG_REF,
        secret_env="VOP_SECRET",
        bash_command='printf "%s\\n" "$VOP_SECRET"',
    )
    assert op.execute({}) == "***"


def test_the_operator_registers_the_fetched_value_once(vault: Connections, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetch registers the value (with its username); the operator does not register it again."""
    registered: list[tuple[str, str | None]] = []
    register = Registry.register

    def counting(self: Registry, value: str, **kwargs: Any) -> None:
        if self is scrub.registry():
            registered.append((value, kwargs.get("username")))
        register(self, value, **kwargs)

    monkeypatch.setattr(Registry, "register", counting)
    op = vaulted(BashOperator)(
        task_id="once",
        vault_conn_id="cyberark_ccp",
        credential_ref=PG_REF,
        secret_env="VOP_SECRET",
        bash_command='printf "%s\\n" "$VOP_SECRET"',
    )
    assert op.execute({}) == "***"
    assert [username for value, username in registered if value == CANARY] == [PG_USER]


def test_vaulted_rejects_non_operators() -> None:
    with pytest.raises(TypeError):
        vaulted(int)  # type: ignore[type-var]


def test_is_auth_error_per_driver() -> None:
    class OperationalError(Exception):
        pass

    class MySQLError(Exception):
        errno = 1045

    class PgError(Exception):
        pgcode = "28P01"

    assert is_auth_error(OperationalError('FATAL:  password authentication failed for user "x"'))
    assert is_auth_error(MySQLError())
    assert is_auth_error(Exception(1045, "Access denied"))
    assert is_auth_error(PgError())
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = PgError()
    assert is_auth_error(wrapped)
    assert not is_auth_error(OperationalError("no such table: t"))


# -- guards: these fail loudly when an Airflow or provider release changes what they rely on -----------


def test_internals_bind_connection_reaches_sqlite_and_postgres_hooks(tmp_path: Path) -> None:
    """``bind_connection`` relies on hooks calling ``self.get_connection`` and on ``DbApiHook._connection``."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    assert isinstance(DbApiHook.__dict__.get("connection"), property), "DbApiHook.connection is no longer a property"
    conn = Connection(conn_id="nowhere_sqlite", conn_type="sqlite", host=str(tmp_path / "g.db"))
    hook = bind_connection(SqliteHook(sqlite_conn_id="nowhere_sqlite"), conn)
    assert hook.get_records("select 1") == [(1,)], "SqliteHook no longer looks up through get_connection"
    assert hook.connection is conn
    pconn = Connection(conn_id="nowhere_pg", conn_type="postgres", host="h.invalid", login="u", password=CANARY)
    phook = bind_connection(PostgresHook(postgres_conn_id="nowhere_pg"), pconn)
    assert phook.connection is pconn
    assert phook.get_connection("nowhere_pg") is pconn
    other = SqliteHook(sqlite_conn_id="nowhere_sqlite")
    with pytest.raises(Exception, match="nowhere_sqlite"):
        other.get_connection("nowhere_sqlite")  # the override is per instance


def test_internals_serve_connection_reaches_hooks_and_common_sql(tmp_path: Path) -> None:
    """``serve_connection`` relies on ``BaseHook.get_connection`` being the classmethod everything calls."""
    assert isinstance(BaseHook.__dict__.get("get_connection"), classmethod)
    conn = Connection(conn_id="served_sqlite", conn_type="sqlite", host=str(tmp_path / "s.db"))
    with serve_connection(conn):
        assert SqliteHook(sqlite_conn_id="served_sqlite").get_records("select 2") == [(2,)]
        hook = SQLExecuteQueryOperator.get_hook("served_sqlite")
        assert isinstance(hook, SqliteHook)
    assert isinstance(BaseHook.__dict__.get("get_connection"), classmethod)
    with pytest.raises(Exception, match="served_sqlite"):
        BaseHook.get_connection("served_sqlite")


def test_bash_operator_builds_the_child_env_in_get_env() -> None:
    """The wrapper adds the secret in ``get_env``; BashOperator must still call it from ``execute``."""
    import inspect

    assert "self.get_env(context)" in inspect.getsource(BashOperator.execute)
    assert json.dumps(BashOperator.template_fields)  # env stays a (rendered) template field: not used
