"""Load and scale-out: 200 mapped tasks, each fetching a credential, against a rate-limited vault.

The DAG (``dags_load/load_fetch.py``) runs on the real supervisor path with PostgreSQL as the
metadata DB (a database of its own per run, dropped afterwards), once per executor users scale
out with:

- LocalExecutor, parallelism 16;
- CeleryExecutor, Redis as broker, two ``airflow celery worker`` processes (distinct hostnames).
  Only the workers' environment holds the vault connection, as on a worker host: the scheduler,
  the api-server and the dag-processor never see it.

The dev server answers at most 20 requests a second (token bucket, burst 1: see ``BURST``).
Asserted: every mapped task succeeded on its first try, no task log shows a rate-limit failure, the audit log
holds exactly one authentication and one fetch per task (each task is a fresh process, so the
client's process-wide token cache starts empty; 429 answers, which the client retries, are
counted apart), the admitted requests kept to the server's limit, and no form of the canary is in
any task log, metadata table or Airflow process's console (LocalExecutor copies task log lines
to the scheduler's stdout unmasked: cyberark-ops redacts in the task process).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import json
import os
import re
import resource
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import demo_conjur_connection
from cyberark_ops.devserver.seed import demo_seed
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import DagRun, find_leaks, run_dags, stored_places, vault_calls
from tests.guarantees import report
from tests.operators.conftest import need_server

# The first test of each executor pays for the whole run (a module fixture).
pytestmark = [pytest.mark.airflow, pytest.mark.serial, pytest.mark.timeout(900)]

DAGS = Path(__file__).resolve().parent / "dags_load"
DAG_ID = "cyberark_load"
SECRET = "prod/db/password"
MAPPED_TASKS = 200
PER_SECOND = 20.0
# Burst 1: no two requests within 50 ms, so that sixteen task processes starting together meet
# 429 answers (at burst 20 they never did: at most 32 requests in a second, no 429). Measured at
# burst 1 before 429s were retried until the deadline: 2 and then 18 of 200 LocalExecutor tasks
# failed their first try with RateLimited (every process heard Retry-After: 1 at once and gave up
# after max_retries); after: 328 answers 429, every task succeeded on its first try.
BURST = 1.0
SLACK = 0.01
"""Seconds of refill allowed per bound: an answer's admission time is estimated from its audit
entry (millisecond resolution, stamped when sent, ``duration_ms`` after it arrived)."""
PARALLELISM = 16
CELERY_WORKERS = ("load-worker-1", "load-worker-2")
CELERY_CONCURRENCY = 8  # 2 x 8 = parallelism: at 2 x 4 the run left a core idle
CONN_VAR = "AIRFLOW_CONN_CYBERARK_DEFAULT"
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
# What a task log shows when a fetch gave up on the vault's rate limit.
RATE_LIMIT_FAILURE = re.compile(rb"RateLimited|Too Many Requests|\b429\b")


def children_cpu_seconds() -> float:
    """CPU time of every finished process this one started, and of theirs (the stack waits for all)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def migrated_pg_template(admin: Any, scratch: Path) -> str | None:
    """A PostgreSQL database migrated once for this Airflow install, that runs are copied from.

    ``create database ... template`` copies it in a fraction of a second, where each run's own
    ``airflow db migrate`` cost a whole Airflow process for about 20 s on a loaded machine. It is
    built under a temporary name and renamed when complete, so a half-migrated one is never used.
    """
    key = AirflowStack(scratch, scratch).install_key()
    if key is None:
        return None
    name = f"cyberark_ops_template_{key}"
    with admin.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", (name,))
        if cur.fetchone():
            return name
        building = f"{name}_{secrets.token_hex(4)}"
        cur.execute(f"create database {building}")
    try:
        AirflowStack(scratch, scratch, database_url=f"{PG}/{building}").migrate()
        with admin.cursor() as cur:
            cur.execute(f"alter database {building} rename to {name}")
    except Exception:
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {building} with (force)")
        raise
    return name


