"""The fetch core: from a reference to a masked, audited value, for every way into cyberark-ops.

``CyberArkHook``, the secrets backend, the vaulted operators and ``@with_cyberark_secret`` all
fetch through a ``Fetcher``; none of them resolves references, builds clients, paces requests,
counts metrics, masks values or writes the audit reason on its own. The fetch policy is here, once:
what is masked (every fetched value and every credential used to reach CyberArk, each registered
once), when the task process's own redaction is installed (before the first value is registered:
registering installs nothing by itself), and what a value too short to mask does (a warning, or
:class:`SecretTooShort` for the ways in that refuse it, with one message and one limit). It needs no Airflow
``Connection``: it starts from ``ConnectionSettings``, which a connection or a backend's kwargs
produce, so the secrets backend can use it without recursing into connection lookup.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import scrub, task_redaction
from ._compat import Stats, current_context
from .apis import ApiSpec
from .client import (
    BaseClient,
    ConfigurationError,
    Credential,
    CredentialRef,
    CyberArkError,
    RateLimited,
)
from .client.pacing import Pacer, Pacing
from .settings import ConnectionSettings

log = logging.getLogger("cyberark_ops.hooks.cyberark")
"""A stdlib logger (Airflow routes it into the task log and masks it there); named after the hook
module, where users look for the one line per fetch."""
T = TypeVar("T")

_EVENT_METRICS = {
    "retry": "cyberark.retries",
    "rate_limited": "cyberark.rate_limited",
    "token_renewal": "cyberark.token_renewals",
}


class FixedRateBudgets:
    """The ``rate_limit_per_second`` budgets of this process: a fixed-rate pacer per source name
    and rate, shared by every fetcher of that source, so a burst of mapped tasks' threads stays
    under a limit the user knows CyberArk enforces.

    Counted per fetch, apart from the transport's pacing (``TransportConfig.pacing``, per request):
    the budget is what the user counts (fetches), and a login or a retry the transport makes on its
    own does not spend it, so whether a token was cached never changes when a fetch may start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pacings: dict[float, Pacing] = {}

    def __len__(self) -> int:
        return len(self._pacings)

    def pacer(self, source: str, per_second: float) -> Pacer:
        with self._lock:
            pacing = self._pacings.get(per_second)
            if pacing is None:
                pacing = self._pacings[per_second] = Pacing.fixed(per_second)
        return pacing.pacer(source)

    def clear(self) -> None:
        """Every budget unspent, as a new process finds them."""
        with self._lock:
            self._pacings.clear()

    def wait(self, source: str, per_second: float, deadline: float) -> None:
        """Waits for this fetch's slot; a slot beyond ``deadline`` seconds is not taken at all."""
        pacer = self.pacer(source, per_second)
        if not pacer.take_turn(time.monotonic() + deadline, time.sleep):
            wait = pacer.next_free()
            raise RateLimited(
                f"CyberArk rate_limit_per_second={per_second:g}: the next free slot is "
                f"{wait:.1f}s away, beyond the {deadline:g}s deadline; raise the budget or lower concurrency",
                retry_after=wait,
            )


FIXED_RATE_BUDGETS = FixedRateBudgets()


def audit_reason(extra: str | None = None) -> str:
    """``airflow dag=<dag> task=<task> run=<run>`` (+ ``extra``), the reason the vault audits."""
    parts = ["airflow"]
    context = current_context()
    if context is not None:
        ti = context.get("ti") or context.get("task_instance")
        dag_id = getattr(ti, "dag_id", None)
        task_id = getattr(ti, "task_id", None)
        run_id = getattr(ti, "run_id", None) or context.get("run_id")
        parts += [f"dag={dag_id}", f"task={task_id}", f"run={run_id}"]
        map_index = getattr(ti, "map_index", None)
        if isinstance(map_index, int) and map_index >= 0:
            parts.append(f"map={map_index}")  # mapped instances share dag, task and run
    if extra:
        parts.append(extra)
    return " ".join(parts)


def mask(value: str) -> None:
    """Registers a credential used to reach CyberArk (API key, password), in every form it leaks in."""
    if value:
        task_redaction.install()
        scrub.register(value, allow_short=True)


def short_secret_message(source: str, length: int, minimum: int) -> str:
    """The one wording, for every way in, of a fetched value too short to mask (never the value)."""
    return (
        f"the secret of {source} has {length} characters, fewer than {minimum} ({scrub.MIN_LENGTH_SETTING}): "
        "Airflow will not mask it in task logs, and it is not scrubbed from data either"
    )


