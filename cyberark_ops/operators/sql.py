"""``VaultedSqlOperator``: common-sql's ``SQLExecuteQueryOperator`` with its password from CyberArk.

The Airflow connection named by ``conn_id`` holds only what is not secret (host, schema, port,
type, extras); the password (and, where the CyberArk account has them, login, address, port and
database) is fetched in ``execute``. The downstream hook gets an in-memory ``Connection``: nothing
is written to the metadata DB, the environment or a file, the value never enters a template field
or ``hook_params`` (both are rendered and stored), and the result is scrubbed before it becomes
XCom.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import BaseHook, Connection

from .. import scrub
from .._compat import min_masked_length
from ..client import ConfigurationError, Credential
from ..hooks.cyberark import CyberArkHook

NO_LOGIN_TYPES = frozenset({"sqlite"})
"""Connection types without authentication: SQLite's hook puts login and password into the file
path of its URI, so they are left out (the fetched value is still masked and scrubbed)."""


class ShortSecretRefused(ConfigurationError):
    """Airflow would not mask the value in task logs (``[logging] min_length_masked_secret``)."""


def attach_connection(hook: BaseHook, connection: Connection) -> None:
    """Makes ``hook`` use ``connection`` instead of looking its conn id up.

    The one place that relies on hook internals: an instance attribute ``get_connection`` shadows
    the classmethod every hook calls (``SqliteHook.get_uri`` does so directly, ignoring a
    ``connection=`` argument), and ``DbApiHook.connection`` returns ``_connection``. A test fails
    loudly if a common-sql or provider release stops honouring either.
    """
    hook.get_connection = lambda conn_id: connection  # type: ignore[method-assign]
    hook._connection = connection  # type: ignore[attr-defined]


class VaultedSqlOperator(SQLExecuteQueryOperator):
    """Runs SQL with a credential fetched from CyberArk just in time.

    :param credential: the reference to fetch (``prod/db/password``, ``ccp:Safe=DB;Object=pg``,
        ``pvwa:DB-Prod/pg-prod``); a reference, not a secret, so it may be templated.
    :param vault_conn_id: the ``cyberark`` connection to fetch through.
    :param conn_id: an Airflow connection with the non-secret parts; without one, ``conn_type`` is
        required and host, port, schema and login come from the CyberArk account.
    :param conn_type: the connection type when there is no ``conn_id`` (or to override it).
    :param allow_short_secret: run even when the value is too short for Airflow to mask it in logs.
    :param reason: extra text for the audited reason (dag, task and run are always included).
    """

    template_fields: Sequence[str] = (*SQLExecuteQueryOperator.template_fields, "credential")

    def __init__(
        self,
        *,
        credential: str,
        vault_conn_id: str = CyberArkHook.default_conn_name,
        conn_id: str | None = None,
        conn_type: str | None = None,
        allow_short_secret: bool = False,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        if not conn_id and not conn_type:
            raise ConfigurationError(
                f"{self.task_id}: give conn_id (the non-secret parts of the connection) or conn_type", field="conn_type"
            )
        self.credential = credential
        self.vault_conn_id = vault_conn_id
        self.conn_type = conn_type
        self.allow_short_secret = allow_short_secret
        self.reason = reason
        self._vaulted_hook: DbApiHook | None = None

    def execute(self, context: Any) -> Any:
        with scrub.task_scope():
            try:
                return scrub.scrub(super().execute(context))  # type: ignore[no-untyped-call]
            finally:
                self._vaulted_hook = None  # the hook holds the in-memory connection and its password

    def get_db_hook(self) -> DbApiHook:
        # Cached: OpenLineage calls get_db_hook() again after execute, and must not fetch again.
        if self._vaulted_hook is None:
            self._vaulted_hook = self._build_hook(self._fetch())
        return self._vaulted_hook

    def _fetch(self) -> Credential:
        credential = CyberArkHook(self.vault_conn_id, reason=self.reason).get_credential(self.credential)
        minimum = min_masked_length()
        if len(credential.secret) < minimum and not self.allow_short_secret:
            raise ShortSecretRefused(
                f"{self.task_id}: the value of {self.credential!r} has {len(credential.secret)} characters; Airflow "
                f"masks only values of at least {minimum} ([logging] min_length_masked_secret), so it would show "
                "in task logs. Rotate it to a longer one, or pass allow_short_secret=True.",
                field="credential",
            )
        return credential

    def _build_hook(self, credential: Credential) -> DbApiHook:
        base = BaseHook.get_connection(self.conn_id) if self.conn_id else None
        conn_type = self.conn_type or (base.conn_type if base else None)
        connection = Connection(
            conn_id=self.conn_id or f"cyberark_vaulted_{self.task_id}",
            conn_type=conn_type,
            host=(base.host if base else None) or credential.address,
            schema=(base.schema if base else None) or credential.database,
            port=(base.port if base else None) or credential.port,
            login=None if conn_type in NO_LOGIN_TYPES else (base.login if base else None) or credential.username,
            password=None if conn_type in NO_LOGIN_TYPES else credential.secret,
            extra=base.extra if base else None,
        )
        hook_params = {**connection.extra_dejson, **self.hook_params}  # as common-sql merges them
        hook = connection.get_hook(hook_params=hook_params)  # type: ignore[no-untyped-call]
        if not isinstance(hook, DbApiHook):
            raise ConfigurationError(
                f"{self.task_id}: connection type {conn_type!r} has no common-sql hook ({type(hook).__name__})",
                field="conn_type",
            )
        attach_connection(hook, connection)
        if self.database:
            if hook.conn_type == "postgres":
                hook.database = self.database
            else:
                hook.schema = self.database
        return hook


__all__ = ["NO_LOGIN_TYPES", "ShortSecretRefused", "VaultedSqlOperator", "attach_connection"]