@contextlib.contextmanager
def fresh_pg_database(scratch: Path) -> Iterator[tuple[str, bool]]:
    """A PostgreSQL database for one run's metadata, dropped (connections and all) afterwards, and
    whether it is already migrated (copied from :func:`migrated_pg_template`)."""
    import psycopg2

    need_server(5432, "PostgreSQL")
    name = f"airflow_load_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    admin.autocommit = True
    try:
        template = migrated_pg_template(admin, scratch)
        with admin.cursor() as cur:
            cur.execute(f"create database {name}" + (f" template {template}" if template else ""))
        yield f"{PG}/{name}", template is not None
    finally:
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {name} with (force)")
        admin.close()


def celery_settings(database_url: str, queue: str) -> dict[str, str]:
    """What every component of a Celery deployment shares (none of it a vault setting)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{secrets.randbelow(16)}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url.replace("+psycopg2", ""),
        # A queue of its own: other runs sharing this Redis never take these tasks.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
    }


@dataclass
class LoadRun:
    executor: str
    dag_run: DagRun
    calls: list[dict[str, Any]]
    tries: dict[int, tuple[str, int]]
    """map index -> (state, try number)."""
    places: dict[str, bytes]
    """Task logs and metadata tables (``stored_places``)."""
    consoles: dict[str, bytes]
    """Each Airflow process's stdout and stderr."""
    leaks: list[str]
    console_leaks: list[str]
    forms: int
    holds_vault_connection: dict[str, bool]
    """component -> whether its environment held the vault connection (Celery only)."""
    run_seconds: float

    @property
    def admitted(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c.get("fault") != "rate_limit"]

    @property
    def rate_limited(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c.get("fault") == "rate_limit"]

    def admitted_at(self) -> list[float]:
        """When the server let each request through: an answer is audited when sent, ``duration_ms`` later."""
        return sorted(
            dt.datetime.fromisoformat(c["time"]).timestamp() - float(c["duration_ms"]) / 1000 for c in self.admitted
        )

    def peak_per_second(self) -> int:
        """The most requests let through within one second."""
        times = self.admitted_at()
        return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)

    @property
    def task_logs(self) -> dict[str, bytes]:
        return {place: data for place, data in self.places.items() if place.startswith("logs/")}

    def failed_on_429(self) -> list[str]:
        """Task log files with an error naming the rate limit (retried 429s log warnings, not errors)."""
        return [
            place
            for place, data in self.task_logs.items()
            if any(
                RATE_LIMIT_FAILURE.search(line) and json.loads(line).get("level") in ("error", "critical")
                for line in data.splitlines()
                if line.startswith(b"{")
            )
        ]


def stack_for(executor: str, home: Path, database_url: str, conn: str) -> AirflowStack:
    shared = {
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(PARALLELISM),
        "CYBERARK_LOAD_TASKS": str(MAPPED_TASKS),
        # Sixteen task processes starting at once on two cores: the defaults (5 s for a call to the
        # api-server, 30 s to import the DAG file) are for hosts with a core per task.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
    }
    if executor == "LocalExecutor":
        # Tasks run as the scheduler's children: the scheduler is the worker here.
        return AirflowStack(home, DAGS, {**shared, CONN_VAR: conn}, database_url=database_url)
    queue = f"cyberark_load_{secrets.token_hex(4)}"
    stack = AirflowStack(home, DAGS, {**shared, **celery_settings(database_url, queue)}, database_url=database_url)
    for name in CELERY_WORKERS:
        stack.add_component(
            name,
            [
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                str(CELERY_CONCURRENCY),
                "--queues",
                queue,
                "--skip-serve-logs",
                "--without-mingle",
                "--without-gossip",
            ],
            {CONN_VAR: conn},
        )
    return stack


EXECUTORS = tuple(os.environ.get("CYBERARK_OPS_LOAD_EXECUTORS", "LocalExecutor,CeleryExecutor").split(","))
"""Both by default; CI runs one per Airflow version (each run costs minutes of CPU on two cores)."""