def register_fetched(value: str, source: str, *, username: str | None = None, allow_short_secret: bool = True) -> str:
    """Masks a fetched value, in every form it leaks in (``scrub.forms``), before anyone can log
    it, and keeps it for scrubbing return values.

    A value shorter than ``[logging] min_length_masked_secret`` (the registry's limit, read once)
    is registered all the same (never searched for), then warned about, or refused with
    :class:`SecretTooShort` unless ``allow_short_secret``. Redaction of the task process's own
    output is installed first, so nothing registered escapes it."""
    if value:
        task_redaction.install()
        minimum = scrub.registry().min_length()
        scrub.register(value, username=username, allow_short=True, warn_short=False)
        if len(value) < minimum:
            message = short_secret_message(source, len(value), minimum)
            if not allow_short_secret:
                raise scrub.SecretTooShort(
                    f"{message}; rotate it to a longer value, or pass allow_short_secret=True",
                    field="allow_short_secret",
                )
            log.warning("%s", message)
    return value


def name_the_object(error: CyberArkError, target: str) -> None:
    """Adds what the task asked for to a failure that does not name it (a failed logon names the
    login, a PVWA retrieve the account id), so the task log says which fetch failed."""
    bare = target.split(":", 1)[-1]
    if target not in error.message and bare not in error.message:
        error.message = f"{error.message} [while fetching {target}]"
        error.args = (error.message, *error.args[1:])


# -- off the event loop (triggers, deferrable operators) --------------------------------------------

MAX_WORKER_FETCHES = 8
"""Worker threads fetching for coroutines at once, per process: more awaits queue for a thread
(without blocking the loop) rather than opening more connections than a triggerer needs."""


class _Workers:
    """The bounded pool every async fetch runs in, and a count of the calls started in it that have
    not ended (a cancelled await leaves a started call running to its end: :func:`wait_for_workers`)."""

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.pid = 0
        self.running = 0
        self.lock = threading.Condition()

    def executor(self) -> ThreadPoolExecutor:
        with self.lock:
            # A pool made before a fork has no threads in the child (the triggerer forks its runner).
            if self.pool is None or self.pid != os.getpid():
                self.pool = ThreadPoolExecutor(MAX_WORKER_FETCHES, thread_name_prefix="cyberark-fetch")
                self.pid = os.getpid()
            return self.pool


_workers = _Workers()


class _Job:
    """One call for the pool: run at most once, and never after its await gave up on it before it started."""

    def __init__(self, call: Callable[[], T]) -> None:
        self.call: Callable[[], Any] = call
        self.state = "queued"

    def run(self) -> Any:
        with _workers.lock:
            if self.state != "queued":
                raise RuntimeError("the await of this fetch was cancelled before it started")
            self.state = "running"
            _workers.running += 1
        try:
            return self.call()
        finally:
            with _workers.lock:
                self.state = "done"
                _workers.running -= 1
                _workers.lock.notify_all()

    def abandon(self) -> None:
        with _workers.lock:
            if self.state == "queued":
                self.state = "abandoned"


async def off_loop(call: Callable[[], T]) -> T:
    """``call()`` in a worker thread, awaited without blocking the running event loop.

    The sync fetch path itself runs there (the one policy: same client, token cache, pacer and
    registration), so a coroutine gets exactly what a task gets. Through asgiref, not
    ``asyncio.to_thread``: the worker then knows the loop it was called from, so Airflow's
    ``mask_secret`` inside it reaches the triggerer's supervisor through that loop (Airflow 3.1's
    trigger comms use ``async_to_sync``, which would otherwise start a second loop on the same
    socket). A cancelled await whose call has not started yet never starts it; one that started
    runs to its end, bounded by the transport's deadline, and a value it fetched is registered
    whole, as if it had been returned.
    """
    from asgiref.sync import sync_to_async

    job = _Job(call)
    try:
        result: T = await sync_to_async(job.run, thread_sensitive=False, executor=_workers.executor())()
    finally:
        job.abandon()
    return result


def wait_for_workers(timeout: float) -> bool:
    """Whether every call :func:`off_loop` started has ended within ``timeout`` seconds (the
    tests' view of cancelled awaits; a triggerer shutting down can use it too)."""
    with _workers.lock:
        return _workers.lock.wait_for(lambda: _workers.running == 0, timeout)


