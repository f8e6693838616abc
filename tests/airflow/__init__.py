"""Airflow integration tests: real Airflow 3 processes, real HTTPS to an in-process dev server.

Every Airflow process runs as a subprocess with its own throwaway ``AIRFLOW_HOME`` (never
``~/airflow``), so settings from the environment apply before Airflow is imported, and no test
sees another's metadata DB. Helpers shared by the modules live here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cyberark_ops.devserver import DevServer

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


def vault_calls(server: DevServer, since: int = 0) -> list[dict[str, Any]]:
    """Requests the dev server answered on its CyberArk APIs (its own ``/_dev`` admin API excluded)."""
    return [e for e in server.app.audit.events(since) if not str(e["action"]).startswith("dev.")]
