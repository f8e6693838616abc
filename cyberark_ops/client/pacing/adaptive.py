"""The default algorithm: unpaced until the server answers 429, then paced at what it accepted.

A 429 means the server's budget was empty at that moment, so between two 429s it accepted exactly
what it refilled: its rate times the time between them. Sends say nothing about the limit (a burst
of 50 in a few milliseconds "measures" thousands per second); acceptances do. While callers wait
for slots and no 429 comes, the rate grows: quickly from the first guess (a slow start), back up to
just below the measured rate after a cut, then not at all for a few seconds, then faster the
longer the server stays quiet. Pacing stops once the server has been quiet for a while. Users never
need to know the server's limit. The constants' measurements are in docs/hook.md.
"""

from __future__ import annotations

from .schedule import MAX_RATE, MIN_RATE, Schedule
from .store import Store

RECENT = 0.3
"""Seconds of acceptances counted to estimate the server's rate at a 429. Shorter windows give
absurd estimates from an initial burst; longer ones lag behind the server."""
EPISODE = 0.1
"""Seconds after a cut during which further 429s are echoes of requests already in flight: callers
take their slots one at a time, so at a cut only the slots of requests already sent or about to be
(one per process) were set by the old pace. A 429 after that is news, and a costly one for task
processes: each single-threaded process pays it with a whole ``Retry-After`` second."""
BELOW_ESTIMATE = 0.95
"""Pace this far below the measured acceptance rate: a rate just above the limit turns a few
percent of requests into 429s, each of which waits a whole ``Retry-After`` second."""
HOLD = 0.98
"""Where the rate rests after a cut until ``ACCELERATE_AFTER``: an estimate reads high by up to one
acceptance per window, and resting above the limit drains the server's burst into a 429 that some
caller pays with a Retry-After second."""
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
BUSY_ENOUGH = 10
"""Acceptances a window needs before its count is taken for the server's rate rather than luck."""


class AdaptiveRate:
    """Learns the server's rate from its 429s; stateless itself, so one instance serves any store."""

    queues_up_front = False
    """Callers take slots one at a time, each set from the rate of that moment: handing fifty
    waiting threads their slots up front queued them seconds deep at the rate of the moment they
    arrived, so a cut or a raise reached the wire only after that queue drained."""

    def idle(self, store: Store) -> bool:
        """Whether the store says unpaced (a lock-free read: only a zero is trusted)."""
        return store.peek_rate() == 0.0

    def before_slot(self, schedule: Schedule, now: float) -> None:
        """Releases a pace the server stopped needing, and raises one that held callers back."""
        if schedule.rate == 0.0:
            return
        if now - schedule.last_cut >= QUIET_RELEASE:
            schedule.rate = 0.0
            schedule.measured = 0.0
            return
        seconds = now - schedule.last_change
        if seconds >= 0.05:
            # Only a pace that held callers back needs raising: once demand falls below it (the
            # last fetches of a burst), probing would only risk a 429 on one of them.
            if schedule.held and not schedule.measured:
                schedule.rate *= START_GROWTH**seconds
            elif schedule.held:
                # Back to the measured rate quickly, then hold there (each probe above it costs some
                # caller a 429 and a Retry-After second), then probe faster the longer the server
                # stays quiet (as TCP CUBIC does): other processes may have left capacity.
                quiet = now - schedule.last_cut - ACCELERATE_AFTER
                if quiet > 0:
                    schedule.rate *= GROWTH ** (seconds * max(1.0, ACCELERATION * quiet))
                elif schedule.rate < schedule.measured * HOLD:
                    schedule.rate = min(schedule.measured * HOLD, schedule.rate * GROWTH**seconds)
            schedule.last_change = now

    def rate_limited(self, schedule: Schedule, store: Store, now: float) -> None:
        """Sets the rate from what the server accepted, once per episode."""
        since_cut = now - schedule.last_cut
        if since_cut < EPISODE:
            return
        total = store.total()
        # The budget was empty at this 429 and at the last cut's: in between it accepted what it
        # refilled. Over the recent window it may have started full, so that one reads high (by
        # the server's whole burst over the window), unless the window starts at the last cut, as
        # it does when a 429 follows soon after it. The larger of the estimates: a low estimate
        # is never corrected by a 429, a high one is.
        recent = store.recent(now, schedule.last_cut, RECENT) / min(RECENT, since_cut)
        # Nor the last window alone: task processes sleeping out a Retry-After together leave the
        # server idle in it, and the estimate read low. The busiest window since the cut is as
        # biased as the last one at worst, once it holds enough acceptances: the busiest of many
        # windows of a crawling server is one of its luckiest (against 2/s, 2 in 0.3 s read 6.7/s).
        busy = store.busiest(now, schedule.last_cut, RECENT)
        busiest = busy / RECENT if busy >= BUSY_ENOUGH else 0.0
        between = max(0, total - schedule.total_at_cut) / since_cut if schedule.rate else 0.0
        estimate = min(MAX_RATE, max(recent, busiest, between, MIN_RATE))
        if not schedule.rate:
            schedule.rate = estimate
        elif estimate < schedule.rate:
            # Straight to the estimate, however far: halving per episode took five episodes (and
            # some fetches' last retry) to come down from a burst of 50 against 5/s.
            schedule.rate = max(MIN_RATE, estimate * BELOW_ESTIMATE)
            schedule.measured = estimate
        else:
            schedule.rate = max(MIN_RATE, schedule.rate * CUT_FACTOR)
            schedule.measured = estimate
        schedule.total_at_cut = total
        schedule.last_cut = schedule.last_change = now

    def __repr__(self) -> str:
        return "AdaptiveRate()"


__all__ = [
    "ACCELERATE_AFTER",
    "ACCELERATION",
    "BELOW_ESTIMATE",
    "BUSY_ENOUGH",
    "CUT_FACTOR",
    "EPISODE",
    "GROWTH",
    "HOLD",
    "QUIET_RELEASE",
    "RECENT",
    "START_GROWTH",
    "AdaptiveRate",
]