class Fetcher:
    """Fetches from the CyberArk API one ``ConnectionSettings`` points at.

    :param name: what the settings came from (a conn id, or the backend), for messages and for
        the process-wide rate budget.
    :param reason: extra text for the audited reason; dag, task and run are always included.
    :param keep_sessions: keep one session for APIs that otherwise open one per fetch (PVWA).
    :param allow_short_secret: a fetched value too short to mask is warned about (the default: the
        hook, the secrets backend); False refuses it (the operators and the decorator by default).

    Thread-safe: threads sharing one fetcher share one client (and its keep-alive connection).
    APIs whose sessions must not outlive a fetch (PVWA) get a client per fetch instead.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        name: str,
        reason: str | None = None,
        keep_sessions: bool = False,
        allow_short_secret: bool = True,
    ) -> None:
        self.settings = settings
        self.name = name
        self.reason = reason
        self.allow_short_secret = allow_short_secret
        self.per_fetch_sessions = settings.spec.session_per_fetch and not keep_sessions
        """Whether each fetch opens and closes its own session; ``keep_sessions`` trades that for one
        logon per process (the secrets backend, which runs in every task process)."""
        self._client: BaseClient[Any, Any] | None = None
        self._lock = threading.Lock()
        self._checked_out: dict[str, str] = {}
        """Exclusive accounts fetched and not yet checked in: account id -> the reference fetched."""
        # Re-entrant: the SIGTERM handler (cyberark_ops.checkin) runs on the thread it interrupts.
        self._checkout_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Fetcher(name={self.name!r}, api={self.api!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a Fetcher holds a credential and cannot be pickled; rebuild it from its settings")

    @property
    def api(self) -> str:
        return self.settings.api

    @property
    def spec(self) -> ApiSpec:
        return self.settings.spec

    # -- the client ---------------------------------------------------------------------------------

    def build_client(self) -> BaseClient[Any, Any]:
        """A new client; every credential it will use to reach CyberArk is masked first."""
        return self.settings.build_client(on_event=self._on_event, register_secret=mask)

    def client(self) -> BaseClient[Any, Any]:
        """The long-lived client (not for APIs whose sessions are per fetch)."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                if self.per_fetch_sessions:
                    raise ConfigurationError(
                        f"{self.spec.label} sessions are per fetch; use get_secret / get_credential", field="api"
                    )
                self._client = self.build_client()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- references ---------------------------------------------------------------------------------

    def resolve(self, ref: str | CredentialRef) -> CredentialRef:
        """A typed reference; a bare string means an object of this source's API."""
        return self.settings.resolve(ref, source=self.name)

    # -- fetching -----------------------------------------------------------------------------------

    def get_credential(self, ref: str | CredentialRef, *, action: str = "get_credential") -> Credential:
        """A whole account: secret plus username, address, port, database and properties."""
        resolved = self.resolve(ref)
        reason = self.audit_reason()

        def fetch() -> Credential:
            if self.per_fetch_sessions:
                # The session lives for this fetch only, even when the task fails.
                with self.build_client() as session:
                    return session.get(resolved, reason=reason)
            return self.client().get(resolved, reason=reason)

        credential = self._observe(action, str(resolved), fetch)
        if credential.check_in_id is not None:
            with self._checkout_lock:
                self._checked_out.setdefault(credential.check_in_id, str(resolved))
        register_fetched(
            credential.secret,
            str(resolved),
            username=credential.username,
            allow_short_secret=self.allow_short_secret,
        )
        return credential

    def get_secret(self, ref: str | CredentialRef) -> str:
        """One secret value."""
        return self.get_credential(ref, action="get_secret").secret

    def get_secrets(self, refs: Iterable[str | CredentialRef]) -> dict[str, str]:
        """Several secrets, keyed as given; batched where the API can (Conjur)."""
        wanted = [(ref if isinstance(ref, str) else str(ref), self.resolve(ref)) for ref in refs]
        batch = self.spec.batch_fetcher()
        values: dict[str, str] = {}
        if batch is not None and not self.per_fetch_sessions:
            client = self.client()
            targets = [resolved for _, resolved in wanted]
            names = list(dict.fromkeys(str(target) for target in targets))
            listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            reason = self.audit_reason()
            fetched: Mapping[Any, str] = self._observe(
                "get_secrets",
                f"{len(names)} {self.spec.label} variables",
                lambda: batch(client, targets, reason),
                named=listed,
            )
            for resolved, value in fetched.items():
                values[str(resolved)] = register_fetched(
                    value, str(resolved), allow_short_secret=self.allow_short_secret
                )
        return {key: values[str(item)] if str(item) in values else self.get_secret(item) for key, item in wanted}

    # -- the same, awaited (each runs the method above in a worker thread: see off_loop) -------------

    async def aget_credential(self, ref: str | CredentialRef) -> Credential:
        return await off_loop(functools.partial(self.get_credential, ref))

    async def aget_secret(self, ref: str | CredentialRef) -> str:
        return await off_loop(functools.partial(self.get_secret, ref))

    async def aget_secrets(self, refs: Iterable[str | CredentialRef]) -> dict[str, str]:
        wanted = list(refs)  # an iterator is read here, on the loop, not in the worker
        return await off_loop(functools.partial(self.get_secrets, wanted))

    def audit_reason(self) -> str:
        return audit_reason(self.reason)

    # -- exclusive accounts: check-in after use -----------------------------------------------------

    @property
    def checked_out(self) -> tuple[str, ...]:
        """Account ids this fetcher has fetched for check-in (``check_in``) and not checked in yet."""
        with self._checkout_lock:
            return tuple(self._checked_out)

    def check_in_all(self) -> list[str]:
        """Checks in every exclusive account fetched so far; returns the ids whose check-in failed.

        Never raises: the task's outcome is its own, and a failed check-in is a WARNING line naming
        the account and what went wrong (CyberArk releases the account on its own: docs/operators.md).
        Each id is taken off the list before its call, so a second caller (the SIGTERM path while
        the task's own ``finally`` runs) never checks one in twice.
        """
        failed: list[str] = []
        while True:
            with self._checkout_lock:
                if not self._checked_out:
                    return failed
                account_id, target = self._checked_out.popitem()
            if not self._check_in_one(account_id, target):
                failed.append(account_id)

    def _check_in_one(self, account_id: str, target: str) -> bool:
        started = time.perf_counter()
        try:
            with self.build_client() as session:
                check_in = getattr(session, "check_in", None)
                if check_in is None:
                    raise ConfigurationError(f"{self.spec.label} has no check-in", field="check_in")
                check_in(account_id)
        except Exception as exc:  # noqa: BLE001 - a check-in failure is logged, never the task's failure
            # A CyberArk error's message names no secret by construction; of anything else, the type only.
            detail = str(exc) if isinstance(exc, CyberArkError) else "unexpected error"
            Stats.incr("cyberark.check_in.errors", tags={"api": self.api, "kind": type(exc).__name__})
            log.warning(
                "CyberArk check-in api=%s object=%s account_id=%s outcome=%s duration_ms=%.1f: %s; "
                "the account stays checked out until CyberArk releases it (platform policy)",
                self.api,
                target,
                account_id,
                type(exc).__name__,
                (time.perf_counter() - started) * 1000,
                detail,
            )
            return False
        log.info(
            "CyberArk check-in api=%s object=%s account_id=%s outcome=success duration_ms=%.1f",
            self.api,
            target,
            account_id,
            (time.perf_counter() - started) * 1000,
        )
        return True

    def test(self) -> tuple[bool, str]:
        """Authenticates only: fetches no secret (each fetch lands in CyberArk's audit log, and a
        made-up object floods it with not-found errors)."""
        try:
            client = self.build_client()
            try:
                return True, self.spec.run_check(client, self.settings)
            finally:
                client.close()
        except CyberArkError as exc:
            return False, str(exc)

    # -- observability ------------------------------------------------------------------------------

    def _on_event(self, name: str, tags: Mapping[str, str | float]) -> None:
        metric = _EVENT_METRICS.get(name)
        if metric is not None:
            Stats.incr(metric, tags={"api": str(tags.get("api", self.api))})

    def _observe(self, action: str, target: str, fetch: Callable[[], T], *, named: str | None = None) -> T:
        """Paces, times and logs one fetch: one INFO line on success, one WARNING on failure; a
        failure's message names ``named`` (default ``target``)."""
        budget = self.settings.rate_limit_per_second
        if budget:
            FIXED_RATE_BUDGETS.wait(self.name, budget, self.settings.deadline)
        started = time.perf_counter()
        try:
            result = fetch()
        except CyberArkError as exc:
            elapsed = time.perf_counter() - started
            kind = type(exc).__name__
            # A RateLimited failure is not counted in cyberark.rate_limited again: the transport
            # already counted every 429 it received, the last one included.
            Stats.incr("cyberark.fetch.errors", tags={"api": self.api, "kind": kind})
            name_the_object(exc, named or target)
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


__all__ = [
    "FIXED_RATE_BUDGETS",
    "Fetcher",
    "FixedRateBudgets",
    "audit_reason",
    "mask",
    "off_loop",
    "register_fetched",
    "short_secret_message",
    "wait_for_workers",
]
