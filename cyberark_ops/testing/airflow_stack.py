"""Runs DAGs on Airflow's real supervisor path: api-server + scheduler + dag-processor, LocalExecutor.

``dag.test()`` and ``airflow dags test`` never mask secrets and write no task logs, so they prove
nothing about leaks; this stack behaves as production does, in a throwaway ``AIRFLOW_HOME`` on
SQLite, and is what the demo and the leak tests use. The load test runs it on PostgreSQL and adds
components of its own (Celery workers) with :meth:`AirflowStack.add_component`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import sqlalchemy
import sqlalchemy.pool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


COMPONENTS = ("api-server", "scheduler", "dag-processor")


class AirflowStackError(RuntimeError):
    pass


class AirflowStack:
    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        extra_env: Mapping[str, str] | None = None,
        *,
        python: str = sys.executable,
        database_url: str | None = None,
    ) -> None:
        """``database_url``: an SQLAlchemy URL of an existing, empty metadata DB (else SQLite in ``home``)."""
        self.home = home
        self.dags_folder = dags_folder
        self.python = python
        self.port = free_port()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._outputs: list[IO[bytes]] = []
        self._extra_components: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.launch_env: dict[str, dict[str, str]] = {}
        """The environment each started component was given. ``/proc/<pid>/environ`` cannot tell:
        it read empty for Celery workers that had been given it (process titles overwrite it)."""
        self.database_url = database_url or f"sqlite:///{home / 'airflow.db'}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            **(extra_env or {}),
        }

    @property
    def airflow(self) -> list[str]:
        return [self.python, "-m", "airflow"]

    def cli(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(  # noqa: S603 - argv built from our own constants
            [*self.airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise AirflowStackError(
                f"airflow {args[0]} {args[1] if len(args) > 1 else ''} failed:\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def cli_json(self, *args: str) -> Any:
        """Runs a CLI command with ``-o json``; Airflow prints warnings on stdout before the JSON."""
        out = self.cli(*args, "-o", "json")
        for line in out.splitlines():
            if line.startswith(("[", "{")):
                return json.loads(line)
        return []

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate", timeout=300)

    def add_component(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """One more ``airflow <args>`` process for :meth:`start`, e.g. a Celery worker, with ``env``
        on top of the stack's: settings only that process gets, as a worker host's would be."""
        if name in COMPONENTS or name in self._extra_components:
            raise AirflowStackError(f"component {name!r} exists already")
        self._extra_components[name] = (list(args), {**self.env, **(env or {})})

    def start(self, components: Sequence[str] = COMPONENTS) -> None:
        """``components`` narrows the stack, e.g. to ``("api-server",)`` for a UI-only test: on two
        cores a scheduler and a dag-processor idling next to the UI only slow it down. Components
        added with :meth:`add_component` always start."""
        unknown = set(components) - set(COMPONENTS)
        if unknown or "api-server" not in components:
            raise AirflowStackError(f"components: need the api-server, and only some of {', '.join(COMPONENTS)}")
        logs = self.home / "process-logs"
        logs.mkdir(parents=True, exist_ok=True)
        commands = {
            "api-server": (["api-server", "--port", str(self.port), "--host", "127.0.0.1"], self.env),
            "scheduler": (["scheduler"], self.env),
            "dag-processor": (["dag-processor"], self.env),
        }
        launches = [
            *((name, *commands[name]) for name in components),
            *((n, *c) for n, c in self._extra_components.items()),
        ]
        for name, args, env in launches:
            out = (logs / f"{name}.log").open("wb")
            self._outputs.append(out)
            proc = subprocess.Popen(  # noqa: S603
                [*self.airflow, *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._procs[name] = proc
            self.launch_env[name] = dict(env)
        self._wait_for_api()

    def _wait_for_api(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise AirflowStackError("the api-server did not start listening in time")

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise AirflowStackError(f"airflow {name} exited with {proc.returncode}; see {self.process_log(name)}")

    def process_log(self, name: str) -> Path:
        return self.home / "process-logs" / f"{name}.log"

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            listed = self.cli_json("dags", "list")
            if any(d.get("dag_id") == dag_id for d in listed):
                return
            errors = json.dumps(self.cli_json("dags", "list-import-errors"))
            if dag_id in errors:
                raise AirflowStackError(f"DAG {dag_id} failed to import: {errors[-3000:]}")
            time.sleep(2)
        raise AirflowStackError(f"DAG {dag_id} was not parsed in {timeout} s")

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        self.cli("dags", "unpause", dag_id)
        run_id = f"manual__cyberark_ops_{int(time.time() * 1000)}"
        args = ["dags", "trigger", dag_id, "--run-id", run_id]
        if conf:
            args += ["--conf", json.dumps(conf)]
        self.cli(*args)
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.cli("dags", "state", dag_id, run_id).strip().splitlines()[-1].split(",")[0]
            if state in ("success", "failed"):
                return state
            time.sleep(1.5)
        raise AirflowStackError(f"run {run_id} of {dag_id} did not finish in {timeout} s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        rows = self.cli_json("tasks", "states-for-dag-run", dag_id, run_id)
        return {row["task_id"]: row["state"] for row in rows}

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (``:name`` placeholders) on the metadata DB, whichever database it is."""
        if self.database_url.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(self.database_url.removeprefix("sqlite:///"))) as db:
                return db.execute(sql, params).fetchall()
        engine = self._engine()
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sqlalchemy.text(sql), params)]

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table of the metadata DB, by table name."""
        if self.database_url.startswith("sqlite:///"):
            names = [row[0] for row in self.query("select name from sqlite_master where type='table'")]
        else:
            names = sqlalchemy.inspect(self._engine()).get_table_names()
        # Names from the DB's own catalogue, quoted.
        return {name: self.query(f'select * from "{name}"') for name in names}  # noqa: S608

    def _engine(self) -> sqlalchemy.engine.Engine:
        # NullPool: nothing stays connected to the DB after a query, so the test can drop it.
        return sqlalchemy.create_engine(self.database_url, poolclass=sqlalchemy.pool.NullPool)

    def task_log_files(self, dag_id: str) -> list[Path]:
        return sorted((self.home / "logs" / f"dag_id={dag_id}").rglob("*.log"))

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        self._procs.clear()
        for out in self._outputs:
            out.close()
        self._outputs.clear()

    def __enter__(self) -> AirflowStack:
        self.migrate()
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
