"""Smoke test of the benchmark command: every figure lands in the table with a target and a status.

Runs ``python -m benchmarks --quick`` as a user would (a real dev server over TLS), into a temporary
directory. No timing is asserted: quick runs are far too short for their ratios to mean anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import FIGURES, HEADER

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {"met", "**missed**", "reference", "not installed"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0] == "| " + " | ".join(HEADER) + " |"
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]
    assert all(len(row) == len(HEADER) for row in rows), "every row has every column"
    by_figure: dict[str, list[list[str]]] = {}
    for row in rows:
        by_figure.setdefault(row[0], []).append(row)
        assert row[5] in STATUSES, f"unknown status in {row}"
    assert sorted(by_figure) == sorted(FIGURES), "one or more figures are missing"
    for figure, figure_rows in by_figure.items():
        judged = [r for r in figure_rows if r[5] in {"met", "**missed**"}]
        assert judged, f"figure {figure!r} has no row with a target and a met/missed status"
        assert all(r[4] not in {"", "—"} for r in judged), f"a judged row of {figure!r} lacks its target"
    for row in rows:
        if row[5] == "not installed":
            assert row[1].startswith(("official `conjur-api`", "`pyaim`")), "only the optional SDK rows may be skipped"
