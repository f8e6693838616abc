"""Runs DAGs on Airflow's real supervisor path: api-server + scheduler + dag-processor, LocalExecutor.

``dag.test()`` and ``airflow dags test`` never mask secrets and write no task logs, so they prove
nothing about leaks; this stack behaves as production does, in a throwaway ``AIRFLOW_HOME`` on
SQLite, and is what the demo and the leak tests use. The load test runs it on PostgreSQL and adds
components of its own (Celery workers) with :meth:`AirflowStack.add_component`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import sqlalchemy
import sqlalchemy.exc
import sqlalchemy.pool

SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 60}
"""``[database] sql_alchemy_connect_args`` of a stack on SQLite (named by import path): four Airflow
processes and the task processes write to one file, and on two busy cores a writer can hold its lock
past sqlite3's default 5 s busy timeout; the scheduler then dies of "database is locked"."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


COMPONENTS = ("api-server", "scheduler", "dag-processor")
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""The stack's own api-server, never through a proxy from the environment."""


class AirflowStackError(RuntimeError):
    pass


@functools.cache
def _install_key(python: str) -> str | None:
    """Asked once per interpreter and process: each stack's migration would otherwise start one more."""
    try:
        version = subprocess.run(  # noqa: S603 - our own interpreter
            [python, "-c", "from importlib.metadata import version; print(version('apache-airflow'))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return hashlib.sha256(f"{os.path.realpath(python)}\0{version}".encode()).hexdigest()[:16]


class _HttpStatus(AirflowStackError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
        self._token: str | None = None
        self.migrated = False
        """True once the metadata DB is at this Airflow's schema (:meth:`migrate` then does nothing)."""
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
            # The supervisor's calls to the execution API time out after 5 s by default: on two
            # cores shared by two stacks, a task's first call can wait longer than that.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            **(self._sqlite_settings() if self.database_url.startswith("sqlite") else {}),
            **(extra_env or {}),
        }

    @staticmethod
    def _sqlite_settings() -> dict[str, str]:
        where = f"{__name__}.SQLITE_CONNECT_ARGS"
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": where,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": where,
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
        """An SQLite metadata DB is copied from one migrated per Airflow install (a migration is a
        whole Airflow process, seconds on a loaded machine, for a result that is the same each time);
        any other database is migrated in place, unless the caller made it from a migrated
        template and set :attr:`migrated`."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.migrated:
            return
        template = self._migrated_template() if self.database_url.startswith("sqlite:///") else None
        if template is None:
            self.cli("db", "migrate", timeout=300)
        else:
            shutil.copyfile(template, self.database_url.removeprefix("sqlite:///"))
        self.migrated = True

    def install_key(self) -> str | None:
        """Names this interpreter's Airflow install (path and version): a migrated DB fits only it."""
        return _install_key(self.python)

    def _migrated_template(self) -> Path | None:
        """A migrated SQLite DB for this interpreter's Airflow, made once and then reused."""
        key = self.install_key()
        if key is None:
            return None
        cache = Path(tempfile.gettempdir()) / f"cyberark-ops-airflow-db-{os.getuid()}"
        template = cache / f"{key}.db"
        if template.is_file():
            return template
        cache.mkdir(mode=0o700, exist_ok=True)
        # One builder per install: the stacks that xdist workers start at once wait for its copy
        # (a migration is an Airflow process of seconds of CPU apiece, on cores they share).
        with open(cache / f"{key}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if template.is_file():
                return template
            building = cache / f"{key}.{os.getpid()}.building"
            scratch = AirflowStack(
                cache / f"home-{key}-{os.getpid()}",
                self.dags_folder,
                python=self.python,
                database_url=f"sqlite:///{building}",
            )
            scratch.home.mkdir(parents=True, exist_ok=True)
            try:
                scratch.cli("db", "migrate", timeout=300)
                os.replace(building, template)  # atomic: a reader never sees half a file
            finally:
                building.unlink(missing_ok=True)
                shutil.rmtree(scratch.home, ignore_errors=True)
        return template

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
        """Until the dag-processor has stored ``dag_id``, read from the metadata DB (each CLI call
        would be a whole Airflow process taking a core for seconds, beside the stack it waits for)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.query("select 1 from serialized_dag where dag_id=:dag_id", dag_id=dag_id):
                return
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, sqlite3.Error):  # not created yet
                errors = [row[0] for row in self.query("select stacktrace from import_error")]
                if any(dag_id in str(error) for error in errors):
                    raise AirflowStackError(f"DAG {dag_id} failed to import: {errors[-1][-3000:]}")
            time.sleep(1)
        raise AirflowStackError(f"DAG {dag_id} was not parsed in {timeout} s")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One call to the api-server's REST API (``/api/v2/...``), as the all-admins user."""
        if self._token is None:
            self._token = str(self._http("GET", "/auth/token", None, {})["access_token"])
        return self._http(method, path, body, {"Authorization": f"Bearer {self._token}"})

    def _http(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={**headers, "Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with _LOOPBACK.open(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise _HttpStatus(error.code, f"{method} {path}: {error.code} {error.read()[:2000]!r}") from None

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Unpauses and triggers through the REST API (the CLI would take a whole process each).

        On SQLite the api-server answers 500 when the scheduler holds the database longer than its
        busy timeout, or (when its own handlers wait on each other's lock: seen with four task
        starts at once) answers after our 60 s read timeout: such a call is repeated (a run that the
        first try created answers 409)."""
        quoted = urllib.parse.quote(dag_id, safe="")
        run_id = f"manual__cyberark_ops_{time.time_ns()}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        self._repeating_server_failures("PATCH", f"/api/v2/dags/{quoted}", {"is_paused": False})
        self._repeating_server_failures("POST", f"/api/v2/dags/{quoted}/dagRuns", body, done_if_conflict=True)
        return run_id

    def _repeating_server_failures(self, method: str, path: str, body: Any, *, done_if_conflict: bool = False) -> None:
        for attempt in range(5):
            try:
                self.api(method, path, body)
                return
            except TimeoutError:
                if attempt == 4:
                    raise
                continue  # the server was stuck on its database lock, which it gives up after 60 s
            except _HttpStatus as error:
                if attempt and done_if_conflict and error.status == 409:
                    return
                if error.status < 500 or attempt == 4:
                    raise AirflowStackError(str(error)) from None
                time.sleep(1)

    def run_state(self, run_id: str) -> str | None:
        rows = self.query("select state from dag_run where run_id=:run_id", run_id=run_id)
        return str(rows[0][0]) if rows else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.run_state(run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        raise AirflowStackError(f"run {run_id} of {dag_id} did not finish in {timeout} s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """State by task id, ``task[i]`` for a mapped task's instance ``i``."""
        rows = self.query(
            "select task_id, map_index, state from task_instance where dag_id=:dag_id and run_id=:run_id",
            dag_id=dag_id,
            run_id=run_id,
        )
        return {(task if index < 0 else f"{task}[{index}]"): str(state) for task, index, state in rows}

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
