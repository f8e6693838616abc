"""``VaultedSqlOperator``: common-sql's ``SQLExecuteQueryOperator`` on a CyberArk credential.

Why a subclass rather than the generic wrapper: ``BaseSQLOperator.get_hook`` looks the connection
up before building the hook, and OpenLineage calls ``get_db_hook()`` again after ``execute``; here
``get_db_hook`` builds the hook on the in-memory connection once and caches it, so the vault is
called once per attempt and nothing is looked up under the vaulted conn id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from ..client import ConfigurationError
from ..hooks.cyberark import CyberArkHook
from .vaulted import VAULTED_TEMPLATE_FIELDS, VaultedMixin, bind_connection, vault_connection

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_VAULTED_CONN_ID = "cyberark_vaulted"


class VaultedSqlOperator(VaultedMixin, SQLExecuteQueryOperator):
    """Run SQL with a credential fetched from CyberArk in ``execute``; the result is scrubbed.

    Every argument not listed here is ``SQLExecuteQueryOperator``'s.

    :param vault_conn_id: the ``cyberark`` connection to fetch through.
    :param credential_ref: the reference (``ccp:Safe=DB;Object=pg``, a Conjur variable id...); templated.
    :param conn_id: an Airflow connection holding only the non-secret parts (host, schema, port,
        conn type, extras); None when the account carries address / port / database.
    :param conn_type: the hook's connection type (``postgres``, ``mysql``, ``sqlite``...), required
        without ``conn_id``.
    :param conn_extra: extras for the in-memory connection (e.g. ``{"client": "mysql-connector-python"}``).
    :param allow_short_secret: accept a secret shorter than ``[logging] min_length_masked_secret``
        (it is then neither masked in logs nor scrubbed from the result: too short to search for).
    :param check_in: PVWA / Privilege Cloud: check the exclusive account in when the task ends (None:
        the connection's ``check_in`` extra).
    :param ticketing_system: with ``ticket_id``, the ticket the retrieve carries; templated (None or
        "": the connection's).
    :param ticket_id: the ticket number; templated, e.g. ``{{ dag_run.conf.get('ticket_id', '') }}``.
    """

    template_fields = (*SQLExecuteQueryOperator.template_fields, *VAULTED_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        credential_ref: str,
        vault_conn_id: str = CyberArkHook.default_conn_name,
        conn_id: str | None = None,
        conn_type: str | None = None,
        conn_extra: Mapping[str, Any] | None = None,
        allow_short_secret: bool = False,
        vault_reason: str | None = None,
        check_in: bool | None = None,
        ticketing_system: str | None = None,
        ticket_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if conn_id is None and not conn_type:
            raise ConfigurationError("VaultedSqlOperator needs conn_id or conn_type", field="conn_type")
        super().__init__(
            credential_ref=credential_ref,
            vault_conn_id=vault_conn_id,
            conn_type=conn_type,
            conn_extra=conn_extra,
            allow_short_secret=allow_short_secret,
            vault_reason=vault_reason,
            check_in=check_in,
            ticketing_system=ticketing_system,
            ticket_id=ticket_id,
            conn_id=conn_id,
            **kwargs,
        )
        self._vaulted_hook: DbApiHook | None = None

    def _reset_vaulted(self) -> None:
        super()._reset_vaulted()
        self._vaulted_hook = None

    def get_db_hook(self) -> DbApiHook:
        """The hook on the in-memory connection, built once per fetch (OpenLineage asks again)."""
        if self._vaulted_hook is not None:
            return self._vaulted_hook
        cred = self._vaulted or self.fetch_credential()
        conn_id = self.conn_id or DEFAULT_VAULTED_CONN_ID
        conn = vault_connection(
            cred,
            conn_id=conn_id,
            base=self._base_connection(self.conn_id),
            conn_type=self.conn_type,
            extra=self.conn_extra,
        )
        # Extras become hook parameters as in BaseSQLOperator.get_hook, on a copy: hook_params is a
        # rendered template field and must stay as the user wrote it.
        hook_params = {**conn.extra_dejson, **(self.hook_params or {})}
        hook = bind_connection(conn.get_hook(hook_params=hook_params), conn)  # type: ignore[no-untyped-call]
        if not isinstance(hook, DbApiHook):
            raise ConfigurationError(
                f"connection type {conn.conn_type!r} gives {type(hook).__name__}, not a common-sql DbApiHook",
                field="conn_type",
            )
        if self.database:
            if conn.conn_type == "postgres":
                hook.database = self.database
            else:
                hook.schema = self.database
        self._vaulted_hook = hook
        return hook

    def _execute_vaulted(self, context: Context) -> Any:
        return SQLExecuteQueryOperator.execute(self, context)  # type: ignore[no-untyped-call]


__all__ = ["DEFAULT_VAULTED_CONN_ID", "VaultedSqlOperator"]
