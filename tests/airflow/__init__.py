"""Airflow integration tests: real Airflow 3 processes, real HTTPS to an in-process dev server.

Every Airflow process runs as a subprocess with its own throwaway ``AIRFLOW_HOME`` (never
``~/airflow``), so settings from the environment apply before Airflow is imported, and no test
sees another's metadata DB. Helpers shared by the modules live here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyberark_ops.devserver import DevServer
from cyberark_ops.testing.airflow_stack import AirflowStack

SCRIPTS = Path(__file__).resolve().parent / "scripts"
PYTHON = sys.executable
# Retries and timeouts short enough that a fault costs milliseconds, not the default backoff.
FAST_EXTRAS: dict[str, Any] = {
    "connect_timeout": 2,
    "read_timeout": 5,
    "max_retries": 3,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "deadline": 20,
}


def pasted(lines: Sequence[str]) -> dict[str, str]:
    """The variables a user gets by pasting ``lines`` (``export NAME=...``) into a shell: run by
    bash as written, then read back from its environment."""
    names = [line.removeprefix("export ").split("=", 1)[0] for line in lines if line.startswith("export ")]
    script = "\n".join(lines) + "\nenv -0\n"
    out = subprocess.run(
        ["bash", "-c", script], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True
    ).stdout
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {name: env[name] for name in names}


def airflow_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an Airflow subprocess: this process's, minus any ``AIRFLOW*`` setting
    inherited from the developer's shell, plus a home and SQLite DB under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def run(
    args: Sequence[str], env: Mapping[str, str], *, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs ``args`` and, with ``check``, fails with the tail of its output when it exits non-zero."""
    result = subprocess.run(list(args), env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args[:4])} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


def airflow(*args: str, env: Mapping[str, str], timeout: float = 120) -> str:
    """``airflow <args>`` in a subprocess; its stdout, after asserting exit code 0."""
    return run([PYTHON, "-m", "airflow", *args], env, timeout=timeout).stdout


def migrate_home(env: Mapping[str, str]) -> None:
    """The SQLite metadata DB of ``airflow_env``'s home, copied from the one migrated per Airflow
    install (``AirflowStack.migrate``): ``airflow db migrate`` would cost a whole Airflow process,
    seconds of CPU, for the same tables."""
    home = Path(env["AIRFLOW_HOME"])
    stack = AirflowStack(home, Path(env["AIRFLOW__CORE__DAGS_FOLDER"]), python=PYTHON)
    if stack.database_url != env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]:
        raise AssertionError(f"not the home's SQLite DB: {env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}")
    stack.migrate()


def json_output(stdout: str) -> Any:
    """The JSON document of ``-o json`` output; Airflow may print warnings on stdout before it."""
    for line in stdout.splitlines():
        if line.startswith(("[", "{")):
            return json.loads(line)
    raise AssertionError(f"no JSON document in the output:\n{stdout[-3000:]}")


def connection(server: DevServer, *, login: str | None, password: str | None, **extra: Any) -> str:
    """An ``AIRFLOW_CONN_<ID>`` value (JSON) for a ``cyberark`` connection to ``server``."""
    info = server.info()
    return json.dumps(
        {
            "conn_type": "cyberark",
            "host": info["url"],
            "login": login,
            "password": password,
            "extra": {"ca_bundle": info["ca_cert"], **FAST_EXTRAS, **extra},
        }
    )


def ccp_connection(server: DevServer, **extra: Any) -> str:
    """A ``cyberark`` connection (JSON) to the dev server's CCP as the seed's AppID, with the dev client certificate."""
    info = server.info()
    return connection(
        server,
        login=None,
        password=None,
        api="ccp",
        app_id="AirflowProd",
        client_cert=info["client_cert"],
        client_key=info["client_key"],
        **extra,
    )


def vault_calls(server: DevServer, since: int = 0) -> list[dict[str, Any]]:
    """Requests the dev server answered on its CyberArk APIs (its own ``/_dev`` admin API excluded)."""
    return [e for e in server.app.audit.events(since) if not str(e["action"]).startswith("dev.")]


@dataclass
class DagRun:
    """One finished run on a stopped stack; XCom is read straight from its metadata DB."""

    stack: AirflowStack
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str]

    def xcom(self, task_id: str) -> Any:
        rows = self.stack.query(
            "select value from xcom where dag_id=:dag_id and run_id=:run_id and task_id=:task_id "
            "and key='return_value'",
            dag_id=self.dag_id,
            run_id=self.run_id,
            task_id=task_id,
        )
        if not rows:
            return None
        # SQLite hands the JSON column back as text, PostgreSQL's JSONB already decoded.
        value = rows[0][0]
        return plain_xcom(json.loads(value) if isinstance(value, (str, bytes)) else value)

    def explain(self) -> str:
        return f"{self.dag_id}: {self.state} {self.task_states}; see {self.stack.process_log('scheduler')}"


def plain_xcom(value: Any) -> Any:
    """XCom's JSON with Airflow's serialized tuples (``{"__classname__": ..., "__data__": [...]}``) as lists."""
    if isinstance(value, dict):
        if "__data__" in value and "__classname__" in value:
            return plain_xcom(value["__data__"])
        return {k: plain_xcom(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_xcom(v) for v in value]
    return value


def run_dags(stack: AirflowStack, dag_ids: Sequence[str], *, timeout: float = 180) -> dict[str, DagRun]:
    """Starts the stack, triggers each DAG once, waits for every run, stops.

    Triggers go through the REST API one at a time (SQLite takes one writer at a time); states are
    read from the metadata DB, where polling costs no process at all."""
    stack.migrate()
    stack.start()
    try:
        for dag_id in dag_ids:
            stack.wait_for_dag(dag_id)
        run_ids = {dag_id: stack.trigger(dag_id) for dag_id in dag_ids}
        deadline = time.monotonic() + timeout
        while True:
            states = {dag_id: stack.run_state(run_id) for dag_id, run_id in run_ids.items()}
            if all(state in ("success", "failed") for state in states.values()):
                tasks = {dag_id: stack.task_states(dag_id, run_id) for dag_id, run_id in run_ids.items()}
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"runs not finished in {timeout} s: {states}")
            time.sleep(1)
    finally:
        stack.stop()
    return {
        dag_id: DagRun(stack, dag_id, run_id, str(states[dag_id]), tasks[dag_id]) for dag_id, run_id in run_ids.items()
    }


def stored_places(stack: AirflowStack, dag_ids: Iterable[str]) -> dict[str, bytes]:
    """What Airflow kept of the runs: each task log file, each metadata table (rows as ``repr`` and
    JSON, binary cells also as they are), and on SQLite a dump of the whole DB, by a name that says
    where a hit was."""
    places = {
        str(path.relative_to(stack.home)): path.read_bytes()
        for dag_id in dag_ids
        for path in stack.task_log_files(dag_id)
    }
    for table, rows in stack.tables().items():
        binary = b"".join(bytes(cell) for row in rows for cell in row if isinstance(cell, (bytes, memoryview)))
        places[f"table {table}"] = repr(rows).encode() + json.dumps(rows, default=str).encode() + binary
    if stack.database_url.startswith("sqlite:///"):
        with sqlite3.connect(stack.database_url.removeprefix("sqlite:///")) as db:
            places["sqlite dump"] = "\n".join(db.iterdump()).encode()
    return places


def find_leaks(places: Mapping[str, bytes], forms: Mapping[str, str]) -> list[str]:
    """``"<form> in <place>"`` for every form of a secret found in a place."""
    return [
        f"{form} in {place}"
        for form, value in forms.items()
        for place, data in places.items()
        if value.encode() in data
    ]
