"""Audit log of every request the dev server answered.

Tests count vault calls with it, so each entry names the API, the action, who asked, for which
object and why, and how it ended. Values, passwords, API keys and tokens are never recorded: the
entry is built from what handlers put in ``AuditInfo``, never from request bodies or headers.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any


class AuditLog:
    def __init__(self, path: Path | None = None, max_in_memory: int = 100_000) -> None:
        self._events: list[dict[str, Any]] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._max = max_in_memory
        self._file = path.open("a", encoding="utf-8", buffering=1) if path else None

    def record(self, event: dict[str, Any], now: float) -> None:
        with self._lock:
            self._seq += 1
            entry = {
                "seq": self._seq,
                "time": dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="milliseconds"),
                **event,
            }
            self._events.append(entry)
            if len(self._events) > self._max:
                del self._events[: len(self._events) - self._max]
            if self._file is not None:
                self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def events(self, since: int = 0, **filters: str) -> list[dict[str, Any]]:
        with self._lock:
            selected = [e for e in self._events if e["seq"] > since]
        for key, wanted in filters.items():
            selected = [e for e in selected if str(e.get(key)) == wanted]
        return selected

    @property
    def last_seq(self) -> int:
        return self._seq

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def printable(text: str, limit: int = 255) -> str:
    """``text`` fit for an audit entry: printable characters only, at most ``limit`` of them."""
    return "".join(ch for ch in text if ch.isprintable())[:limit]
