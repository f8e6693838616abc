"""``CyberArkHook``: fetch credentials from Conjur, CCP or PVWA / Privilege Cloud inside a task.

Nothing happens at construction: the connection is read and the vault called only when a
``get_*`` method runs (inside ``execute``), so DAG parsing and template rendering cost no vault
call. Every fetched value is registered with Airflow's secrets masker before it is returned, and
each fetch names the DAG, task and run in the reason the vault audits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .._compat import BaseHook, Stats, current_context, mask_secret, min_masked_length
from ..client import (
    CCPClient,
    CCPRef,
    ConfigurationError,
    ConjurClient,
    ConjurRef,
    Credential,
    CredentialRef,
    CyberArkError,
    PVWAClient,
    PVWARef,
    RateLimited,
    parse_ref,
)
from ..client.refs import has_scheme
from ..settings import API_KINDS, Client, ConnectionSettings, parse_extras

# A stdlib logger: Airflow routes it into the task log (and masks it there), and tests can capture it.
log = logging.getLogger(__name__)
T = TypeVar("T")

# Which reference types each connection API serves.
_REF_FOR_API: dict[str, type] = {
    "conjur": ConjurRef,
    "ccp": CCPRef,
    "pvwa": PVWARef,
    "privileged-cloud": PVWARef,
}


class _RateBudget:
    """Client-side requests-per-second budget shared by every hook of one connection in a process,
    so a burst of mapped tasks does not run into CyberArk's own throttling."""

    _budgets: dict[str, _RateBudget] = {}
    _lock = threading.Lock()

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._next_slot = 0.0
        self._slot_lock = threading.Lock()

    @classmethod
    def for_connection(cls, conn_id: str, per_second: float) -> _RateBudget:
        with cls._lock:
            budget = cls._budgets.get(conn_id)
            if budget is None or budget.per_second != per_second:
                budget = cls._budgets[conn_id] = cls(per_second)
            return budget

    def wait(self, deadline: float) -> None:
        """Waits for this fetch's slot; a slot beyond ``deadline`` seconds is not taken at all."""
        with self._slot_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            if slot - now > deadline:
                raise RateLimited(
                    f"CyberArk rate_limit_per_second={self.per_second:g}: the next free slot is "
                    f"{slot - now:.1f}s away, beyond the {deadline:g}s deadline; raise the budget or lower concurrency",
                    retry_after=slot - now,
                )
            self._next_slot = slot + 1.0 / self.per_second
        if slot > now:
            time.sleep(slot - now)


