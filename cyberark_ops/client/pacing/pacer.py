"""One pacer per origin: an algorithm (when may the next request go) over a store (where the
schedule lives), both injected, so tests and users choose them instead of reaching around a global.

Mapped tasks burst: fifty threads of one worker fetching at once overrun a CyberArk rate limit, and
retrying each request on its own only multiplies the 429s until some run out of retries. So every
request to one origin (scheme, host and port) first takes a slot from its pacer. ``Pacing`` is what
``TransportConfig.pacing`` holds: which pacer serves each origin. Its default, ``MACHINE_WIDE``,
gives every transport of the process the same adaptive pacer per origin, kept in a file shared by
every process of the user (on Airflow every task is a new process).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .adaptive import AdaptiveRate
from .fixed import FixedRate
from .schedule import MAX_RATE, MIN_RATE, Schedule, next_slot
from .store import LocalStore, Store, store_for


class Algorithm(Protocol):
    """Decides the rate; the pacer hands out the slots it implies."""

    @property
    def queues_up_front(self) -> bool:
        """Whether waiting callers may all hold slots at once (else they take turns)."""
        ...

    def idle(self, store: Store) -> bool: ...

    def before_slot(self, schedule: Schedule, now: float) -> None: ...

    def rate_limited(self, schedule: Schedule, store: Store, now: float) -> None: ...


class Pacer:
    """The send schedule of one origin; thread-safe, and cheap when idle (one read, one count)."""

    def __init__(
        self,
        algorithm: Algorithm | None = None,
        store: Store | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Adaptive over a process-local store unless told otherwise."""
        self._algorithm: Algorithm = algorithm if algorithm is not None else AdaptiveRate()
        self._store: Store = store if store is not None else LocalStore()
        self._clock = clock
        self._gate = threading.Lock()

    def __repr__(self) -> str:
        return f"Pacer({self._algorithm!r}, {self._store!r})"

    @property
    def shared(self) -> bool:
        """Whether the schedule is shared with other processes (False where it cannot be)."""
        return self._store.shared

    @property
    def rate(self) -> float | None:
        """Requests per second it paces at, or None when unpaced."""
        with self._store.transaction(self._clock()) as schedule:
            return schedule.rate or None

    @rate.setter
    def rate(self, value: float | None) -> None:
        with self._store.transaction(self._clock()) as schedule:
            schedule.rate = min(MAX_RATE, max(MIN_RATE, value)) if value else 0.0

    @property
    def measured(self) -> float | None:
        """The last estimate of the server's rate (from acceptances between two 429s), or None."""
        with self._store.transaction(self._clock()) as schedule:
            return schedule.measured or None

    def forget(self) -> None:
        """Back to unpaced, for every process sharing the schedule."""
        self._store.clear()

    def reserve(self, deadline: float) -> float | None:
        """Seconds to wait before sending, or None when the slot lies beyond ``deadline``."""
        if self._algorithm.idle(self._store):
            return 0.0
        with self._store.transaction(self._clock()) as schedule:
            now = self._clock()  # after the lock: its wait must not lengthen ours
            self._algorithm.before_slot(schedule, now)
            if schedule.rate == 0.0:
                return 0.0
            # The gap after the last slot follows the rate now, so a rate that grew shortens it.
            slot = next_slot(now, schedule.last_slot, schedule.rate)
            if slot >= deadline:
                return None
            schedule.last_slot = slot
            schedule.held = slot > now
            return slot - now

    def next_free(self) -> float:
        """Seconds until the next slot would be free (0 when unpaced), without taking it."""
        if self._algorithm.idle(self._store):
            return 0.0
        with self._store.transaction(self._clock()) as schedule:
            now = self._clock()
            self._algorithm.before_slot(schedule, now)
            if schedule.rate == 0.0:
                return 0.0
            return next_slot(now, schedule.last_slot, schedule.rate) - now

    def take_turn(self, deadline: float, sleep: Callable[[float], None]) -> bool:
        """Waits for this caller's slot; False when none is free before ``deadline``.

        Under an adaptive rate callers wait one at a time for the next slot, each slot set from the
        rate of that moment; across processes each holds at most one slot ahead, so eight processes
        queue eight deep. Under a fixed rate every caller reserves at once and sleeps on its own.
        """
        if self._algorithm.idle(self._store):
            return True
        if self._algorithm.queues_up_front:
            return self._wait(self.reserve(deadline), sleep)
        if not self._gate.acquire(timeout=max(0.0, deadline - self._clock())):
            return False
        try:
            return self._wait(self.reserve(deadline), sleep)
        finally:
            self._gate.release()

    @staticmethod
    def _wait(wait: float | None, sleep: Callable[[float], None]) -> bool:
        if wait is None:
            return False
        if wait > 0:
            sleep(wait)
        return True

    def accepted(self) -> None:
        """The server answered (anything but 429): it spent one unit of its budget on us."""
        self._store.count(self._clock())

    def rate_limited(self) -> None:
        """A 429 arrived: the algorithm may change the rate.

        ``Retry-After`` stays with the call that received it: holding every call to the origin
        for it would fail unrelated fetches whose deadline is shorter than the wait.
        """
        with self._store.transaction(self._clock()) as schedule:
            self._algorithm.rate_limited(schedule, self._store, self._clock())


