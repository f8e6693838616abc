"""Benchmark: ``cyberark_ops.scrub.scrub`` against Airflow's ``redact(value, max_depth=50)``.

Run ``.venv/bin/python benchmarks/scrub.py``. Builds a ~50 MB list of 3-tuples of strings, registers
the canary's forms with Airflow's masker and with ours (the same variants), and prints median timings
and ratios, the secret absent and then present in 1% of the rows, measured in the same run.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow.sdk.log import redact

from cyberark_ops import scrub

CANARY = "p@ss w/rd+\"é'<&>\\ 9Zk"
TARGET_BYTES = 50_000_000
REPEATS = 5


def build_rows(present_every: int | None, target_bytes: int = TARGET_BYTES) -> list[tuple[str, str, str]]:
    rnd = random.Random(7)
    rows = []
    size = 0
    i = 0
    while size < target_bytes:
        note = f"note {rnd.random():.12f} lorem ipsum dolor sit amet consectetur {i}"
        if present_every and i % present_every == 0:
            note = f"dsn=postgresql://app:{CANARY}@db:5432/sales {i}"
        row = (f"customer-{i:09d}-alpha-bravo-charlie-delta", f"region {i % 97} some longer text here {i}", note)
        size += sum(len(part) for part in row)
        rows.append(row)
        i += 1
    return rows


def medians(*works: Callable[[], Any], repeats: int = REPEATS) -> list[float]:
    """Median wall time of each callable, run in turns so that both see the same machine load."""
    times: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for spent, work in zip(times, works, strict=True):
            start = time.perf_counter()
            work()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


@dataclass
class Case:
    label: str
    rows: int
    megabytes: float
    ours: float
    airflow: float
    clean: bool
    same: bool


def measure(target_bytes: int = TARGET_BYTES, repeats: int = REPEATS) -> list[Case]:
    """Both cases (absent, 1% present), each timed ``repeats`` times in turns with Airflow's redact."""
    scrub.register(CANARY)  # every form goes to Airflow's masker and to our registry
    cases = []
    try:
        for label, every in (("absent", None), ("1% present", 100)):
            rows = build_rows(every, target_bytes)
            mb = sum(len(p) for r in rows for p in r) / 1e6
            ours, airflow = medians(
                lambda rows=rows: scrub.scrub(rows), lambda rows=rows: redact(rows, max_depth=50), repeats=repeats
            )
            result = scrub.scrub(rows)
            clean = all(CANARY not in part for row in result for part in row)
            cases.append(Case(label, len(rows), mb, ours, airflow, clean, result is rows))
            del rows, result
    finally:
        scrub.clear()
    return cases


def main() -> int:
    print(f"forms registered: {len(scrub.forms(CANARY))}; repeats: {REPEATS} (median)")
    ok = True
    for case in measure():
        ok = ok and case.clean and (case.same or case.label != "absent")
        print(
            f"{case.label:>10}: {case.rows:,} rows, {case.megabytes:.1f} MB of text | ours {case.ours:.3f} s | "
            f"redact(max_depth=50) {case.airflow:.3f} s | ratio {case.airflow / case.ours:.1f}x | "
            f"same object: {case.same} | canary gone: {case.clean}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
