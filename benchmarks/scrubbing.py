"""Figure 5: scrubbing a large result, and what ``VaultedSqlOperator`` costs over a plain operator.

The scrub half is ``benchmarks/scrub.py`` (also runnable alone). The operator half executes both
operators in-process (``op.execute(context)``, as tests/operators do) on the same SQLite query, in
shuffled rounds. The target reads: vaulted ≤ 1.05 x plain + one fetch. The fetch is the one each
execute makes (a new hook from the connection, one get that masks the value, closed; the process
keeps its token, as a task's retries do), timed inside that execute; what the execute spent beyond
it is compared with a plain execute timed right after such a fetch (plain + one fetch, as a task
would do it by hand). Subtracting the median of separately timed fetches instead would compare
two network round trips with a TLS handshake each, whose jitter on a shared machine is larger than
the whole SQLite query.

Why the plain execute is timed after a fetch, not back to back: the vaulted operator's query runs
right after its fetch's few milliseconds of TLS and HTTP code, and the same query then takes
0.2 ms longer than when it runs back to back with warm CPU caches (measured: plain 0.46 ms back to
back, 0.68 ms after a fetch). Against the back-to-back figure the vaulted operator looked 1.35x
plain although it runs no more Python (cProfile: within 0.1 ms); that ratio is still shown.

A real task runs ``execute`` once per process, with a cold ``re`` cache and, for the plain
operator, no cached hook yet (``BaseSQLOperator._hook`` is a cached property; the vaulted operator
builds its hook per fetch, on the fetched credential, so that a rotated credential is never served
from a stale hook). That case carries the target; the same executes repeated in one process, where
only the plain operator keeps its hook, are shown for reference. What the vaulted operator must do
beyond the plain one, scrubbing the result before it becomes XCom, is also timed alone on the same
rows.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import scrub as scrub_bench
from ._common import HOST_API_KEY, HOST_LOGIN, SECRET_ID, Config, Row, Server, interleaved, median, ms

if TYPE_CHECKING:
    from cyberark_ops.client import Credential

FIG = "5 scrubbing"
ABSENT_TARGET = 5.0
PRESENT_TARGET = 2.0
OPERATOR_TARGET = 1.05
ROWS = 200


def scrub_rows(config: Config) -> list[Row]:
    rows = []
    for case in scrub_bench.measure(config.scrub_bytes, config.scrub_repeats):
        target = ABSENT_TARGET if case.label == "absent" else PRESENT_TARGET
        speedup = case.airflow / case.ours
        ok = case.clean and (case.same or case.label != "absent")
        rows.append(
            Row(
                FIG,
                f"`scrub.scrub` vs Airflow `redact(max_depth=50)`, {case.megabytes:.0f} MB, secret {case.label}",
                f"{case.ours:.3f} s vs {case.airflow:.3f} s; canary gone: {case.clean}",
                f"{speedup:.1f}x faster than redact",
                f"≥ {target:g}x faster",
                ok and speedup >= target,
            )
        )
    return rows


def operator_rows(server: Server, config: Config) -> list[Row]:
    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

    from cyberark_ops import CyberArkHook, VaultedSqlOperator, scrub

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        with sqlite3.connect(db) as conn:
            conn.execute("create table sales (id integer, region text, amount real)")
            conn.executemany(
                "insert into sales values (?, ?, ?)", [(i, f"region-{i % 7}", i * 1.5) for i in range(ROWS)]
            )
        conn.close()
        os.environ["AIRFLOW_CONN_BENCH_SQLITE"] = json.dumps({"conn_type": "sqlite", "host": str(db)})
        os.environ["AIRFLOW_CONN_BENCH_CYBERARK"] = json.dumps(
            {
                "conn_type": "cyberark",
                "host": server.url,
                "login": HOST_LOGIN,
                "password": HOST_API_KEY,
                "extra": {"api": "conjur", "account": server.account, "ca_bundle": server.ca},
            }
        )
        sql = "select id, region, amount from sales order by id"
        try:
            fetches: list[float] = []
            scrubs: list[float] = []
            after_fetch: dict[str, list[float]] = {"": [], "_fresh": []}
            overheads: dict[str, list[float]] = {"": [], "_fresh": []}

            class TimedVaultedSqlOperator(VaultedSqlOperator):
                def fetch_credential(self) -> Credential:
                    started = time.perf_counter()
                    try:
                        return super().fetch_credential()
                    finally:
                        fetches.append(time.perf_counter() - started)

            plain = SQLExecuteQueryOperator(task_id="plain", conn_id="bench_sqlite", sql=sql)
            vaulted = TimedVaultedSqlOperator(
                task_id="vaulted",
                vault_conn_id="bench_cyberark",
                credential_ref=SECRET_ID,
                conn_id="bench_sqlite",
                sql=sql,
            )

            def run_vaulted(suffix: str) -> None:
                """One execute; what it spent beyond its own fetch goes to ``overheads``."""
                if suffix:
                    re.purge()
                before = len(fetches)
                started = time.perf_counter()
                vaulted.execute({})
                overheads[suffix].append(time.perf_counter() - started - sum(fetches[before:]))

            def run_plain_fresh() -> None:
                re.purge()
                plain.__dict__.pop("_hook", None)  # functools.cached_property keeps it in the instance dict
                plain.execute({})

            def run_plain_after_fetch(suffix: str) -> None:
                """Plain + one fetch, as a task would write it by hand: a fetch (untimed), then plain
                timed alone. The vaulted operator's query runs right after its fetch's few
                milliseconds of TLS and HTTP code, with the CPU's caches full of those; so does this."""
                task_fetch()
                if suffix:
                    re.purge()
                    plain.__dict__.pop("_hook", None)
                started = time.perf_counter()
                plain.execute({})
                after_fetch[suffix].append(time.perf_counter() - started)

            def task_fetch() -> object:
                """The fetch one execute makes: a new hook from the connection, one get (masked), closed."""
                with scrub.task_scope(), CyberArkHook("bench_cyberark") as hook:
                    return hook.get_secret(SECRET_ID)

            result = plain.execute({})
            if result != vaulted.execute({}):
                raise AssertionError("the two operators returned different rows")
            with CyberArkHook("bench_cyberark") as vault:
                cred = vault.get_credential(SECRET_ID)

            def scrub_result() -> object:
                """The result scrub alone: what a plain operator never does (secret registered, absent)."""
                with scrub.task_scope():
                    scrub.register(cred.secret, username=cred.username)
                    started = time.perf_counter()
                    scrubbed = scrub.scrub(result)
                    scrubs.append(time.perf_counter() - started)
                    return scrubbed

            with server.counting() as calls:
                vaulted.execute({})
            n = config.operator_n
            samples = interleaved(
                {
                    "plain": (lambda: plain.execute({}), n),
                    "vaulted": (lambda: run_vaulted(""), n),
                    "fetch": (task_fetch, n),
                    "plain_fresh": (run_plain_fresh, n),
                    "vaulted_fresh": (lambda: run_vaulted("_fresh"), n),
                    "scrub": (scrub_result, n),
                    "plain_after_fetch": (lambda: run_plain_after_fetch(""), n),
                    "plain_after_fetch_fresh": (lambda: run_plain_after_fetch("_fresh"), n),
                }
            )
        finally:
            for name in ("AIRFLOW_CONN_BENCH_SQLITE", "AIRFLOW_CONN_BENCH_CYBERARK"):
                os.environ.pop(name, None)
    t_fetch = median(samples["fetch"])
    t_scrub = median(scrubs[-n:])
    rows = []
    labels = {
        "_fresh": "`re` cache cold and no cached hook, as in a new task process",
        "": "repeated in one process (only plain keeps its hook)",
    }
    for suffix, label in labels.items():
        t_plain, t_vaulted = median(samples["plain" + suffix]), median(samples["vaulted" + suffix])
        t_after = median(after_fetch[suffix][-n:])  # the timed rounds follow interleaved's warm-up
        own = median(overheads[suffix][-n:])
        ratio = own / t_after
        headline = suffix == "_fresh"
        rows += [
            Row(
                FIG,
                f"plain `SQLExecuteQueryOperator.execute`, SQLite, {ROWS} rows, {label}, right after a fetch "
                "(plain + one fetch by hand)",
                f"median {ms(t_after)} (back to back, with warm CPU caches: {ms(t_plain)})",
                "1.00",
                "—",
                None,
            ),
            Row(
                FIG,
                f"`VaultedSqlOperator.execute`, same query, {label}",
                f"median {ms(t_vaulted)}, {ms(own)} beyond its own fetch (new hook, get and mask, close); "
                f"{len(calls)} vault call(s) per execute; of that, scrubbing the result takes {ms(t_scrub)}; "
                f"over plain back to back: {own / t_plain:.2f}x; a fetch timed alone {ms(t_fetch)}",
                f"{ratio:.3f}x plain + one fetch",
                f"≤ {OPERATOR_TARGET:.2f}x plain + one fetch" if headline else "—",
                ratio <= OPERATOR_TARGET if headline else None,
            ),
        ]
    return rows


def run(server: Server, config: Config) -> list[Row]:
    return scrub_rows(config) + operator_rows(server, config)
