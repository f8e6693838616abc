"""Runs the demo: dev server, throwaway Airflow home on SQLite, scheduler + LocalExecutor, one DAG."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".airflow-demo"
DAG_ID = "cyberark_sqlite_demo"


def step(message: str) -> None:
    print(f"== {message}", flush=True)


def main() -> int:
    from cyberark_ops.devserver import DevServer
    from cyberark_ops.devserver.seed import demo_seed
    from cyberark_ops.testing.airflow_stack import AirflowStack
    from cyberark_ops.testing.connections import demo_conjur_connection

    shutil.rmtree(DEMO / "home", ignore_errors=True)
    DEMO.mkdir(exist_ok=True)
    seed = demo_seed()
    # Every value the demo task fetches: the leak search looks for each, not only the password.
    fetched_ids = ("demo/sqlite/path", "prod/db/username", "prod/db/password")
    secret_values = [str(v["value"]) for v in seed["conjur"]["variables"] if v.get("id") in fetched_ids]
    started = time.monotonic()
    step("starting the CyberArk dev server (demo seed)")
    with DevServer(state_dir=DEMO / "devserver") as server:
        info = server.info()
        print(f"   {info['url']}  (Conjur account {info['conjur_account']}, CA {info['ca_cert']})")
        connection = demo_conjur_connection(info, seed, key_dir=DEMO)
        stack = AirflowStack(
            DEMO / "home",
            ROOT / "example_dags",
            {"AIRFLOW_CONN_CYBERARK_DEFAULT": json.dumps(connection)},
        )
        step(f"preparing a throwaway Airflow home on SQLite ({stack.home})")
        stack.migrate()
        step("starting api-server, scheduler (LocalExecutor) and dag-processor")
        stack.start()
        try:
            stack.wait_for_dag(DAG_ID)
            step(f"triggering {DAG_ID}")
            run_id = stack.trigger(DAG_ID)
            state = stack.wait_for_run(DAG_ID, run_id)
            states = stack.task_states(DAG_ID, run_id)
        finally:
            stack.stop()
        step(f"run {run_id}: {state}")
        for task_id, task_state in states.items():
            print(f"   task {task_id}: {task_state}")
        rows = _xcom(stack.home / "airflow.db", DAG_ID, run_id, "load_and_query")
        print(f"   rows returned by the query: {rows}")
        calls = [e for e in server.app.audit.events() if not e["action"].startswith("dev.")]
        step(f"vault calls seen by the dev server: {len(calls)}")
        for event in calls:
            print(
                f"   {event['action']:<20} {event['status']}  identity={event['identity']}  "
                f"object={event['object']}  reason={event['reason']}"
            )
        # SQLite may still hold recent rows in its write-ahead log: search airflow.db-wal too.
        db_files = sorted(stack.home.glob("airflow.db*"))
        leaks = _find(secret_values, [*stack.task_log_files(DAG_ID), *db_files])
        logs = stack.task_log_files(DAG_ID)
        masked = [line for path in logs for line in path.read_text().splitlines() if "***" in line]
        step("where the credential did not end up")
        print(f"   searched {len(logs)} task log file(s) and the metadata DB (XCom, rendered fields, ...)")
        forms = "raw, URL-quoted, JSON, repr and base64 forms"
        print(f"   for {len(secret_values)} vault values in {forms}: {len(leaks)} hit(s)")
        for line in masked[:2]:
            print(f"   task log: ...{json.loads(line).get('event', line)[:100]}")
        for leak in leaks:
            print(f"   LEAK: {leak}")
    step(f"done in {time.monotonic() - started:.0f} s; Airflow home kept in {stack.home}")
    print("   to browse this run in the Airflow UI (Ctrl-C stops it):")
    print(f"   AIRFLOW_HOME={stack.home} AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True \\")
    print(f"     AIRFLOW__CORE__DAGS_FOLDER={ROOT / 'example_dags'} .venv/bin/airflow api-server --port 8080")
    print("   then open http://127.0.0.1:8080; `rm -rf .airflow-demo` removes everything the demo left")
    return 0 if state == "success" and not leaks else 1


def _xcom(db: Path, dag_id: str, run_id: str, task_id: str) -> object:
    # closing() as well: sqlite3's own context manager commits but leaves the connection open.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "select value from xcom where dag_id=? and run_id=? and task_id=? and key='return_value'",
            (dag_id, run_id, task_id),
        ).fetchone()
    return json.loads(row[0]) if row else None


def _find(values: list[str], paths: list[Path]) -> list[str]:
    from cyberark_ops.scrub import leak_forms

    hits = []
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # SQLite removes its -shm / -wal files when the last reader closes
            continue
        for value in values:
            for name, form in leak_forms(value).items():
                if len(form) >= 5 and form.encode() in data:
                    hits.append(f"{path.name}: a vault value ({name} form)")
    return hits


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
