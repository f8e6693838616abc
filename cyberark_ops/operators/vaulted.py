"""The generic vaulted wrapper: any hook-based operator, given a credential fetched in ``execute``.

Why this shape: Airflow stores template fields (rendered) and hook parameters, masks only literal
strings per process, and masks nothing in XCom. So the credential is fetched only once ``execute``
runs, lives in an in-memory :class:`~airflow.sdk.Connection` (never in the metadata DB, the
environment or a file), is registered with :mod:`cyberark_ops.scrub` (every leak form masked), the
return value is scrubbed before it becomes XCom, and the registry is cleared when the task ends.

Handing a hook its in-memory connection relies on Airflow internals; that is isolated in
:func:`bind_connection` (one hook) and :func:`serve_connection` (every hook the operator builds),
each with a test that fails loudly when an Airflow or provider release changes them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook, BaseOperator

from .. import checkin, scrub
from .._compat import not_found_error
from ..client import ConfigurationError, CyberArkError
from ..hooks.cyberark import CyberArkHook
from ..scrub_exceptions import scrubbed_exceptions

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context

    from ..client import Credential

OperatorT = TypeVar("OperatorT", bound=BaseOperator)
log = logging.getLogger(__name__)

#: Error codes meaning "the database rejected the login": PostgreSQL SQLSTATE, MySQL/MariaDB errno.
PG_AUTH_SQLSTATES = frozenset({"28P01", "28000"})
MYSQL_AUTH_ERRNOS = frozenset({1045})
#: Connection types without authentication: the hook would build the login into a file URI.
NO_AUTH_CONN_TYPES = frozenset({"sqlite"})


VAULTED_TEMPLATE_FIELDS = ("credential_ref", "ticketing_system", "ticket_id")


class VaultedAuthError(CyberArkError):
    """The database rejected a freshly fetched credential as well (the message names no value)."""


# -- the two functions relying on Airflow internals --------------------------------------------------


def bind_connection(hook: BaseHook, conn: Connection) -> BaseHook:
    """Make ``hook`` use ``conn`` for every lookup, without Airflow storing it anywhere.

    Relies on internals (guarded by ``test_internals_bind_connection_reaches_sqlite_and_postgres_hooks``
    in ``tests/operators/test_vaulted.py``): hooks look their connection up with
    ``self.get_connection(conn_id)`` (a classmethod, shadowed here per instance, which
    ``SqliteHook.get_uri`` needs as it ignores ``connection=``), and ``DbApiHook`` caches it in
    ``_connection`` (read by its ``connection`` property).
    """
    hook.get_connection = lambda conn_id: conn  # type: ignore[method-assign]
    hook._connection = conn  # type: ignore[attr-defined]
    return hook


_SERVED: contextvars.ContextVar[Mapping[str, Connection] | None] = contextvars.ContextVar(
    "cyberark_served_connections", default=None
)
_ORIGINAL_GET_CONNECTION = BaseHook.__dict__["get_connection"]


def _serving_get_connection(cls: type[BaseHook], conn_id: str) -> Connection:
    served = _SERVED.get()
    if served is not None and conn_id in served:
        return served[conn_id]
    return _ORIGINAL_GET_CONNECTION.__get__(None, cls)(conn_id)  # type: ignore[no-any-return]


@contextlib.contextmanager
def serve_connection(conn: Connection) -> Iterator[None]:
    """While the block runs, ``BaseHook.get_connection(conn.conn_id)`` returns ``conn``.

    For operators that build their hook themselves (the generic wrapper). Relies on every hook and
    common-sql's ``BaseSQLOperator.get_hook`` going through the ``BaseHook.get_connection``
    classmethod (guarded by ``test_internals_serve_connection_reaches_hooks_and_common_sql`` in the
    same test file). Other conn ids fall through to Airflow; other threads and tasks are unaffected
    (a context variable).
    """
    token = _SERVED.set({**(_SERVED.get() or {}), conn.conn_id: conn})
    patched = BaseHook.__dict__["get_connection"] is not _ORIGINAL_GET_CONNECTION
    if not patched:
        BaseHook.get_connection = classmethod(_serving_get_connection)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        _SERVED.reset(token)
        if not patched:
            BaseHook.get_connection = _ORIGINAL_GET_CONNECTION  # type: ignore[method-assign]


# -- building the in-memory connection ---------------------------------------------------------------


def is_auth_error(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause / context) is a database login rejection, per driver.

    psycopg2 / psycopg ``OperationalError``: SQLSTATE 28P01 / 28000, or the server's
    "password authentication failed" text (psycopg reports connect errors without a SQLSTATE).
    MySQLdb / pymysql / mysql-connector: error 1045. SQLite has no authentication.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "pgcode", None) or getattr(current, "sqlstate", None)
        if code in PG_AUTH_SQLSTATES:
            return True
        errno = getattr(current, "errno", None)
        args = getattr(current, "args", ())
        if errno in MYSQL_AUTH_ERRNOS or (args and args[0] in MYSQL_AUTH_ERRNOS):
            return True
        if type(current).__name__ == "OperationalError" and "password authentication failed" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def vault_connection(
    credential: Credential,
    *,
    conn_id: str,
    base: Connection | None = None,
    conn_type: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Connection:
    """An in-memory connection: where from ``base`` (else the account), login from the account.

    The account's username and secret always win over ``base``'s login and password; SQLite gets
    neither (it has no authentication, and ``SqliteHook`` would put them in the file URI).
    """
    merged_extra: dict[str, Any] = dict(base.extra_dejson) if base is not None else {}
    merged_extra.update(extra or {})
    kind = conn_type or (base.conn_type if base is not None else None)
    if not kind:
        raise ConfigurationError("a vaulted connection needs conn_type (no conn_id gives one)", field="conn_type")
    no_auth = kind in NO_AUTH_CONN_TYPES
    # Where the database is comes from one place: the Airflow connection when there is one (mixing
    # in the account's address or port would point a SQLite path at a port), else the account.
    host, schema, port = (
        (base.host, base.schema, base.port)
        if base is not None
        else (credential.address, credential.database, credential.port)
    )
    if no_auth and base is None:
        # A SQLite account's address is the file; its Database ("main") names no file, and in
        # SqliteHook's URI a schema or port would become part of the path.
        schema, port = None, None
    from airflow.sdk import Connection  # loaded in execute: a DAG file that only defines the task never needs it

    return Connection(
        conn_id=conn_id,
        conn_type=kind,
        host=host,
        schema=schema,
        port=port,
        login=None if no_auth else credential.username or (base.login if base is not None else None),
        password=None if no_auth else credential.secret,
        extra=json.dumps(merged_extra) if merged_extra else None,
    )


class VaultedMixin:
    """Fetch ``credential_ref`` through ``vault_conn_id`` in ``execute``; scrub the result; drop it.

    Put before the operator class (``class X(VaultedMixin, SomeOperator)``) or use :func:`vaulted`.
    The operator's hook gets the in-memory connection under ``target_conn_id``; ``secret_env``
    names an environment variable given only to the child process of an operator with a
    ``get_env(context)`` method (``BashOperator``). On a database login rejection the credential is
    fetched again once and the task body retried once.

    Exclusive PVWA accounts (``check_in``, from the connection or here) are checked in when the task
    ends: success, failure, ``on_kill`` and SIGTERM (``cyberark_ops.checkin``); a failed check-in
    is logged and leaves the task's outcome alone. ``ticketing_system`` / ``ticket_id`` (templated:
    ``{{ dag_run.conf.get('ticket_id', '') }}``; empty keeps the connection's) go with the retrieve.
    """

    vault_conn_id: str
    credential_ref: str
    target_conn_id: str | None
    conn_type: str | None
    conn_extra: Mapping[str, Any] | None
    secret_env: str | None
    allow_short_secret: bool
    vault_reason: str | None
    check_in: bool | None
    ticketing_system: str | None
    ticket_id: str | None

    def __init__(
        self,
        *,
        vault_conn_id: str = CyberArkHook.default_conn_name,
        credential_ref: str,
        target_conn_id: str | None = None,
        conn_type: str | None = None,
        conn_extra: Mapping[str, Any] | None = None,
        secret_env: str | None = None,
        allow_short_secret: bool = False,
        vault_reason: str | None = None,
        check_in: bool | None = None,
        ticketing_system: str | None = None,
        ticket_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vault_conn_id = vault_conn_id
        self.credential_ref = credential_ref
        self.target_conn_id = target_conn_id
        self.conn_type = conn_type
        self.conn_extra = dict(conn_extra) if conn_extra else None
        self.secret_env = secret_env
        self.allow_short_secret = allow_short_secret
        self.vault_reason = vault_reason
        self.check_in = check_in
        self.ticketing_system = ticketing_system
        self.ticket_id = ticket_id
        self._vaulted: Credential | None = None
        self._checkouts: list[CyberArkHook] = []

    # -- fetch ---------------------------------------------------------------------------------------

    def fetch_credential(self) -> Credential:
        """Fetch (audited with dag/task/run); the fetch policy registers the value and refuses one
        Airflow would not mask (``cyberark_ops.fetch.register_fetched``)."""
        if not isinstance(self.credential_ref, str):
            # Templated: a Jinja expression may render to anything. The type only, never the value.
            raise ConfigurationError(
                f"credential_ref: must be a reference string such as prod/db/password, got "
                f"{type(self.credential_ref).__name__} (task {self.task_id!r})",
                field="credential_ref",
            )
        # Closed at once: its keep-alive connection would otherwise stay open until garbage collection.
        # The fetch registers the value (once) and refuses it when too short to mask.
        with CyberArkHook(
            self.vault_conn_id,
            reason=self.vault_reason,
            allow_short_secret=self.allow_short_secret,
            **self._retrieve_options(),
        ) as hook:
            try:
                cred = hook.get_credential(self.credential_ref)
            finally:
                self._hold_checkouts(hook)
        self._vaulted = cred
        return cred

    # -- exclusive accounts: check-in however the task ends ------------------------------------------

    def _retrieve_options(self) -> dict[str, Any]:
        for name in ("ticketing_system", "ticket_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(
                    f"{name}: must render to a string, got {type(value).__name__} "
                    f"(task {getattr(self, 'task_id', '?')!r})",
                    field=name,
                )
        return {"check_in": self.check_in, "ticketing_system": self.ticketing_system, "ticket_id": self.ticket_id}

    def _hold_checkouts(self, hook: CyberArkHook) -> None:
        if hook.checked_out:
            checkin.hold(hook)
            self._checkouts.append(hook)

    def check_in_accounts(self) -> list[str]:
        """Checks in the exclusive accounts this task fetched; returns the ids that failed (logged)."""
        hooks, self._checkouts = self._checkouts, []
        failed: list[str] = []
        for hook in hooks:
            failed.extend(checkin.release(hook))
        return failed

    def on_kill(self) -> None:
        self.check_in_accounts()
        super().on_kill()  # type: ignore[misc]

    def _base_connection(self, conn_id: str | None) -> Connection | None:
        return None if conn_id is None else _ORIGINAL_GET_CONNECTION.__get__(None, BaseHook)(conn_id)

    def _reset_vaulted(self) -> None:
        """Forget the credential and anything built on it (the next use fetches again)."""
        self._vaulted = None

    def _execute_vaulted(self, context: Context) -> Any:
        cred = self._vaulted or self.fetch_credential()
        with contextlib.ExitStack() as stack:
            if self.target_conn_id is not None:
                conn = vault_connection(
                    cred,
                    conn_id=self.target_conn_id,
                    base=self._base_connection_or_none(self.target_conn_id),
                    conn_type=self.conn_type,
                    extra=self.conn_extra,
                )
                stack.enter_context(serve_connection(conn))
            return super().execute(context)  # type: ignore[misc]

    def _base_connection_or_none(self, conn_id: str) -> Connection | None:
        try:
            return self._base_connection(conn_id)
        except not_found_error():
            return None

    def get_env(self, context: Context) -> dict[str, str]:
        """``BashOperator`` builds the child's environment here, after rendering: add the secret."""
        # BashOperator.get_env updates self.env in place (a rendered template field): hand it a copy.
        original = getattr(self, "env", None)
        if isinstance(original, dict):
            self.env = dict(original)
        try:
            env: dict[str, str] = dict(super().get_env(context))  # type: ignore[misc]
        finally:
            if isinstance(original, dict):
                self.env = original
        if self.secret_env:
            cred = self._vaulted or self.fetch_credential()
            env[self.secret_env] = cred.secret
        return env

    def execute(self, context: Context) -> Any:
        # Inner first: what leaves is scrubbed while the scope still holds the secret.
        with scrub.task_scope(), scrubbed_exceptions():
            try:
                for attempt in (1, 2):
                    try:
                        return scrub.scrub(self._execute_vaulted(context))
                    except Exception as exc:
                        if not is_auth_error(exc):
                            raise
                        if attempt == 2:
                            raise VaultedAuthError(
                                f"the database rejected the login of {self.credential_ref!r} again after fetching it "
                                f"anew ({type(exc).__name__}); check the account in CyberArk and the database user"
                            ) from None
                        log.warning(
                            "The database rejected the login of %r (%s); fetching the credential again once",
                            self.credential_ref,
                            type(exc).__name__,
                        )
                        self._reset_vaulted()
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                self._reset_vaulted()
                self.check_in_accounts()