class Pacing:
    """Which pacer serves each origin: built once per origin (and per process), then shared by
    every transport configured with this object, so threads with separate clients share it too."""

    def __init__(self, build: Callable[[str], Pacer], *, name: str = "custom") -> None:
        self._build = build
        self._name = name
        self._lock = threading.Lock()
        self._pacers: dict[str, Pacer] = {}
        self._pid = os.getpid()

    @classmethod
    def machine_wide(cls, directory: Path | None = None) -> Pacing:
        """Adaptive, shared by every process of this user through a file per origin in
        ``directory`` (default: see ``state_directory``); process-local where no file can be made."""

        def build(origin: str) -> Pacer:
            return Pacer(AdaptiveRate(), store_for(origin, time.monotonic, directory))

        return cls(build, name="machine-wide")

    @classmethod
    def local(cls, clock: Callable[[], float] = time.monotonic) -> Pacing:
        """Adaptive, learned by this process alone and forgotten with this object."""
        return cls(lambda _origin: Pacer(AdaptiveRate(), LocalStore(), clock=clock), name="local")

    @classmethod
    def fixed(cls, per_second: float) -> Pacing:
        """At most ``per_second`` requests a second to each origin, from this process."""
        return cls(lambda _origin: Pacer(FixedRate(per_second), LocalStore()), name=f"fixed {per_second:g}/s")

    def pacer(self, origin: str) -> Pacer:
        """The pacer of ``origin`` (any key: a fixed budget is kept per source name)."""
        if self._pid != os.getpid():
            self._forked()
        pacer = self._pacers.get(origin)
        if pacer is None:
            with self._lock:
                pacer = self._pacers.get(origin)
                if pacer is None:
                    pacer = self._pacers[origin] = self._build(origin)
        return pacer

    def _forked(self) -> None:
        # A forked child shares its parent's descriptors, and with them the parent's flock: it must
        # open its own. Its locks may also have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        self._pacers = {}
        self._pid = os.getpid()

    def forget(self) -> None:
        """Forgets what was learned, in shared files too (a benchmark compares cases against one
        server; tests start each server on a new port, so rarely need it)."""
        with self._lock:
            for pacer in self._pacers.values():
                pacer.forget()
            self._pacers.clear()

    def __repr__(self) -> str:
        return f"Pacing({self._name})"

    def __copy__(self) -> Pacing:
        return self  # one registry: a copied config must share its pacers, not start unpaced

    def __deepcopy__(self, memo: dict[int, object]) -> Pacing:
        return self


MACHINE_WIDE = Pacing.machine_wide()
"""The default of ``TransportConfig.pacing``: what the process's transports share."""


__all__ = ["MACHINE_WIDE", "Algorithm", "Pacer", "Pacing"]
