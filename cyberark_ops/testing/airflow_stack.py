"""Runs DAGs on Airflow's real supervisor path: api-server + scheduler + dag-processor, LocalExecutor.

``dag.test()`` and ``airflow dags test`` never mask secrets and write no task logs, so they prove
nothing about leaks; this stack behaves as production does, in a throwaway ``AIRFLOW_HOME`` on
SQLite, and is what the demo and the leak tests use.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any


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
    ) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.python = python
        self.port = free_port()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._outputs: list[IO[bytes]] = []
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
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
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

    def start(self, components: Sequence[str] = COMPONENTS) -> None:
        """``components`` narrows the stack, e.g. to ``("api-server",)`` for a UI-only test: on two
        cores a scheduler and a dag-processor idling next to the UI only slow it down."""
        unknown = set(components) - set(COMPONENTS)
        if unknown or "api-server" not in components:
            raise AirflowStackError(f"components: need the api-server, and only some of {', '.join(COMPONENTS)}")
        logs = self.home / "process-logs"
        logs.mkdir(parents=True, exist_ok=True)
        commands = {
            "api-server": ["api-server", "--port", str(self.port), "--host", "127.0.0.1"],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
        }
        for name in components:
            args = commands[name]
            out = (logs / f"{name}.log").open("wb")
            self._outputs.append(out)
            self._procs[name] = subprocess.Popen(  # noqa: S603
                [*self.airflow, *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
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
