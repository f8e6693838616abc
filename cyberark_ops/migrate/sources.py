"""What Airflow holds today: connections and variables from the metadata DB and the environment.

Values are read only into memory, at plan time to decide what is secret and at apply time to
write; no value ever leaves this module except to the vault writer and the byte comparison.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._compat import first_attribute

CONN_PREFIX = "AIRFLOW_CONN_"
VAR_PREFIX = "AIRFLOW_VAR_"


@dataclass(frozen=True)
class Held:
    """One connection or variable as Airflow resolves it, with its value (never shown)."""

    kind: str
    """``connection`` or ``variable``."""
    id: str
    source: str
    """``db`` or ``env`` (the environment wins in Airflow's lookup order)."""
    value: str = field(repr=False)
    """What the backend will serve: connection JSON, or the variable's text."""
    secret_fields: tuple[str, ...] = ()
    """Where a secret sits: ``password``, ``extra.<key>``, or ``value`` for a variable."""
    conn_type: str | None = None
    view: tuple[Any, ...] | None = field(default=None, repr=False)
    """A connection as Airflow's tasks see it (:func:`connection_view`), to compare after the move."""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def __repr__(self) -> str:
        return f"Held({self.key!r}, source={self.source!r})"


def sensitive_names() -> frozenset[str]:
    """Airflow's own list (its secrets masker) plus ``[core] sensitive_var_conn_names``."""
    defaults: frozenset[str] = first_attribute(
        "DEFAULT_SENSITIVE_FIELDS",
        "airflow.sdk._shared.secrets_masker.secrets_masker",
        "airflow._shared.secrets_masker.secrets_masker",
        "airflow.sdk.execution_time.secrets_masker",
    )
    from airflow.configuration import conf

    extra = conf.get("core", "sensitive_var_conn_names", fallback="") or ""
    return frozenset({*defaults, *(name.strip().lower() for name in extra.split(",") if name.strip())})


def is_sensitive(name: str, names: Iterable[str]) -> bool:
    """As Airflow's masker decides: a sensitive word anywhere in the name, case-insensitively."""
    lowered = name.lower()
    return any(word in lowered for word in names)


def matches(patterns: Iterable[str], kind: str, item: str) -> bool:
    """``connection:<glob>`` / ``variable:<glob>``, or a bare glob for either kind."""
    for pattern in patterns:
        scope, colon, glob = pattern.partition(":")
        if colon and scope in ("connection", "variable"):
            if scope == kind and fnmatch.fnmatchcase(item, glob):
                return True
        elif fnmatch.fnmatchcase(item, pattern):
            return True
    return False


def connection_value(conn: Any) -> str:
    """The connection as JSON the backend serves and Airflow's ``Connection.from_json`` reads back:
    sorted keys, so that a rerun writes the same bytes and finds them equal."""
    data: dict[str, Any] = {"conn_type": conn.conn_type}
    for name in ("description", "host", "login", "password", "schema", "port"):
        value = getattr(conn, name, None)
        if value is not None:  # "" too: Airflow tells an empty login from none
            data[name] = value
    extra = conn.extra
    if extra:
        try:
            parsed = json.loads(extra)
        except ValueError:
            parsed = None
        data["extra"] = parsed if isinstance(parsed, dict) else extra
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def connection_view(conn: Any) -> tuple[Any, ...]:
    """What a task reads of a connection; the migrated one must give the same."""
    fields = (getattr(conn, name, None) for name in ("conn_type", "host", "login", "password", "schema", "port"))
    return (*fields, conn.extra_dejson)


def extra_dict(conn: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(conn.extra) if conn.extra else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def held_connection(conn_id: str, conn: Any, source: str, names: frozenset[str]) -> Held:
    fields: list[str] = ["password"] if conn.password else []
    fields += [f"extra.{key}" for key in sorted(extra_dict(conn)) if is_sensitive(str(key), names)]
    return Held(
        "connection", conn_id, source, connection_value(conn), tuple(fields), conn.conn_type, connection_view(conn)
    )


def _from_env_value(conn_id: str, value: str) -> Any:
    from airflow.models.connection import Connection

    if value.lstrip().startswith("{"):
        return Connection.from_json(value, conn_id=conn_id)
    return Connection(conn_id=conn_id, uri=value)


def read_airflow(environ: Mapping[str, str] | None = None) -> list[Held]:
    """Every connection and variable Airflow resolves from its metadata DB and environment, sorted."""
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    env = os.environ if environ is None else environ
    names = sensitive_names()
    held: dict[str, Held] = {}
    with create_session() as session:
        for conn in session.scalars(select(Connection)):
            try:
                held[f"connection:{conn.conn_id}"] = held_connection(conn.conn_id, conn, "db", names)
            except RecursionError:  # Airflow's own Extra check recurses: the row cannot be read
                held[f"connection:{conn.conn_id}"] = Held("connection", conn.conn_id, "db-invalid", "", ())
        for var in session.scalars(select(Variable)):
            fields = ("value",) if is_sensitive(var.key, names) else ()
            held[f"variable:{var.key}"] = Held("variable", var.key, "db", var.val or "", fields)
    for name, value in env.items():
        if name.startswith(CONN_PREFIX) and len(name) > len(CONN_PREFIX):
            conn_id = name[len(CONN_PREFIX) :].lower()
            try:
                conn = _from_env_value(conn_id, value)
            except Exception:  # noqa: BLE001 - Airflow would fail on it too; reported, never shown
                held[f"connection:{conn_id}"] = Held("connection", conn_id, "env-invalid", "", ())
                continue
            held[f"connection:{conn_id}"] = held_connection(conn_id, conn, "env", names)
        elif name.startswith(VAR_PREFIX) and len(name) > len(VAR_PREFIX):
            key = name[len(VAR_PREFIX) :].lower()
            fields = ("value",) if is_sensitive(key, names) else ()
            held[f"variable:{key}"] = Held("variable", key, "env", value, fields)
    return [held[key] for key in sorted(held)]


def env_name(kind: str, item: str) -> str:
    return (CONN_PREFIX if kind == "connection" else VAR_PREFIX) + item.upper()


def remove_from_db(kind: str, item: str, expected_value: str, *, mode: str) -> str:
    """Removes the secret from the metadata DB if Airflow still holds exactly ``expected_value``
    (what was read back equal); returns what was done. ``mode``: ``strip`` keeps the connection
    without its password and sensitive extras, ``delete`` leaves it wholly to the backend."""
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    names = sensitive_names()
    with create_session() as session:
        if kind == "variable":
            var = session.scalar(select(Variable).where(Variable.key == item))
            if var is None:
                return "already gone"
            if (var.val or "") != expected_value:
                return "changed in Airflow since it was verified; kept"
            session.delete(var)
            return "variable deleted"
        conn = session.scalar(select(Connection).where(Connection.conn_id == item))
        if conn is None:
            return "already gone"
        if connection_value(conn) != expected_value:
            return "changed in Airflow since it was verified; kept"
        if mode == "delete":
            session.delete(conn)
            return "connection deleted"
        # Airflow's password setter ignores None (it would keep the secret): clear the column itself.
        conn._password = None
        conn.is_encrypted = False
        extra = extra_dict(conn)
        if extra:
            kept = {k: v for k, v in extra.items() if not is_sensitive(str(k), names)}
            conn.extra = json.dumps(kept) if kept else None
        elif conn.extra:
            conn.extra = None  # a non-JSON extra cannot be told apart: it went to the vault whole
        session.flush()
        if conn.password or any(is_sensitive(str(k), names) for k in extra_dict(conn)):
            raise RuntimeError(f"connection {item!r}: the metadata DB still holds a secret after removal")
        return "password and sensitive extras removed"


__all__ = [
    "Held",
    "connection_value",
    "connection_view",
    "env_name",
    "held_connection",
    "is_sensitive",
    "matches",
    "read_airflow",
    "remove_from_db",
]
