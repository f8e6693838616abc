"""``VaultedSqlOperator`` in process against real SQLite, PostgreSQL and MariaDB.

Behaviour only (``execute`` with a minimal context); leak claims need the supervisor path and live
in ``tests/airflow/test_vaulted_operators.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops import VaultedSqlOperator, scrub
from cyberark_ops.operators.vaulted import VaultedAuthError
from tests.hooks.conftest import Connections
from tests.operators.conftest import (
    CANARY,
    MY_REF,
    MY_TARGET,
    MY_USER,
    PG_REF,
    PG_TARGET,
    PG_USER,
    need_pg_password_auth,
    set_my_password,
    set_pg_password,
    vaulted_seed,
)

# Sets the passwords of the shared test database roles: run apart from other processes (.ci/pytest-split).
pytestmark = pytest.mark.database_roles

MYSQL_EXTRA = {"client": "mysql-connector-python"}


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def pg_operator(sql: str, cls: type[VaultedSqlOperator] = VaultedSqlOperator, **kwargs: Any) -> VaultedSqlOperator:
    return cls(
        task_id="pg", vault_conn_id="cyberark_ccp", credential_ref=PG_REF, conn_type="postgres", sql=sql, **kwargs
    )


def my_operator(sql: str, cls: type[VaultedSqlOperator] = VaultedSqlOperator, **kwargs: Any) -> VaultedSqlOperator:
    return cls(
        task_id="my",
        vault_conn_id="cyberark_ccp",
        credential_ref=MY_REF,
        conn_type="mysql",
        conn_extra=MYSQL_EXTRA,
        sql=sql,
        **kwargs,
    )


def test_sqlite_with_conn_id_runs_and_scrubs(vault: Connections, sqlite_conn: str) -> None:
    op = VaultedSqlOperator(
        task_id="lite",
        vault_conn_id="cyberark_ccp",
        credential_ref=PG_REF,
        conn_id=sqlite_conn,
        sql=f"select 'row', {literal(CANARY).replace(chr(92) * 2, chr(92))}",
    )
    result = op.execute({})
    assert result == [("row", "***")]
    assert len(scrub.registry()) == 0, "the credential must be dropped when the task ends"
    assert len(vault.calls("ccp")) == 1, "one vault call per attempt (the hook is cached)"


def test_postgres_without_conn_id(vault: Connections) -> None:
    set_pg_password(CANARY)
    op = pg_operator(f"select current_user, {literal(CANARY).replace(chr(92) * 2, chr(92))}")
    assert op.execute({}) == [(PG_USER, "***")]


def test_mariadb_without_conn_id(vault: Connections) -> None:
    set_my_password(CANARY)
    op = my_operator(f"select current_user(), {literal(CANARY).replace(chr(39) * 2, chr(92) + chr(39))}")
    rows = op.execute({})
    assert rows[0][0].startswith(f"{MY_USER}@")
    assert rows[0][1] == "***"


def _rotating_operator(vault: Connections, db: str, sql: str, times: int = 1) -> tuple[VaultedSqlOperator, list[str]]:
    """An operator whose first ``times`` fetches are each followed by a rotation of the account
    (dev server) and of the DB user (to the same new value), before the login uses the value."""
    if db == "postgres":
        target, set_password, build = PG_TARGET, set_pg_password, pg_operator
        set_pg_password(CANARY)
        need_pg_password_auth()
    else:
        target, set_password, build = MY_TARGET, set_my_password, my_operator
        set_my_password(CANARY)
    fetched: list[str] = []

    class RotatedAfterFetch(VaultedSqlOperator):
        def fetch_credential(self) -> Any:
            cred = super().fetch_credential()
            fetched.append(cred.secret)
            if len(fetched) <= times:
                new = f"{CANARY}-rotated-{len(fetched)}"
                vault.server.app.rotate(target, value=new)
                set_password(new)
            return cred

    return build(sql, RotatedAfterFetch), fetched


@pytest.mark.parametrize("db", ["postgres", "mariadb"])
def test_rotation_between_fetch_and_use_succeeds_on_retry(vault: Connections, db: str) -> None:
    op, fetched = _rotating_operator(vault, db, "select 42")
    assert op.execute({}) == [(42,)]
    assert fetched == [CANARY, f"{CANARY}-rotated-1"], "one fetch again, one retry"


@pytest.mark.parametrize("db", ["postgres", "mariadb"])
def test_second_auth_failure_is_clear_and_names_no_value(vault: Connections, db: str) -> None:
    op, fetched = _rotating_operator(vault, db, "select 1", times=2)
    with pytest.raises(VaultedAuthError, match="rejected the login") as info:
        op.execute({})
    assert len(fetched) == 2
    text = "".join(str(a) for a in info.value.args) + repr(info.value)
    for secret in fetched:
        for form in scrub.leak_forms(secret).values():
            assert form not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_short_secret_is_refused_unless_allowed(vault: Connections, sqlite_conn: str) -> None:
    vault.server.app.rotate(PG_TARGET, value="abc")
    op = VaultedSqlOperator(
        task_id="short", vault_conn_id="cyberark_ccp", credential_ref=PG_REF, conn_id=sqlite_conn, sql="select 1"
    )
    with pytest.raises(scrub.SecretTooShort, match="min_length_masked_secret") as info:
        op.execute({})
    assert "abc" not in str(info.value)
    op_ok = VaultedSqlOperator(
        task_id="short_ok",
        vault_conn_id="cyberark_ccp",
        credential_ref=PG_REF,
        conn_id=sqlite_conn,
        sql="select 'abc'",
        allow_short_secret=True,
    )
    # Issue 24: a value that short is never searched for (it occurs in ordinary data): the result
    # comes back as the database returned it.
    assert op_ok.execute({}) == [("abc",)]


def test_template_fields_hold_no_secret(vault: Connections, sqlite_conn: str) -> None:
    op = VaultedSqlOperator(
        task_id="tpl",
        vault_conn_id="cyberark_ccp",
        credential_ref="{{ params.ref }}",
        conn_id=sqlite_conn,
        sql="select 1",
        hook_params={"log_sql": False},
        params={"ref": PG_REF},
    )
    op.render_template_fields({"params": {"ref": PG_REF}})
    assert op.credential_ref == PG_REF
    op.execute({})
    rendered = repr({field: getattr(op, field) for field in op.template_fields})
    assert not re.search("|".join(re.escape(f) for f in scrub.leak_forms(CANARY).values()), rendered)
    assert op.hook_params == {"log_sql": False}, "hook_params must stay as written (no extras merged)"
    assert "_vaulted" not in repr(vars(op)) or op._vaulted is None


def test_needs_conn_id_or_conn_type() -> None:
    from cyberark_ops.client import ConfigurationError

    with pytest.raises(ConfigurationError, match="conn_id or conn_type"):
        VaultedSqlOperator(task_id="x", credential_ref="a", sql="select 1")


def test_sqlite_without_conn_id_opens_the_accounts_file(
    make_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The account's address is the file; its Database property ("main") must not become part of the path."""
    seed = vaulted_seed()
    account = next(a for a in seed["vault"]["accounts"] if a["name"] == "sqlite-dev")
    account["address"] = str(tmp_path / "from-the-account.sqlite")
    assert account["properties"]["Database"] == "main"
    Connections(make_server(seed), monkeypatch).ccp()
    op = VaultedSqlOperator(
        task_id="lite",
        vault_conn_id="cyberark_ccp",
        credential_ref="ccp:Safe=App-Dev;Object=sqlite-dev",
        conn_type="sqlite",
        sql=["create table t (x integer)", "insert into t values (7)", "select x from t"],
    )
    assert op.execute({})[-1] == [(7,)], "a list of statements returns one result per statement"
    assert (tmp_path / "from-the-account.sqlite").exists()
