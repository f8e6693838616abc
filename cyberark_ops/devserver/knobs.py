"""Behaviour knobs: latency, injected faults and a rate limit, changeable while the server runs.

Endpoints are named ``<api>.<action>`` (``conjur.retrieve``, ``ccp.get_password``); knob entries
match them with shell-style globs, so ``conjur.*`` or ``*`` cover many at once.
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload

from .errors import SeedError

FAULT_KINDS = ("status", "drop", "malformed", "content_type")

YEAR = 365 * 24 * 3600.0
MAX_TTL = 10 * YEAR
"""Upper bound for token lifetimes, rotation periods and change windows."""
MAX_CLOCK_STEP = 100 * YEAR
MAX_LATENCY = 60.0
MAX_RATE = 1_000_000.0
MIN_RATE = 0.001
"""Below this the Retry-After arithmetic overflows; 0 still switches the limit off."""
MAX_FAULT_COUNT = 1_000_000_000
MAX_RETRY_AFTER = 86_400


@overload
def finite_number(value: Any, where: str, *, low: float, high: float, integer: Literal[True]) -> int: ...
@overload
def finite_number(value: Any, where: str, *, low: float, high: float, integer: Literal[False] = False) -> float: ...
def finite_number(value: Any, where: str, *, low: float, high: float, integer: bool = False) -> float:
    """The one gate for numbers from admin bodies and seeds.

    JSON lets through NaN, Infinity, 1e308 and 400-digit integers, and Python counts True as 1;
    any of those reaching the clock, a sleep or a timestamp used to kill or stall the server.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SeedError(where, "must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SeedError(where, "must be a finite number")
        if integer and not value.is_integer():
            raise SeedError(where, "must be a whole number")
    if not low <= value <= high:
        raise SeedError(where, f"must be between {low:g} and {high:g}")
    return int(value) if integer else float(value)


def _optional_int(data: dict[str, Any], name: str, where: str, low: int, high: int) -> int | None:
    value = data.get(name)
    return None if value is None else finite_number(value, f"{where}.{name}", low=low, high=high, integer=True)


@dataclass
class Fault:
    endpoint: str = "*"
    kind: str = "status"
    """``status``: answer with ``status``; ``drop``: close the connection without an answer;
    ``malformed``: 200 with a truncated JSON body; ``content_type``: 200 with an HTML body."""
    status: int = 503
    rate: float = 1.0
    """Probability that a matching request is hit."""
    count: int | None = None
    """Hit at most this many requests, then the fault removes itself."""
    retry_after: int | None = None
    id: int = 0

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Fault:
        if not isinstance(data, dict):
            raise SeedError(where, "must be a mapping")
        unknown = set(data) - {"endpoint", "kind", "status", "rate", "count", "retry_after"}
        if unknown:
            raise SeedError(where, f"unknown field(s) {sorted(unknown)}")
        fault = cls(
            endpoint=str(data.get("endpoint", "*")),
            kind=str(data.get("kind", "status")),
            status=finite_number(data.get("status", 503), f"{where}.status", low=100, high=599, integer=True),
            rate=finite_number(data.get("rate", 1.0), f"{where}.rate", low=0.0, high=1.0),
            count=_optional_int(data, "count", where, 1, MAX_FAULT_COUNT),
            retry_after=_optional_int(data, "retry_after", where, 0, MAX_RETRY_AFTER),
        )
        if fault.kind not in FAULT_KINDS:
            raise SeedError(f"{where}.kind", f"must be one of {', '.join(FAULT_KINDS)}")
        return fault


@dataclass
class RateLimit:
    per_second: float
    burst: float

    def to_dict(self) -> dict[str, float]:
        return {"per_second": self.per_second, "burst": self.burst}


@dataclass
class Knobs:
    latency: dict[str, float] = field(default_factory=dict)
    """Endpoint glob -> seconds added before answering."""
    faults: list[Fault] = field(default_factory=list)
    rate_limit: RateLimit | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)
    _tokens: float = 0.0
    _refilled_at: float | None = None
    _next_fault_id: int = 1

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": dict(self.latency),
                "faults": [asdict(f) for f in self.faults],
                "rate_limit": self.rate_limit.to_dict() if self.rate_limit else None,
            }

    def set_latency(self, endpoint: str, seconds: Any, where: str = "latency") -> None:
        seconds = finite_number(seconds, where, low=0.0, high=MAX_LATENCY)
        with self._lock:
            if seconds == 0:
                self.latency.pop(endpoint, None)
            else:
                self.latency[endpoint] = seconds

    def latency_for(self, endpoint: str) -> float:
        with self._lock:
            return sum(s for glob, s in self.latency.items() if fnmatch.fnmatchcase(endpoint, glob))

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = self._next_fault_id
            self._next_fault_id += 1
            self.faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def pick_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if not fnmatch.fnmatchcase(endpoint, fault.endpoint):
                    continue
                if fault.rate < 1.0 and self._random.random() >= fault.rate:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return fault
            return None

    def set_rate_limit(self, per_second: Any, burst: Any = None, where: str = "rate_limit") -> None:
        prefix = f"{where}." if where else ""
        if per_second is not None:
            per_second = finite_number(per_second, f"{prefix}per_second", low=0.0, high=MAX_RATE)
            if 0 < per_second < MIN_RATE:
                raise SeedError(f"{prefix}per_second", f"must be 0 (off) or at least {MIN_RATE:g}")
        if burst is not None:
            burst = finite_number(burst, f"{prefix}burst", low=0.0, high=MAX_RATE)
        with self._lock:
            if per_second is None or per_second <= 0:
                self.rate_limit = None
                return
            self.rate_limit = RateLimit(per_second, burst if burst and burst > 0 else max(1.0, per_second))
            self._tokens = self.rate_limit.burst
            self._refilled_at = None

    def take_token(self, now: float) -> int | None:
        """Spends one request of the budget. Returns None if allowed, else seconds for Retry-After."""
        with self._lock:
            limit = self.rate_limit
            if limit is None:
                return None
            if self._refilled_at is None:
                self._refilled_at = now
            self._tokens = min(limit.burst, self._tokens + (now - self._refilled_at) * limit.per_second)
            self._refilled_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / limit.per_second))

    @classmethod
    def from_seed(cls, data: Any, where: str = "devserver") -> Knobs:
        knobs = cls()
        if data is None:
            return knobs
        if not isinstance(data, dict):
            raise SeedError(where, "must be a mapping")
        latency = data.get("latency") or {}
        if not isinstance(latency, dict):
            raise SeedError(f"{where}.latency", "must map endpoint globs to seconds")
        for glob, seconds in latency.items():
            knobs.set_latency(str(glob), seconds, f"{where}.latency.{glob}")
        for index, fault in enumerate(data.get("faults") or []):
            knobs.add_fault(Fault.from_dict(fault, f"{where}.faults[{index}]"))
        rate = data.get("rate_limit")
        if rate is not None:
            if isinstance(rate, dict):
                knobs.set_rate_limit(rate.get("per_second", 0), rate.get("burst"), f"{where}.rate_limit")
            else:
                knobs.set_rate_limit(rate, where=f"{where}.rate_limit")
        return knobs
