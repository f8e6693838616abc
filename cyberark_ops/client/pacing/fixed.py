"""A rate the user knows the server enforces (``rate_limit_per_second``): kept, never learned."""

from __future__ import annotations

from .schedule import Schedule
from .store import Store


class FixedRate:
    """Paces at ``per_second`` from the first request on; a 429 changes nothing (the caller still
    waits out its ``Retry-After``), since the user's figure is the one to trust."""

    queues_up_front = True
    """A rate that never changes can hand every waiting caller its slot at once (each sleeps its
    own wait in parallel, and one beyond the deadline fails at once instead of after queueing)."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second

    def idle(self, store: Store) -> bool:
        return False

    def before_slot(self, schedule: Schedule, now: float) -> None:
        schedule.rate = self.per_second

    def rate_limited(self, schedule: Schedule, store: Store, now: float) -> None:
        return None

    def __repr__(self) -> str:
        return f"FixedRate({self.per_second:g}/s)"


__all__ = ["FixedRate"]