class CyberArkHook(BaseHook):
    """Reads credentials from the CyberArk API a ``cyberark`` connection points at.

    :param cyberark_conn_id: the ``cyberark`` connection (host = the API's base URL).
    :param reason: extra text for the audited reason; the DAG, task and run are always included.
    """

    conn_name_attr = "cyberark_conn_id"
    default_conn_name = "cyberark_default"
    conn_type = "cyberark"
    hook_name = "CyberArk"

    def __init__(self, cyberark_conn_id: str = default_conn_name, *, reason: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.cyberark_conn_id = cyberark_conn_id
        self.reason = reason
        self._settings: ConnectionSettings | None = None
        self._client: ConjurClient | CCPClient | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CyberArkHook(cyberark_conn_id={self.cyberark_conn_id!r})"

    def __getstate__(self) -> dict[str, Any]:
        # A copy or pickle carries the conn id only: settings and client (with the API key) are
        # rebuilt on first use.
        state = self.__dict__.copy()
        state.update(_settings=None, _client=None)
        state.pop("_client_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client_lock = threading.Lock()

    # -- connection and client ---------------------------------------------------------------------

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            conn = self.get_connection(self.cyberark_conn_id)
            if conn.conn_type and conn.conn_type != self.conn_type:
                raise ConfigurationError(
                    f"connection {self.cyberark_conn_id!r} has type {conn.conn_type!r}, not 'cyberark'",
                    field="conn_type",
                )
            self._settings = ConnectionSettings.from_fields(
                host=conn.host,
                port=conn.port,
                schema=conn.schema,
                login=conn.login,
                password=conn.password,
                extras=parse_extras(conn.extra),
            )
        return self._settings

    @property
    def api(self) -> str:
        return self.settings.api

    def _build_client(self) -> Client:
        return self.settings.build_client(on_event=self._on_event, register_secret=_mask)

    def get_conn(self) -> Client:
        """The client for Conjur or CCP (kept for this hook's life, keep-alive connection and all).

        PVWA sessions are opened and closed per fetch instead, so that a session never outlives
        the fetch, even when the task fails.
        """
        client = self._client
        if client is not None:
            return client
        with self._client_lock:  # threads sharing one hook share one client
            if self._client is None:
                if self.api in ("pvwa", "privileged-cloud"):
                    raise ConfigurationError(
                        "PVWA sessions are per fetch; use get_secret / get_credential", field="api"
                    )
                built = self._build_client()
                assert not isinstance(built, PVWAClient)
                self._client = built
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- public fetch API --------------------------------------------------------------------------

    def get_secret(self, path: str | CredentialRef) -> str:
        """One secret value: a Conjur variable id, or a reference (``ccp:Safe=DB;Object=pg``)."""
        ref = self.resolve_ref(path)
        if isinstance(ref, ConjurRef):
            client = self.get_conn()
            assert isinstance(client, ConjurClient)
            value = self._observe(
                "get_secret",
                str(ref),
                lambda: client.get_secret(ref.variable_id, ref.version, reason=self.audit_reason()),
            )
            return _register(value, str(ref))
        return self.get_credential(ref).secret

    def get_secrets(self, paths: Iterable[str | CredentialRef]) -> dict[str, str]:
        """Several secrets, keyed as given. Conjur variables come in one batch request."""
        wanted = [(path if isinstance(path, str) else str(path), self.resolve_ref(path)) for path in paths]
        batchable = [ref for _, ref in wanted if isinstance(ref, ConjurRef) and ref.version is None]
        values: dict[str, str] = {}
        if batchable:
            client = self.get_conn()
            assert isinstance(client, ConjurClient)
            ids = [ref.variable_id for ref in batchable]
            fetched = self._observe(
                "get_secrets",
                f"{len(set(ids))} Conjur variables",
                lambda: client.get_secrets(ids, reason=self.audit_reason()),
            )
            for ref in batchable:
                values[str(ref)] = _register(fetched[ref.variable_id], str(ref))
        result: dict[str, str] = {}
        for key, item in wanted:
            result[key] = values[str(item)] if str(item) in values else self.get_secret(item)
        return result

    def get_credential(self, ref: str | CredentialRef) -> Credential:
        """A whole account: secret plus username, address, port, database and properties."""
        resolved = self.resolve_ref(ref)
        reason = self.audit_reason()

        def fetch() -> Credential:
            if self.api in ("pvwa", "privileged-cloud"):
                # A PVWA session lives for one fetch only, even when the task fails.
                with self._build_client() as session:
                    return session.get(resolved, reason=reason)  # type: ignore[arg-type]
            return self.get_conn().get(resolved, reason=reason)  # type: ignore[arg-type]

        credential = self._observe("get_credential", str(resolved), fetch)
        _register(credential.secret, credential.source)
        return credential

    def resolve_ref(self, ref: str | CredentialRef) -> CredentialRef:
        """A typed reference; a bare string means an object of this connection's API."""
        if isinstance(ref, str):
            # Never stripped: a pasted "id\n" is refused by parse_ref, not silently fetched.
            text = ref
            if not has_scheme(text):
                prefix = "pvwa" if self.api == "privileged-cloud" else self.api
                text = f"{prefix}:{text}"
            resolved = parse_ref(text)
        else:
            resolved = ref
        expected = _REF_FOR_API[self.api]
        if not isinstance(resolved, expected):
            raise ConfigurationError(
                f"reference {str(resolved)!r} is not for {self.api}: connection {self.cyberark_conn_id!r} "
                f"reaches {self.api}, so use a {self.api}: reference or another connection",
                field="reference",
            )
        return resolved

    def audit_reason(self) -> str:
        """``airflow dag=<dag> task=<task> run=<run>`` (+ the hook's reason), for the vault's audit."""
        parts = ["airflow"]
        context = current_context()
        if context is not None:
            ti = context.get("ti") or context.get("task_instance")
            dag_id = getattr(ti, "dag_id", None)
            task_id = getattr(ti, "task_id", None)
            run_id = getattr(ti, "run_id", None) or context.get("run_id")
            parts += [f"dag={dag_id}", f"task={task_id}", f"run={run_id}"]
        if self.reason:
            parts.append(self.reason)
        return " ".join(parts)

    # -- the UI's Test button ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Authenticates only: fetches no secret and sends no CCP account query (each would land in
        CyberArk's audit log, and a made-up object floods it with not-found errors)."""
        try:
            client = self._build_client()
            try:
                if isinstance(client, ConjurClient):
                    who = client.whoami()
                    return True, f"Authenticated to Conjur as {who.get('username', client.login)!r}."
                if isinstance(client, PVWAClient):
                    client.logon()
                    return True, f"Logged on to {self.api} as {client.login!r} (and logged off)."
                return True, client.check_service()
            finally:
                client.close()
        except CyberArkError as exc:
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

    # -- observability -----------------------------------------------------------------------------

    def _on_event(self, name: str, tags: Mapping[str, str | float]) -> None:
        api = str(tags.get("api", self.api))
        if name == "retry":
            Stats.incr("cyberark.retries", tags={"api": api})
        elif name == "rate_limited":
            Stats.incr("cyberark.rate_limited", tags={"api": api})
        elif name == "token_renewal":
            Stats.incr("cyberark.token_renewals", tags={"api": api})

    def _observe(self, action: str, target: str, fetch: Callable[[], T]) -> T:
        budget = self.settings.rate_limit_per_second
        if budget:
            _RateBudget.for_connection(self.cyberark_conn_id, budget).wait(self.settings.deadline)
        started = time.perf_counter()
        try:
            result = fetch()
        except CyberArkError as exc:
            elapsed = time.perf_counter() - started
            kind = type(exc).__name__
            # A RateLimited failure is not counted in cyberark.rate_limited again: the transport
            # already counted every 429 it received, the last one included.
            Stats.incr("cyberark.fetch.errors", tags={"api": self.api, "kind": kind})
            log.warning(
                "CyberArk fetch api=%s action=%s object=%s outcome=%s duration_ms=%.1f",
                self.api,
                action,
                target,
                kind,
                elapsed * 1000,
            )
            raise
        elapsed = time.perf_counter() - started
        Stats.timing("cyberark.fetch.duration", elapsed * 1000, tags={"api": self.api, "action": action})
        log.info(
            "CyberArk fetch api=%s action=%s object=%s outcome=success duration_ms=%.1f",
            self.api,
            action,
            target,
            elapsed * 1000,
        )
        return result


def _mask(value: str) -> None:
    if value:
        mask_secret(value)


def _register(value: str, source: str) -> str:
    """Masks a fetched value before anyone can log it; warns when Airflow cannot mask it."""
    if len(value) < min_masked_length():
        log.warning(
            "The value of %s is shorter than [logging] min_length_masked_secret; Airflow will not mask it.",
            source,
        )
    _mask(value)
    return value


__all__ = ["API_KINDS", "CyberArkHook"]