@pytest.fixture(scope="module", params=EXECUTORS)
def load(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadRun]:
    executor: str = request.param
    celery = executor == "CeleryExecutor"
    if celery:
        need_server(6379, "Redis")
    base = tmp_path_factory.mktemp(f"load-{executor}")
    seed = demo_seed()
    # Built at run time, so the literal is in no DAG file and no serialized DAG.
    canary = f"load-c@n:ry/{secrets.token_hex(6)}%+ é"
    next(v for v in seed["conjur"]["variables"] if v["id"] == SECRET)["value"] = canary
    started = time.monotonic()
    cpu_before = children_cpu_seconds()
    with (
        fresh_pg_database(base / "template") as (database_url, migrated),
        DevServer(seed, state_dir=base / "devserver") as server,
    ):
        server.app.knobs.set_rate_limit(PER_SECOND, BURST)
        conn = json.dumps(demo_conjur_connection(server.info(), seed, key_dir=base))
        stack = stack_for(executor, base / "home", database_url, conn)
        stack.migrated = migrated
        dag_run = run_dags(stack, [DAG_ID], timeout=900)[DAG_ID]
        calls = vault_calls(server)
        tries = {
            int(index): (str(state), int(try_number))
            for index, state, try_number in stack.query(
                "select map_index, state, try_number from task_instance where dag_id=:dag_id and run_id=:run_id",
                dag_id=DAG_ID,
                run_id=dag_run.run_id,
            )
        }
        [(run_start, run_end)] = stack.query(
            "select start_date, end_date from dag_run where run_id=:run_id", run_id=dag_run.run_id
        )
        places = stored_places(stack, [DAG_ID])
        consoles = {f"{path.stem} console": path.read_bytes() for path in (stack.home / "process-logs").glob("*")}
        forms = leak_forms(canary)
        leaks = find_leaks(places, forms)
        console_leaks = find_leaks(consoles, forms)
        holds_vault_connection = {name: CONN_VAR in environ for name, environ in stack.launch_env.items()}
        load_run = LoadRun(
            executor,
            dag_run,
            calls,
            tries,
            places,
            consoles,
            leaks,
            console_leaks,
            len(forms),
            holds_vault_connection,
            (run_end - run_start).total_seconds(),
        )
        actions = Counter(c["action"] for c in load_run.admitted)
        report.record(
            "load",
            executor,
            {
                "executor": executor
                + (f" ({len(CELERY_WORKERS)} workers x concurrency {CELERY_CONCURRENCY})" if celery else "")
                + f", parallelism {PARALLELISM}",
                "metadata DB": "PostgreSQL",
                "mapped tasks": len(tries),
                "server limit": f"{PER_SECOND:g}/s",
                "succeeded": sum(1 for state, try_number in tries.values() if state == "success"),
                "failed on 429": len(load_run.failed_on_429()),
                "vault calls": ", ".join(f"{n} {action}" for action, n in sorted(actions.items()))
                + f"; peak {load_run.peak_per_second()}/s",
                "429 answers retried": len(load_run.rate_limited),
                "leak hits": f"{len(leaks)} in task logs and metadata DB, {len(console_leaks)} in consoles"
                + (f" ({', '.join(sorted({hit.split(' in ')[1] for hit in console_leaks}))})" if console_leaks else ""),
                "wall time": f"{load_run.run_seconds:.0f} s run, {time.monotonic() - started:.0f} s with setup "
                f"({children_cpu_seconds() - cpu_before:.0f} s CPU)",
            },
        )
        # The metadata DB lives until the module's tests have read it.
        yield load_run


def test_every_mapped_task_succeeded_on_its_first_try(load: LoadRun) -> None:
    assert load.dag_run.state == "success", load.dag_run.explain()
    assert sorted(load.tries) == list(range(MAPPED_TASKS))
    retried = {index: state for index, state in load.tries.items() if state != ("success", 1)}
    assert retried == {}, f"{len(retried)} tasks needed another try or failed: {dict(list(retried.items())[:10])}"


def test_no_task_failed_on_the_rate_limit(load: LoadRun) -> None:
    assert len(load.task_logs) == MAPPED_TASKS, "one log file per task and try"
    assert load.failed_on_429() == []


