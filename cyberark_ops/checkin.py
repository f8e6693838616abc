"""Exclusive PVWA accounts a task process still has checked out, checked in however the task ends.

A task ends in one of three ways for us: its body returns or raises (the operator's or decorator's
``finally``), its operator's ``on_kill`` runs, or the supervisor sends SIGTERM (a task marked failed
or cleared, a timeout). Airflow 3's task runner answers SIGTERM by calling ``ti.task.on_kill()`` only
(``airflow.sdk.execution_time.task_runner``), which a ``@task`` function never sees; so the first
hook holding a checkout chains a handler in front of the runner's, and every path calls
``release``. A hook's ``check_in_all`` takes each id off its list before the call, so two paths
racing (SIGTERM during the ``finally``) check an account in once.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType

    from .hooks.cyberark import CyberArkHook

log = logging.getLogger("cyberark_ops.hooks.cyberark")

_HELD: dict[int, CyberArkHook] = {}
# Re-entrant: the SIGTERM handler runs on the main thread, possibly while it holds the lock.
_LOCK = threading.RLock()
_INSTALLED: list[bool] = []
"""Non-empty once the handler is chained (a list: no ``global`` rebinding)."""


def hold(hook: CyberArkHook) -> None:
    """Keep ``hook`` until ``release``: it has exclusive accounts to check in."""
    if not hook.checked_out:
        return
    with _LOCK:
        _HELD[id(hook)] = hook
    release_on_sigterm()


def release(hook: CyberArkHook) -> list[str]:
    """Checks in what ``hook`` holds (failures are logged, never raised); returns the failed ids."""
    with _LOCK:
        _HELD.pop(id(hook), None)
    return hook.check_in_all()


def release_all() -> list[str]:
    """Checks in everything held in this process."""
    with _LOCK:
        hooks = list(_HELD.values())
        _HELD.clear()
    failed: list[str] = []
    for hook in hooks:
        failed.extend(hook.check_in_all())
    return failed


def held() -> int:
    """How many hooks hold checkouts (for tests and the doctor)."""
    with _LOCK:
        return len(_HELD)


def release_on_sigterm() -> None:
    """Chains a SIGTERM handler that checks everything in before the task runner's own handler.

    Only in front of a Python handler (the task runner's): with none, nobody expects cleanup on
    SIGTERM and the default (die) stays. Only from the main thread, where Python allows it; the
    operators' ``on_kill`` covers the rest.
    """
    with _LOCK:
        if _INSTALLED or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return

        def on_term(signum: int, frame: FrameType | None) -> Any:
            try:
                release_all()
            except Exception as exc:  # noqa: BLE001 - never stop the runner's own handling
                log.warning("CyberArk check-in on SIGTERM failed (%s)", type(exc).__name__)
            return previous(signum, frame)

        signal.signal(signal.SIGTERM, on_term)
        _INSTALLED.append(True)


__all__ = ["held", "hold", "release", "release_all", "release_on_sigterm"]
