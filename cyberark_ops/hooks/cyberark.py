"""``CyberArkHook``: fetch credentials from Conjur, CCP or PVWA / Privilege Cloud inside a task.

Nothing happens at construction: the connection is read and the vault called only when a
``get_*`` method runs (inside ``execute``), so DAG parsing and template rendering cost no vault
call. Every fetched value is registered with Airflow's secrets masker before it is returned, and
each fetch names the DAG, task and run in the reason the vault audits.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._compat import BaseHook
from ..scrub_exceptions import scrubbed_exceptions, scrubs_exceptions

if TYPE_CHECKING:
    from ..client import BaseClient, Credential, CredentialRef
    from ..fetch import Fetcher
    from ..settings import ConnectionSettings


class CyberArkHook(BaseHook):
    """Reads credentials from the CyberArk API a ``cyberark`` connection points at.

    :param cyberark_conn_id: the ``cyberark`` connection (host = the API's base URL).
    :param reason: extra text for the audited reason; the DAG, task and run are always included.
    :param allow_short_secret: a fetched value shorter than ``[logging] min_length_masked_secret``
        is returned with a warning; False refuses it (``SecretTooShort``, naming no value).
    :param check_in: PVWA / Privilege Cloud: overrides the connection's ``check_in`` extra (exclusive
        accounts are checked in by ``check_in_all``); None keeps the connection's.
    :param ticketing_system: overrides the connection's ``ticketing_system`` extra; None or "" keeps it.
    :param ticket_id: overrides the connection's ``ticket_id`` extra; None or "" keeps it.
    """

    conn_name_attr = "cyberark_conn_id"
    default_conn_name = "cyberark_default"
    conn_type = "cyberark"
    hook_name = "CyberArk"

    def __init__(
        self,
        cyberark_conn_id: str = default_conn_name,
        *,
        reason: str | None = None,
        allow_short_secret: bool = True,
        check_in: bool | None = None,
        ticketing_system: str | None = None,
        ticket_id: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.cyberark_conn_id = cyberark_conn_id
        self.reason = reason
        self.allow_short_secret = allow_short_secret
        self.retrieve_overrides = retrieve_overrides(
            check_in=check_in, ticketing_system=ticketing_system, ticket_id=ticket_id
        )
        self._fetcher: Fetcher | None = None
        self._fetcher_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CyberArkHook(cyberark_conn_id={self.cyberark_conn_id!r})"

    def __getstate__(self) -> dict[str, Any]:
        # A copy or pickle carries the conn id only: settings and client (with the API key) are
        # rebuilt on first use.
        state = self.__dict__.copy()
        state["_fetcher"] = None
        state.pop("_fetcher_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("allow_short_secret", True)  # pickled before the parameter existed
        self.__dict__.setdefault("retrieve_overrides", {})
        self._fetcher_lock = threading.Lock()

    # -- connection and client ---------------------------------------------------------------------

    @property
    def fetcher(self) -> Fetcher:
        """The fetch core for this connection, built on first use (never at DAG parse time)."""
        fetcher = self._fetcher
        if fetcher is not None:
            return fetcher
        with self._fetcher_lock:
            return self._fetcher or self._fetcher_from(self._read_settings())

    def _fetcher_from(self, settings: ConnectionSettings) -> Fetcher:
        """The one fetcher of this hook (the first settings read win: concurrent first uses share
        one client and one logon). Called with ``_fetcher_lock`` held."""
        # The fetch core and the client layer load here, on the first fetch: a module that only
        # defines tasks (parsed every 30 s by the dag-processor) never pays for them.
        from ..fetch import Fetcher

        if self._fetcher is None:
            self._fetcher = Fetcher(
                settings,
                name=f"connection {self.cyberark_conn_id!r}",
                reason=self.reason,
                allow_short_secret=self.allow_short_secret,
            )
        return self._fetcher

    def _read_settings(self) -> ConnectionSettings:
        from .._compat import short_extras_unannounced

        with short_extras_unannounced():
            conn = self.get_connection(self.cyberark_conn_id)
        return self._settings_from(conn)

    def _settings_from(self, conn: Any) -> ConnectionSettings:
        from .._compat import announce_short_secrets
        from ..settings import ConnectionSettings, secret_extras

        settings = ConnectionSettings.from_connection(conn, self.cyberark_conn_id)
        announce_short_secrets(conn.password, secret_extras(settings.extras))
        return with_retrieve_overrides(settings, self.retrieve_overrides, self.cyberark_conn_id)

    @property
    def settings(self) -> ConnectionSettings:
        return self.fetcher.settings

    @property
    def api(self) -> str:
        return self.fetcher.api

    def get_conn(self) -> BaseClient[Any, Any]:
        """The client (kept for this hook's life, keep-alive connection and all).

        PVWA sessions are opened and closed per fetch instead, so that a session never outlives
        the fetch, even when the task fails.
        """
        return self.fetcher.client()

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()

    def __enter__(self) -> CyberArkHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """``with CyberArkHook(...) as hook:`` closes its connections when the block ends."""
        self.close()

    # -- public fetch API --------------------------------------------------------------------------

    @scrubs_exceptions
    def get_secret(self, ref: str | CredentialRef) -> str:
        """One secret value: a Conjur variable id, or a reference (``ccp:Safe=DB;Object=pg``)."""
        return self.fetcher.get_secret(ref)

    @scrubs_exceptions
    def get_secrets(self, refs: Iterable[str | CredentialRef]) -> dict[str, str]:
        """Several secrets, keyed as given. Conjur variables come in one batch request."""
        return self.fetcher.get_secrets(refs)

    @scrubs_exceptions
    def get_credential(self, ref: str | CredentialRef) -> Credential:
        """A whole account: secret plus username, address, port, database and properties."""
        return self.fetcher.get_credential(ref)

    def resolve_ref(self, ref: str | CredentialRef) -> CredentialRef:
        """A typed reference; a bare string means an object of this connection's API."""
        return self.fetcher.resolve(ref)

    def audit_reason(self) -> str:
        """``airflow dag=<dag> task=<task> run=<run>`` (+ the hook's reason), for the vault's audit."""
        return self.fetcher.audit_reason()

    # -- async fetch API (triggers, deferrable operators' aexecute) --------------------------------
    # The sync path above, run in a bounded worker thread (cyberark_ops.fetch.off_loop): one fetch
    # policy, one client, token cache and pacer for both; the event loop is never blocked, by the
    # fetch or by the connection lookup.

    async def afetcher(self) -> Fetcher:
        """:attr:`fetcher`, with the connection looked up without blocking the running loop."""
        fetcher = self._fetcher
        if fetcher is not None:
            return fetcher
        settings = await self._aread_settings()
        with self._fetcher_lock:
            return self._fetcher_from(settings)

    async def _aread_settings(self) -> ConnectionSettings:
        """Airflow's async connection lookup where it is safe on a loop: 3.3.2+ (``aextra_dejson``
        marks it) masks the connection with ``amask_secret``; before, ``aget_connection`` masked it
        with a blocking supervisor call, so the whole sync lookup runs in a worker thread instead."""
        from .._compat import short_extras_unannounced
        from ..fetch import off_loop

        if not _async_lookup_is_safe():
            return await off_loop(self._read_settings)
        with short_extras_unannounced():
            conn = await self.aget_connection(self.cyberark_conn_id)
        # Reading the settings may read files (password_file, certificates): off the loop too.
        return await off_loop(functools.partial(self._settings_from, conn))

    async def aget_secret(self, ref: str | CredentialRef) -> str:
        """:meth:`get_secret`, awaited: the same value, errors, masking and audit reason."""
        with scrubbed_exceptions():
            return await (await self.afetcher()).aget_secret(ref)

    async def aget_secrets(self, refs: Iterable[str | CredentialRef]) -> dict[str, str]:
        """:meth:`get_secrets`, awaited (Conjur variables still in one batch request)."""
        with scrubbed_exceptions():
            return await (await self.afetcher()).aget_secrets(refs)

    async def aget_credential(self, ref: str | CredentialRef) -> Credential:
        """:meth:`get_credential`, awaited."""
        with scrubbed_exceptions():
            return await (await self.afetcher()).aget_credential(ref)

    # -- exclusive accounts and tickets (PVWA / Privilege Cloud) -----------------------------------

    @property
    def checked_out(self) -> tuple[str, ...]:
        """Ids of the exclusive accounts this hook fetched and has not checked in yet."""
        return self._fetcher.checked_out if self._fetcher is not None else ()

    def check_in_all(self) -> list[str]:
        """Checks in every exclusive account this hook fetched (``check_in``); never raises, logs
        each failure; returns the ids that failed. Works after ``close`` (a check-in opens its own
        session)."""
        return self._fetcher.check_in_all() if self._fetcher is not None else []

    # -- the UI's Test button ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Authenticates only: fetches no secret and sends no CCP account query (each would land in
        CyberArk's audit log, and a made-up object floods it with not-found errors)."""
        from ..client.errors import CyberArkError

        try:
            return self.fetcher.test()
        except CyberArkError as exc:  # settings that the connection form let through
            return False, str(exc)

    # -- UI ----------------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Airflow 3.1's form of ``ui-field-behaviour`` (3.2+ reads the provider info instead)."""
        from ..provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Airflow 3.1's form of ``conn-fields``, built from the same declarations.

        3.2+ reads ``conn-fields`` and never calls this. Needs only ``wtforms`` (3.1's UI stands in
        for it when absent); secret fields become password fields.
        """
        from wtforms import BooleanField, IntegerField, PasswordField, StringField

        from ..provider_info import CONN_FIELDS

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            schema = spec["schema"]
            kinds = schema["type"]
            if schema.get("format") == "password":
                field_class: Any = PasswordField
            elif "boolean" in kinds:
                field_class = BooleanField
            elif "integer" in kinds:
                field_class = IntegerField
            else:
                field_class = StringField
            widgets[name] = field_class(spec["label"], description=spec.get("description", ""))
        return widgets


def _async_lookup_is_safe() -> bool:
    from airflow.sdk import Connection

    return hasattr(Connection, "aextra_dejson")


RETRIEVE_OVERRIDES = ("check_in", "ticketing_system", "ticket_id")


def retrieve_overrides(
    *, check_in: bool | None = None, ticketing_system: str | None = None, ticket_id: str | None = None
) -> dict[str, Any]:
    """The task's overrides of the PVWA retrieve extras; None and "" (a template rendered from a
    ``dag_run.conf`` without the key) mean "the connection's"."""
    given = {"check_in": check_in, "ticketing_system": ticketing_system, "ticket_id": ticket_id}
    return {name: value for name, value in given.items() if value is not None and value != ""}


def with_retrieve_overrides(
    settings: ConnectionSettings, overrides: dict[str, Any], conn_id: str
) -> ConnectionSettings:
    """``settings`` with the task's overrides laid over the connection's extras."""
    if not overrides:
        return settings
    from ..client.errors import ConfigurationError
    from ..settings import ConnectionSettings

    foreign = sorted(set(overrides) - set(settings.spec.extra_fields))
    if foreign:
        raise ConfigurationError(
            f"{foreign[0]}: connection {conn_id!r} reaches {settings.spec.label}, which has no "
            f"{', '.join(foreign)} (PVWA and Privilege Cloud only)",
            field=foreign[0],
        )
    return ConnectionSettings(
        api=settings.api,
        base_url=settings.base_url,
        login=settings.login,
        secret=settings.secret,
        extras={**settings.extras, **overrides},
        for_backend=settings.for_backend,
    )


__all__ = ["CyberArkHook", "retrieve_overrides", "with_retrieve_overrides"]
