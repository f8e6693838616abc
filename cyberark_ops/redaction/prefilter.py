"""Where a form can start: the prefilter in front of the automaton.

Why two searchers: ``ahocorasick-rs`` scans a few dozen prefixes with SIMD (Teddy), but beyond
that it falls back to a DFA at about 1.7 ns per byte, four times slower, so scrubbing with 1,000
secrets cost 3x one. Hyperscan's multi-literal engine (FDR) stays at SIMD speed with thousands of
literals (10 MB with 7,600 prefixes: 3.5 ms against the DFA's 17 ms). It is used where it helps —
many prefixes, large data, a platform with its wheels (x86-64 Linux) — and the DFA everywhere else,
including when a scan finds so many candidates that the per-hit callback would cost more.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ahocorasick_rs import BytesAhoCorasick, Implementation, MatchKind

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - platforms without its wheels use the DFA alone
    hyperscan = None

PACKED_LIMIT = 64
"""Up to this many prefixes ``ahocorasick-rs`` searches with SIMD itself."""

VECTOR_MIN_BYTES = 64 * 1024
"""Below this size the DFA is as fast as a Hyperscan call with its callback set-up."""

_COMPILING = threading.Lock()

_DFA_LIMIT = 100_000
"""Above this many prefixes the DFA prefilter is built as an NFA (a DFA's build time grows fast)."""


class Prefilter:
    """Sorted start offsets of every prefix occurrence (overlapping ones included)."""

    __slots__ = ("_automaton", "_lengths", "_local", "_prefixes", "_vector", "_vector_fits")

    def __init__(self, prefixes: Sequence[bytes]) -> None:
        self._prefixes = list(prefixes)
        self._automaton = BytesAhoCorasick(
            self._prefixes,
            matchkind=MatchKind.Standard,
            implementation=Implementation.DFA if len(self._prefixes) <= _DFA_LIMIT else None,
        )
        self._vector: Any = None
        # Its Python binding measures literals with strlen(): a NUL would cut a prefix short.
        self._vector_fits = len(self._prefixes) > PACKED_LIMIT and not any(b"\0" in p for p in self._prefixes)
        self._lengths = [len(prefix) for prefix in self._prefixes]
        self._local = threading.local()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{type(self).__name__} holds secrets and cannot be pickled or copied")

    def starts(self, data: Any) -> list[int]:
        """``data``: any buffer."""
        if self._vector_fits and len(data) >= VECTOR_MIN_BYTES and hyperscan is not None:
            found = self._vector_starts(data)
            if found is not None:
                return found
        hits = self._automaton.find_matches_as_indexes(data, overlapping=True)
        return sorted({begin for _, begin, _ in hits})

    def _vector_starts(self, data: Any) -> list[int] | None:
        """None when the data holds more candidates than a callback per hit can afford."""
        database = self._vector
        if database is None:
            with _COMPILING:
                database = self._vector
                if database is None:
                    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
                    database.compile(
                        expressions=self._prefixes,
                        ids=list(range(len(self._prefixes))),
                        elements=len(self._prefixes),
                        flags=0,
                        literal=True,
                    )
                    self._vector = database
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:  # a scan needs scratch space of its own in each thread
            scratch = self._local.scratch = hyperscan.Scratch(database)
        lengths = self._lengths
        found: set[int] = set()
        budget = len(data) // 256 + 64

        def on_match(index: int, _start: int, end: int, _flags: int, _context: object) -> bool:
            found.add(end - lengths[index])
            return len(found) > budget

        try:
            whole = data if isinstance(data, bytes) else bytes(data)
            database.scan(whole, match_event_handler=on_match, scratch=scratch)
        except hyperscan.ScanTerminated:
            return None
        return sorted(found)


__all__ = ["PACKED_LIMIT", "VECTOR_MIN_BYTES", "Prefilter"]
