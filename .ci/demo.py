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
# The DAGs the demo runs, with the task whose rows it shows: the vaulted operator, then the hook.
DAGS = {"cyberark_vaulted_sql": "sales_by_region", "cyberark_sqlite_demo": "load_and_query"}


def step(message: str) -> None:
    print(f"== {message}", flush=True)


def main() -> int:
    from cyberark_ops.devserver import DevServer
    from cyberark_ops.devserver.connections import devserver_connections
    from cyberark_ops.devserver.seed import demo_seed
    from cyberark_ops.testing.airflow_stack import AirflowStack

    shutil.rmtree(DEMO / "home", ignore_errors=True)
    DEMO.mkdir(exist_ok=True)
    seed = demo_seed()
    sqlite_account = next(a for a in seed["vault"]["accounts"] if a["name"] == "sqlite-dev")
    sqlite_account["address"] = str(DEMO / "vaulted-sales.sqlite")
    # Every value the demo's tasks fetch: the leak search looks for each, not only the passwords.
    fetched_ids = ("demo/sqlite/path", "prod/db/username", "prod/db/password")
    secret_values = [str(v["value"]) for v in seed["conjur"]["variables"] if v.get("id") in fetched_ids]
    secret_values.append(str(sqlite_account["secret"]))
    started = time.monotonic()
    step("starting the CyberArk dev server (demo seed)")
    with DevServer(state_dir=DEMO / "devserver") as server:
        info = server.info()
        print(f"   {info['url']}  (Conjur account {info['conjur_account']}, CA {info['ca_cert']})")
        connections = devserver_connections(info, seed)
        stack = AirflowStack(
            DEMO / "home",
            ROOT / "example_dags",
            {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in connections.items()},
        )
        step(f"preparing a throwaway Airflow home on SQLite ({stack.home})")
        stack.migrate()
        step("starting api-server, scheduler (LocalExecutor) and dag-processor")
        stack.start()
        runs: dict[str, tuple[str, str, dict[str, str]]] = {}
        try:
            for dag_id in DAGS:
                stack.wait_for_dag(dag_id)
            for dag_id in DAGS:
                step(f"triggering {dag_id}")
                run_id = stack.trigger(dag_id)
                state = stack.wait_for_run(dag_id, run_id)
                runs[dag_id] = (run_id, state, stack.task_states(dag_id, run_id))
        finally:
            stack.stop()
        for dag_id, (run_id, state, states) in runs.items():
            step(f"{dag_id}, run {run_id}: {state}")
            for task_id, task_state in states.items():
                print(f"   task {task_id}: {task_state}")
            rows = _xcom(stack.home / "airflow.db", dag_id, run_id, DAGS[dag_id])
            print(f"   rows returned by the query (the XCom): {rows}")
        calls = [e for e in server.app.audit.events() if not e["action"].startswith("dev.")]
        step(f"vault calls seen by the dev server: {len(calls)}")
        for event in calls:
            print(
                f"   {event['action']:<20} {event['status']}  identity={event['identity']}  "
                f"object={event['object']}  reason={event['reason']}"
            )
        # SQLite may still hold recent rows in its write-ahead log: search airflow.db-wal too.
        db_files = sorted(stack.home.glob("airflow.db*"))
        logs = [path for dag_id in DAGS for path in stack.task_log_files(dag_id)]
        leaks = _find(secret_values, [*logs, *db_files])
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
    succeeded = len(runs) == len(DAGS) and all(state == "success" for _, state, _ in runs.values())
    return 0 if succeeded and not leaks else 1


def _xcom(db: Path, dag_id: str, run_id: str, task_id: str) -> object:
    # closing() as well: sqlite3's own context manager commits but leaves the connection open.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "select value from xcom where dag_id=? and run_id=? and task_id=? and key='return_value'",
            (dag_id, run_id, task_id),
        ).fetchone()
    return _plain(json.loads(row[0])) if row else None


def _plain(value: object) -> object:
    """XCom's JSON with Airflow's serialized tuples (``{"__classname__": ..., "__data__": [...]}``) as lists."""
    if isinstance(value, dict):
        return _plain(value["__data__"]) if "__data__" in value else {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


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