def test_the_audit_log_holds_one_authentication_and_one_fetch_per_task(load: LoadRun) -> None:
    admitted = Counter((c["action"], c["status"]) for c in load.admitted)
    assert admitted == {("conjur.authenticate", 200): MAPPED_TASKS, ("conjur.retrieve", 200): MAPPED_TASKS}
    # Each mapped instance fetched exactly once: its map index is in the audited reason.
    fetched = Counter(
        int(m.group(1))
        for c in load.admitted
        if c["action"] == "conjur.retrieve" and (m := re.search(r"-map-(\d+)", str(c.get("reason")))) is not None
    )
    assert fetched == dict.fromkeys(range(MAPPED_TASKS), 1)
    assert {(c["status"], c["action"]) for c in load.rate_limited} <= {
        (429, "conjur.authenticate"),
        (429, "conjur.retrieve"),
    }
    print(f"{load.executor}: {dict(admitted)}, {len(load.rate_limited)} answers 429 (retried)")


def test_the_admitted_requests_kept_to_the_servers_limit(load: LoadRun) -> None:
    """Token bucket: within any span of ``t`` seconds at most ``burst + rate * t`` requests got through.

    Admission times are estimates: :data:`SLACK` seconds more refill per bound."""
    admitted_at = load.admitted_at()
    excess = [
        (j - i + 1, round(admitted_at[j] - admitted_at[i], 3))
        for i in range(len(admitted_at))
        for j in range(i, len(admitted_at))
        if j - i + 1 > BURST + PER_SECOND * (admitted_at[j] - admitted_at[i] + SLACK)
    ]
    assert excess == [], f"(requests, seconds) beyond the limit: {excess[:10]}"
    # The limit bit: the run took at least as long as the budget allows for its requests.
    assert admitted_at[-1] - admitted_at[0] >= (len(admitted_at) - BURST) / PER_SECOND - SLACK
    print(f"{load.executor}: peak {load.peak_per_second()} requests/s, {len(load.rate_limited)} answered 429")


def test_no_form_of_the_canary_in_task_logs_or_any_metadata_table(load: LoadRun) -> None:
    text = b"".join(load.task_logs.values())
    # Control: every task logged its value, and Airflow masked it.
    assert text.count(b"fetched ***") == MAPPED_TASKS
    tables = {place.removeprefix("table ") for place in load.places if place.startswith("table ")}
    assert {"xcom", "task_instance", "connection", "variable", "dag_run", "log"} <= tables
    assert load.leaks == []
    print(f"{load.executor}: searched {load.forms} forms in {len(load.places)} places: {len(load.leaks)} hits")


def test_no_form_of_the_canary_on_any_airflow_console(load: LoadRun) -> None:
    """LocalExecutor copies task log lines to the scheduler's stdout; cyberark-ops redacts in the
    task process, before they leave it."""
    assert set(load.consoles) >= {"scheduler console", "api-server console", "dag-processor console"}
    assert load.console_leaks == []


def test_with_celery_only_the_workers_hold_the_vault_connection(load: LoadRun) -> None:
    if load.executor != "CeleryExecutor":
        pytest.skip("LocalExecutor runs tasks as the scheduler's children: the scheduler is the worker")
    assert load.holds_vault_connection == {
        "api-server": False,
        "scheduler": False,
        "dag-processor": False,
        **dict.fromkeys(CELERY_WORKERS, True),
    }
    # The tasks got it from their worker's environment, not from Airflow's connection table.
    assert load.dag_run.stack.query("select count(*) from connection") == [(0,)]


def test_with_celery_both_workers_ran_tasks(load: LoadRun) -> None:
    if load.executor != "CeleryExecutor":
        pytest.skip("LocalExecutor has no Celery workers")
    # Celery logs each message a worker took; the task instance's hostname is the machine's.
    received = {name: load.consoles[f"{name} console"].count(b"execute_workload[") // 2 for name in CELERY_WORKERS}
    assert all(received.values()), received
    print(f"tasks per worker: {received}")
