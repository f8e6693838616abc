"""Process-wide pacing per server, learned from what it accepts once it starts answering 429.

Mapped tasks burst: fifty threads of one worker fetching at once overrun a CyberArk rate limit,
and retrying each request on its own only multiplies the 429s until some run out of retries.
So every request to one origin (scheme, host and port) first takes a slot from a shared pacer,
unpaced until the server answers 429. From then on the rate is set from the answers the server
*accepted*, never from what was sent: a 429 means its budget was empty at that moment, so between
two 429s it accepted exactly what it refilled, its rate times the time between them. Sends say
nothing about the limit (a burst of 50 in a few milliseconds "measures" thousands per second);
acceptances do. While callers wait for slots and no 429 comes, the rate grows: quickly from the
first guess (a slow start), back up to just below the measured rate after a cut, then not at all
for a few seconds, then faster the longer the server stays quiet. Pacing stops once the server
has been quiet for a while. Users never need to know the server's limit.

Each process learns on its own. Eight task processes each see only their own share of the
acceptances and each pay a whole ``Retry-After`` second per 429 (the server rounds a 10 ms wait
up to 1 s), so they use the limit less fully than threads of one process (benchmark figure 4).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

RECENT = 0.3
"""Seconds of acceptances counted to estimate the server's rate at a 429. Shorter windows give
absurd estimates from an initial burst (a 20/s server with a burst of 20 looked like 140/s with a
0.25 s window of sends); longer ones lag behind the server."""
EPISODE = 0.3
"""Seconds after a cut during which further 429s are echoes of requests already in flight."""
BELOW_ESTIMATE = 0.95
"""Pace this far below the measured acceptance rate: a rate just above the limit turns a few
percent of requests into 429s, each of which waits a whole ``Retry-After`` second."""
HOLD = 0.98
"""Where the rate rests after a cut until ``ACCELERATE_AFTER``: an estimate reads high by up to one
acceptance per window, and resting above the limit drains the server's burst into a 429 that some
caller pays with a Retry-After second (at the end of a burst, the burst's own length)."""
CUT_FACTOR = 0.85
"""Applied when a 429 comes although the pace is already below what the server accepted."""
START_GROWTH = 8.0
"""Growth per second before the first measured estimate: the first guess, made from an instant,
is usually low (a burst of 10 against 100/s measures 33/s), and every second below the limit is
lost for good."""
GROWTH = 1.1
"""Growth per second once the rate was measured: probes again for capacity freed by other
processes without turning many requests into 429s."""
ACCELERATE_AFTER = 3.0
"""Seconds without a 429 after which the rate grows again beyond the measured one, faster each
second: one client near the limit is cut every second or two and stays near it, while a task
process left with a small share after the others finished climbs back within seconds."""
ACCELERATION = 2.0
"""How much faster the growth gets with each further quiet second (in powers of ``GROWTH``)."""
QUIET_RELEASE = 60.0
"""Seconds without a 429 after which pacing stops."""
MIN_RATE = 1.0
"""No slower than one request a second: ``Retry-After`` comes in whole seconds, so a 429 already
holds its caller that long; a lower pace only stalls a task process after a first estimate made
from one or two acceptances."""


class Pacer:
    """The send schedule of one origin; thread-safe, cheap when unpaced (one lock, one append)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._gate = threading.Lock()
        self.rate: float | None = None
        self.measured: float | None = None
        """The last estimate of the server's rate (from acceptances between two 429s), or None."""
        self._last_slot = float("-inf")
        self._held = False
        self._accepted: deque[float] = deque()
        self._accepted_since_cut = 0
        self._last_cut = float("-inf")
        self._last_change = 0.0

    def reserve(self, deadline: float) -> float | None:
        """Seconds to wait before sending, or None when the slot lies beyond ``deadline``."""
        with self._lock:
            if self.rate is None:
                return 0.0
            now = self._clock()
            self._recover(now)
            if self.rate is None:
                return 0.0
            # The gap after the last slot follows the rate now, so a rate that grew shortens it.
            slot = max(now, self._last_slot + 1.0 / self.rate)
            if slot >= deadline:
                return None
            self._last_slot = slot
            self._held = slot > now
            return slot - now

    def take_turn(self, deadline: float, sleep: Callable[[float], None]) -> bool:
        """Waits for this caller's slot; False when none is free before ``deadline``.

        Callers wait one at a time for the next slot, each slot set from the rate of that moment.
        Handing every waiting thread its slot up front would queue fifty threads seconds deep at
        the rate of the moment they arrived: a cut or a raise would reach the wire only after that
        queue drained (at 20/s the pace lagged 2.5 s, and the overshoot spent fetches' retries).
        """
        if self.rate is None:
            return True
        if not self._gate.acquire(timeout=max(0.0, deadline - self._clock())):
            return False
        try:
            wait = self.reserve(deadline)
            if wait is None:
                return False
            if wait > 0:
                sleep(wait)
            return True
        finally:
            self._gate.release()

    def accepted(self) -> None:
        """The server answered (anything but 429): it spent one unit of its budget on us."""
        with self._lock:
            now = self._clock()
            self._accepted.append(now)
            self._accepted_since_cut += 1
            horizon = now - RECENT
            while self._accepted[0] < horizon:
                self._accepted.popleft()

    def rate_limited(self) -> None:
        """A 429 arrived: set the rate from what the server accepted, once per episode.

        ``Retry-After`` stays with the call that received it: holding every call to the origin
        for it would fail unrelated fetches whose deadline is shorter than the wait.
        """
        with self._lock:
            now = self._clock()
            since_cut = now - self._last_cut
            if since_cut < EPISODE:
                return
            horizon = now - RECENT
            while self._accepted and self._accepted[0] < horizon:
                self._accepted.popleft()
            # The budget was empty at this 429 and at the last cut's: in between it accepted what it
            # refilled. Over the recent window it may have started full, so that one reads high.
            # The larger of the two: a low estimate is never corrected by a 429, a high one is.
            recent = len(self._accepted) / RECENT
            between = self._accepted_since_cut / since_cut if self.rate is not None else 0.0
            estimate = max(recent, between, MIN_RATE)
            if self.rate is None:
                self.rate = estimate
            elif estimate < self.rate:
                # Straight to the estimate, however far: halving per episode took five episodes (and
                # some fetches' last retry) to come down from a burst of 50 against 5/s.
                self.rate = max(MIN_RATE, estimate * BELOW_ESTIMATE)
                self.measured = estimate
            else:
                self.rate = max(MIN_RATE, self.rate * CUT_FACTOR)
                self.measured = estimate
            self._accepted_since_cut = 0
            self._last_cut = self._last_change = now

    def _recover(self, now: float) -> None:
        assert self.rate is not None
        if now - self._last_cut >= QUIET_RELEASE:
            self.rate = None
            self.measured = None
            return
        seconds = now - self._last_change
        if seconds >= 0.05:
            # Only a pace that held callers back needs raising: once demand falls below it (the
            # last fetches of a burst), probing would only risk a 429 on one of them.
            if self._held and self.measured is None:
                self.rate *= START_GROWTH**seconds
            elif self._held:
                # Back to the measured rate quickly, then hold there (each probe above it costs some
                # caller a 429 and a Retry-After second, which at the end of a burst is its length),
                # then probe faster the longer the server stays quiet (as TCP CUBIC does): seconds
                # after a cut, other processes may have left capacity.
                quiet = now - self._last_cut - ACCELERATE_AFTER
                if quiet > 0:
                    self.rate *= GROWTH ** (seconds * max(1.0, ACCELERATION * quiet))
                elif self.measured is not None and self.rate < self.measured * HOLD:
                    self.rate = min(self.measured * HOLD, self.rate * GROWTH**seconds)
            self._last_change = now


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