def vaulted(operator_class: type[OperatorT], *, name: str | None = None) -> type[OperatorT]:
    """``vaulted(SomeOperator)``: a subclass taking :class:`VaultedMixin`'s arguments as well.

    ``credential_ref`` is a reference and may be templated; the secret never enters a template field.
    """
    if not (isinstance(operator_class, type) and issubclass(operator_class, BaseOperator)):
        raise TypeError("vaulted() takes an operator class")

    def __init__(self: Any, **kwargs: Any) -> None:
        VaultedMixin.__init__(self, **kwargs)

    fields = tuple(dict.fromkeys((*operator_class.template_fields, *VAULTED_TEMPLATE_FIELDS)))
    namespace = {
        "template_fields": fields,
        "__module__": operator_class.__module__,
        "__doc__": VaultedMixin.__doc__,
        # Airflow's operator metaclass wraps __init__ (default_args, XComArg deps) only when it
        # differs from the next class's in the MRO: VaultedMixin's would not be wrapped.
        "__init__": __init__,
    }
    cls = type(name or f"Vaulted{operator_class.__name__}", (VaultedMixin, operator_class), namespace)
    return cls


__all__ = [
    "VAULTED_TEMPLATE_FIELDS",
    "VaultedAuthError",
    "VaultedMixin",
    "bind_connection",
    "is_auth_error",
    "serve_connection",
    "vault_connection",
    "vaulted",
]
