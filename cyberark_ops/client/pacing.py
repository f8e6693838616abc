"""Process-wide pacing per server, learned from its 429 answers.

Mapped tasks burst: fifty threads of one worker fetching at once overrun a CyberArk rate limit,
and retrying each request on its own only multiplies the 429s until some run out of retries.
So every request to one origin (scheme, host and port) first takes a slot from a shared pacer:
unpaced until the server answers 429, then paced at a rate cut multiplicatively on each 429
episode and raised slowly while none come (AIMD, as TCP does), and unpaced again once the
server has been quiet for a while. Users never need to know the server's limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CUT_FACTOR = 0.7
"""Multiplier applied to the measured send rate on a 429 episode."""
CUT_INTERVAL = 1.0
"""Seconds during which further 429s belong to the same episode (they were already in flight)."""
RAISE_FACTOR = 1.15
"""Multiplier per second without a 429: back near the limit within seconds. With 1.05 it took a
minute, so a 500-fetch burst against a 100 req/s server ran at a fifth of the limit
(benchmarks/concurrency.py)."""
MIN_WINDOW = 1.0
"""Shortest window a send rate is measured over. A burst a few milliseconds old measures an
absurd rate: with 0.25 s a 50-thread burst against a 20 req/s server learned 140/s and took six
cut episodes to get down, and fetches ran out of retries (tests/hooks/test_hook_hardening.py)."""
QUIET_RELEASE = 60.0
"""Seconds without a 429 after which pacing stops."""
MIN_RATE = 0.2


class Pacer:
    """The send schedule of one origin; thread-safe, cheap when unpaced (one lock, two additions)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.rate: float | None = None
        self._next_slot = 0.0
        self._window_start = 0.0
        self._window_sends = 0
        self._last_window_sends = 0
        self._last_cut = float("-inf")
        self._last_change = 0.0

    def reserve(self, deadline: float) -> float | None:
        """Seconds to wait before sending, or None when the slot lies beyond ``deadline``."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= 1.0:
                self._last_window_sends = self._window_sends if now - self._window_start < 2.0 else 0
                self._window_start, self._window_sends = now, 0
            self._window_sends += 1
            if self.rate is None:
                return 0.0
            self._recover(now)
            slot = max(now, self._next_slot)
            if slot >= deadline:
                self._window_sends -= 1
                return None
            if self.rate is not None:
                self._next_slot = slot + 1.0 / self.rate
            return slot - now

    def rate_limited(self) -> None:
        """A 429 arrived: cut the rate, once per episode.

        ``Retry-After`` stays with the call that received it: holding every call to the origin
        for it would fail unrelated fetches whose deadline is shorter than the wait.
        """
        with self._lock:
            now = self._clock()
            if now - self._last_cut < CUT_INTERVAL:
                return
            elapsed = max(now - self._window_start, 1e-3)
            measured = max(self._window_sends / max(elapsed, MIN_WINDOW), float(self._last_window_sends))
            current = self.rate if self.rate is not None else max(measured, MIN_RATE)
            self.rate = max(MIN_RATE, min(current, measured) * CUT_FACTOR)
            self._last_cut = self._last_change = now

    def _recover(self, now: float) -> None:
        if self.rate is None:
            return
        if now - self._last_cut >= QUIET_RELEASE:
            self.rate = None
            return
        seconds = now - self._last_change
        if seconds >= 1.0:
            self.rate *= RAISE_FACTOR ** int(seconds)
            self._last_change += int(seconds)


_PACERS: dict[str, Pacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(origin: str) -> Pacer:
    """The process-wide pacer of ``origin``: shared by every client and hook that talks to it."""
    pacer = _PACERS.get(origin)
    if pacer is None:
        with _PACERS_LOCK:
            pacer = _PACERS.setdefault(origin, Pacer())
    return pacer


def reset_pacers() -> None:
    """Forgets what was learned (tests start each server on a new port, so rarely needed)."""
    with _PACERS_LOCK:
        _PACERS.clear()


__all__ = ["Pacer", "pacer_for", "reset_pacers"]
