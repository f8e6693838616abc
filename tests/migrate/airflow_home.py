"""A throwaway Airflow home (migrated SQLite DB, a Fernet key) and the migrate CLI run inside it, as
the CLI tests of both vaults (Conjur, PVWA) and the end-to-end test drive it."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, MultiFernet

from cyberark_ops.testing.airflow_stack import AirflowStack

SCRIPT = Path(__file__).resolve().parent / "scripts" / "airflow_db.py"


def airflow_home(base: Path, extra_env: Mapping[str, str] | None = None) -> AirflowStack:
    dags = base / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    stack = AirflowStack(
        base / "home", dags, {"AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(), **(extra_env or {})}
    )
    stack.migrate()
    return stack


_POPULATED: dict[str, tuple[bytes, str]] = {}
"""The metadata DB and Fernet key that ``populate`` left for a spec, by the spec's JSON."""


def populate(stack: AirflowStack, connections: Mapping[str, Any], variables: Mapping[str, str]) -> None:
    """Writes the connections and variables through Airflow's ORM (a process importing Airflow);
    a spec written once in this test process is copied with its key instead (the CLI tests start
    each test from the same secrets: one process a module rather than one a test)."""
    spec = json.dumps({"connections": connections, "variables": variables}, sort_keys=True)
    database = Path(stack.database_url.removeprefix("sqlite:///"))
    if spec in _POPULATED:
        content, key = _POPULATED[spec]
        database.write_bytes(content)
        stack.env["AIRFLOW__CORE__FERNET_KEY"] = key
        return
    subprocess.run(
        [sys.executable, str(SCRIPT), "populate"],
        input=spec,
        env=stack.env,
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )
    _POPULATED[spec] = (database.read_bytes(), stack.env["AIRFLOW__CORE__FERNET_KEY"])


def dump(stack: AirflowStack) -> dict[str, Any]:
    """The metadata DB's connections and variables, decrypted, read from the SQLite file with the
    home's Fernet key (what Airflow's ORM would return: ``populate`` writes through it; reading
    here spares a process that imports Airflow for every look)."""
    fernet = MultiFernet([Fernet(key.encode()) for key in stack.env["AIRFLOW__CORE__FERNET_KEY"].split(",")])

    def clear(value: str | None, encrypted: bool) -> str | None:
        return fernet.decrypt(value.encode()).decode() if value is not None and encrypted else value

    with contextlib.closing(sqlite3.connect(stack.database_url.removeprefix("sqlite:///"))) as db:
        connections = {
            conn_id: {
                "conn_type": conn_type,
                "host": host,
                "login": login,
                "password": clear(password, bool(is_encrypted)),
                "schema": schema,
                "port": port,
                "extra": clear(extra, bool(is_extra_encrypted)),
            }
            for conn_id, conn_type, host, login, password, schema, port, extra, is_encrypted, is_extra_encrypted in (
                db.execute(
                    "select conn_id, conn_type, host, login, password, schema, port, extra, is_encrypted,"
                    " is_extra_encrypted from connection"
                )
            )
        }
        variables = {
            key: clear(val, bool(is_encrypted))
            for key, val, is_encrypted in db.execute("select key, val, is_encrypted from variable")
        }
    return {"connections": connections, "variables": variables}


def migrate_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cyberark_ops.cli", "migrate", *args]


def migrate(
    stack: AirflowStack, *args: str, env: Mapping[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        migrate_command(*args),
        env={**stack.env, **(env or {})},
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


MIGRATOR_CONN_ID = "cyberark_migrator"


class _Migrating(Protocol):
    def migrator_connection(self) -> dict[str, Any]: ...


def migrator_env(target: _Migrating) -> dict[str, str]:
    """The migration identity as the CLI finds it: an Airflow connection in the environment."""
    return {f"AIRFLOW_CONN_{MIGRATOR_CONN_ID.upper()}": json.dumps(target.migrator_connection())}


def apply_args(plan_path: Path, *flags: str) -> list[str]:
    return ["apply", "--plan", str(plan_path), "--vault-conn-id", MIGRATOR_CONN_ID, *flags]


def outputs(*results: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(r.stdout + r.stderr for r in results)


def files_under(path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in path.rglob("*") if p.is_file() and p.suffix != ".pem")


def held_in_airflow(stack: AirflowStack) -> dict[str, Any]:
    """What the metadata DB holds, by the plan's keys (``connection:<id>``, ``variable:<key>``)."""
    after = dump(stack)
    return {
        **{f"connection:{k}": v for k, v in after["connections"].items()},
        **{f"variable:{k}": v for k, v in after["variables"].items()},
    }


def _wait_for(process: subprocess.Popen[str], text: str, timeout: float = 120) -> list[str]:
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} in:\n{''.join(seen)}")


def _sigint_as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupted_apply(stack: AirflowStack, plan_path: Path, env: Mapping[str, str]) -> str:
    """``apply --execute --remove-from-airflow`` sent Ctrl-C once a first value is verified; asserts
    it exits 130 saying it was interrupted, and returns its stdout and stderr."""
    process = subprocess.Popen(
        migrate_command(*apply_args(plan_path, "--execute", "--remove-from-airflow")),
        env={**stack.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a run started in the background inherits SIGINT ignored, and Python
        # then never turns it into KeyboardInterrupt (the Ctrl-C would go unnoticed).
        preexec_fn=_sigint_as_at_a_terminal,  # noqa: PLW1509 - the test process starts no threads that fork
    )
    try:
        _wait_for(process, "verified at")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stdout
    return stdout + stderr
