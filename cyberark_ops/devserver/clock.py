"""The dev server's notion of time.

Everything time-dependent in the emulation (token expiry, rotation schedules, rate-limit refill)
reads this clock, so tests can jump ahead by minutes without sleeping, in-process or through the
admin API.
"""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the dev server clock only moves forward")
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset
