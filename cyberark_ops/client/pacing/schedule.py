"""The schedule every pacing algorithm reads and every store keeps, and the one slot computation.

A fixed rate, the adaptive pacer and a retry after 429 all ask the same question: when may the
next request go? Answered once here, ``max(now, last + 1/rate)``, so no caller keeps its own copy.
"""

from __future__ import annotations

import math

MIN_RATE = 1.0
"""The adaptive pacer never goes slower than one request a second: ``Retry-After`` comes in whole
seconds, so a 429 already holds its caller that long; a lower pace only stalls a task process
after a first estimate made from one or two acceptances. A shared file holding less is forged."""
MAX_RATE = 1e9


class Schedule:
    """One origin's schedule; ``rate`` 0 is unpaced and ``measured`` 0 not yet measured (the shared
    file's encoding of None, kept in memory too so algorithms read the same from every store)."""

    __slots__ = ("held", "last_change", "last_cut", "last_slot", "measured", "rate", "total_at_cut")

    def __init__(self) -> None:
        self.rate = 0.0
        self.measured = 0.0
        self.last_slot = -math.inf
        self.last_cut = -math.inf
        self.last_change = 0.0
        self.held = False
        self.total_at_cut = 0


def next_slot(now: float, last_slot: float, rate: float) -> float:
    """The earliest send time at ``rate`` requests a second after a send at ``last_slot``."""
    return max(now, last_slot + 1.0 / rate)


__all__ = ["MAX_RATE", "MIN_RATE", "Schedule", "next_slot"]
