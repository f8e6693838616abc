"""The dev server's notion of time.

Everything time-dependent in the emulation (token expiry, rotation schedules, rate-limit refill)
reads this clock, so tests can jump ahead by minutes without sleeping, in-process or through the
admin API.
"""

from __future__ import annotations

import math
import threading
import time

YEAR = 365 * 24 * 3600.0
MAX_OFFSET = 1000 * YEAR
"""Far enough for any expiry test, yet keeps timestamps inside ``datetime``'s year 9999."""


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("the dev server clock only moves forward, by a finite amount")
        with self._lock:
            if self._offset + seconds > MAX_OFFSET:
                raise ValueError(f"the dev server clock may run at most {MAX_OFFSET:g} s ahead")
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset
