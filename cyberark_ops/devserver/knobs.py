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
from typing import Any

from .errors import SeedError

FAULT_KINDS = ("status", "drop", "malformed", "content_type")


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
            status=int(data.get("status", 503)),
            rate=float(data.get("rate", 1.0)),
            count=None if data.get("count") is None else int(data["count"]),
            retry_after=None if data.get("retry_after") is None else int(data["retry_after"]),
        )
        if fault.kind not in FAULT_KINDS:
            raise SeedError(f"{where}.kind", f"must be one of {', '.join(FAULT_KINDS)}")
        if not 100 <= fault.status <= 599:
            raise SeedError(f"{where}.status", "must be an HTTP status code")
        if not 0.0 <= fault.rate <= 1.0:
            raise SeedError(f"{where}.rate", "must be between 0 and 1")
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

    def set_latency(self, endpoint: str, seconds: float) -> None:
        if seconds < 0:
            raise SeedError("latency", "must not be negative")
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

    def set_rate_limit(self, per_second: float | None, burst: float | None = None) -> None:
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
            knobs.set_latency(str(glob), float(seconds))
        for index, fault in enumerate(data.get("faults") or []):
            knobs.add_fault(Fault.from_dict(fault, f"{where}.faults[{index}]"))
        rate = data.get("rate_limit")
        if rate is not None:
            if isinstance(rate, dict):
                knobs.set_rate_limit(float(rate.get("per_second", 0)), rate.get("burst"))
            else:
                knobs.set_rate_limit(float(rate))
        return knobs
