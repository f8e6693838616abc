"""The benchmark suite: ``python -m benchmarks [--quick] [--out DIR]`` (``bash benchmarks/run`` installs first).

Every figure is a ratio against a baseline measured in the same run, against one dev server on
loopback over TLS; the table goes to ``<out>/results.md`` and, when matplotlib imports, a plot of
the ratios to ``<out>/results.png``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import ssl
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from ._common import Config, Row, Server, quiet_environment

RESULTS = Path(__file__).resolve().parent / "results"
HEADER = ["figure", "what", "measured", "ratio", "target", "status"]
FIGURES = (
    "1 latency",
    "2 secrets per task",
    "3 secrets backend",
    "4 concurrency",
    "5 scrubbing",
    "6 dev server",
    "7 import cost",
    "8 redaction engine",
)


def _silence_logs() -> None:
    """Console logging would measure the terminal, not the code (Airflow's level: ``__init__``)."""
    logging.disable(logging.WARNING)


def _figures(server: Server, config: Config) -> list[tuple[str, Callable[[], list[Row]]]]:
    from . import backend, batch, concurrency, imports, latency, redaction, scrubbing, throughput

    return [
        (FIGURES[0], lambda: latency.run(server, config)),
        (FIGURES[1], lambda: batch.run(server, config)),
        (FIGURES[2], lambda: backend.run(server, config)),
        (FIGURES[3], lambda: concurrency.run(server, config)),
        (FIGURES[4], lambda: scrubbing.run(server, config)),
        (FIGURES[5], lambda: throughput.run(server, config, config.concurrency_rate)),
        (FIGURES[6], lambda: imports.run(config)),
        (FIGURES[7], lambda: redaction.run(config)),
    ]


def markdown(rows: Sequence[Row], config: Config, seconds: float) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    missed = sum(1 for r in rows if r.met is False)
    met = sum(1 for r in rows if r.met is True)
    lines = [
        "# cyberark-ops benchmarks",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {'quick' if config.quick else 'full'} run, "
        f"{seconds:.0f} s; Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"{os.cpu_count()} CPUs (shared). Every ratio is against a baseline from this run.",
        "",
        f"Targets: {met} met, {missed} missed.",
        "",
        line(HEADER),
        line(["---"] * len(HEADER)),
        *(line(r.cells()) for r in rows),
        "",
    ]
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path) -> bool:
    """A bar per row that has a target and a numeric ratio; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    picked = []
    for row in rows:
        found = re.match(r"([\d.]+)x", row.ratio)
        if found and isinstance(row.met, bool):
            picked.append((f"{row.figure}: {row.what[:60]}", float(found.group(1)), row.met))
    if not picked:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(picked) + 1.2))
    labels = [p[0].replace("`", "") for p in picked]
    ax.barh(labels, [p[1] for p in picked], color=["tab:green" if p[2] else "tab:red" for p in picked])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ratio (see the table for what each is against); green: target met")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations (seconds, not minutes): a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    parser.add_argument(
        "--only", action="append", choices=[f.split()[0] for f in FIGURES], help="run only these figures"
    )
    args = parser.parse_args(argv)
    config = Config.make(args.quick)
    # Airflow reads its log level when it is imported: console lines for every fetch and operator
    # run would measure the terminal, not the code. Set here, before any figure imports Airflow
    # (not on import of the package: a test importing it would silence its own process).
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    quiet_environment()
    _silence_logs()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    failed = False
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cyberark-bench-") as tmp:
        server = Server(Path(tmp))
        try:
            for name, figure in _figures(server, config):
                if args.only and name.split()[0] not in args.only:
                    continue
                began = time.perf_counter()
                print(f"== {name}", file=sys.stderr, flush=True)
                try:
                    rows += figure()
                except Exception as exc:  # noqa: BLE001 - one broken figure must not hide the others
                    failed = True
                    traceback.print_exc()
                    rows.append(Row(name, "the figure could not be measured", type(exc).__name__, "—", "—", "error"))
                print(f"   {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        finally:
            server.close()
    table = markdown(rows, config, time.perf_counter() - started)
    (args.out / "results.md").write_text(table)
    drawn = plot(rows, args.out / "results.png")
    print(table)
    print(
        f"written: {args.out / 'results.md'}"
        + (f", {args.out / 'results.png'}" if drawn else " (no matplotlib: no plot)")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
