"""A throwaway Airflow home (migrated SQLite DB, a Fernet key) and the migrate CLI run inside it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

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


def populate(stack: AirflowStack, connections: Mapping[str, Any], variables: Mapping[str, str]) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "populate"],
        input=json.dumps({"connections": connections, "variables": variables}),
        env=stack.env,
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )


def dump(stack: AirflowStack) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "dump"], env=stack.env, text=True, check=True, capture_output=True, timeout=120
    ).stdout
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


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
