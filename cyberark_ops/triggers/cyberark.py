"""``CyberArkSecretTrigger``: a deferred task waits in the triggerer until its secrets are readable,
or until one of them changes (a rotation), without holding a worker slot and without blocking the
triggerer's loop.

The event it fires is stored in the metadata DB (the task instance's ``next_kwargs``) and handed to
the task, so it holds only facts about the secrets, never a value or a digest of one (a digest of a
short password is a dictionary attack away from the password). The task fetches the value itself
when it resumes, in its own process, masked there as every fetch is.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._compat import first_attribute
from ..hooks.cyberark import CyberArkHook

BaseTrigger: Any = first_attribute("BaseTrigger", "airflow.triggers.base")
TriggerEvent: Any = first_attribute("TriggerEvent", "airflow.triggers.base")

MIN_POLL_INTERVAL = 1.0
"""Seconds; a faster poll would read the vault (and fill its audit log) for no rotation ever that fast."""


class CyberArkSecretTrigger(BaseTrigger):  # type: ignore[misc]
    """Fetches ``refs`` in the triggerer and fires one event saying what it found.

    :param refs: references, as ``CyberArkHook.get_secrets`` takes them (bare ids mean the
        connection's API). Only these strings reach the event.
    :param cyberark_conn_id: the ``cyberark`` connection, looked up in the triggerer.
    :param wait_for_change: False fires ``readable`` once every ref could be read; True keeps the
        first values in memory only and polls until one of them changes, then fires ``changed``.
    :param poll_interval: seconds between reads while waiting for a change.
    :param reason: extra text for the audited reason (the DAG, task and run are added).

    Events (``event.payload``): ``{"status": "readable", "refs": [...]}``,
    ``{"status": "changed", "refs": [...], "changed": [...], "polls": n}``, or
    ``{"status": "error", "refs": [...], "error": "<error type>", "message": "<scrubbed text>"}``.
    A triggerer restart starts the wait for a change again from the values read then.
    """

    def __init__(
        self,
        refs: Sequence[str],
        cyberark_conn_id: str = CyberArkHook.default_conn_name,
        *,
        wait_for_change: bool = False,
        poll_interval: float = 60.0,
        reason: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(refs, str) or not refs or not all(isinstance(ref, str) and ref for ref in refs):
            raise ValueError("refs: a non-empty list of references (strings), not a single string")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
            raise ValueError("poll_interval: a number of seconds")
        if not math.isfinite(poll_interval) or poll_interval < MIN_POLL_INTERVAL:
            raise ValueError(f"poll_interval: at least {MIN_POLL_INTERVAL:g} second(s), finite")
        self.refs = list(dict.fromkeys(refs))
        self.cyberark_conn_id = cyberark_conn_id
        self.wait_for_change = bool(wait_for_change)
        self.poll_interval = float(poll_interval)
        self.reason = reason

    def __repr__(self) -> str:
        return f"CyberArkSecretTrigger(refs={self.refs!r}, cyberark_conn_id={self.cyberark_conn_id!r})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "refs": list(self.refs),
                "cyberark_conn_id": self.cyberark_conn_id,
                "wait_for_change": self.wait_for_change,
                "poll_interval": self.poll_interval,
                "reason": self.reason,
            },
        )

    def audited_reason(self) -> str | None:
        """The reason the vault audits: the deferred task's DAG, task and run (a trigger has no task
        context for the hook to read them from), then ``reason``."""
        ti = getattr(self, "task_instance", None)
        parts = []
        if ti is not None:
            parts = [f"dag={ti.dag_id}", f"task={ti.task_id}", f"run={ti.run_id}"]
            map_index = getattr(ti, "map_index", None)
            if isinstance(map_index, int) and map_index >= 0:
                parts.append(f"map={map_index}")
        if self.reason:
            parts.append(self.reason)
        return " ".join(parts) or None

    async def run(self) -> AsyncIterator[Any]:
        from ..client import CyberArkError
        from ..scrub import scrub

        hook = CyberArkHook(self.cyberark_conn_id, reason=self.audited_reason())
        try:
            first = await hook.aget_secrets(self.refs)
            if not self.wait_for_change:
                yield TriggerEvent({"status": "readable", "refs": list(self.refs)})
                return
            polls = 0
            while True:
                await asyncio.sleep(self.poll_interval)
                polls += 1
                now = await hook.aget_secrets(self.refs)
                changed = [ref for ref in self.refs if now[ref] != first[ref]]
                if changed:
                    yield TriggerEvent(
                        {"status": "changed", "refs": list(self.refs), "changed": changed, "polls": polls}
                    )
                    return
        except CyberArkError as error:
            # Error texts name objects, never values; scrubbed all the same before they are stored.
            yield TriggerEvent(
                {
                    "status": "error",
                    "refs": list(self.refs),
                    "error": type(error).__name__,
                    "message": scrub(str(error)),
                }
            )
        finally:
            hook.close()


__all__ = ["MIN_POLL_INTERVAL", "CyberArkSecretTrigger"]
