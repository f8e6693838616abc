"""``cyberark-ops migrate plan|apply`` in a real Airflow home (SQLite metadata DB, Fernet key), as
subprocesses, against the dev server: the metadata DB ends with no secret, every output is free of
values, and Ctrl-C between the writes and the removal loses nothing."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.migrate.airflow_home import (
    airflow_home,
    apply_args,
    dump,
    files_under,
    held_in_airflow,
    interrupted_apply,
    migrate,
    migrator_env,
    outputs,
    populate,
)
from tests.migrate.conftest import Target

pytestmark = pytest.mark.slow  # a real Airflow home driven through the CLI in subprocesses

CANARY = "CANARY-5b9c-"
CONNECTIONS: dict[str, Any] = {
    "warehouse": {"conn_type": "postgres", "host": "pg.internal", "login": "etl", "password": f"{CANARY}pg p@ss/:?#%"},
    "http_api": {
        "conn_type": "http",
        "host": "api.example.com",
        "extra": json.dumps({"api_key": f"{CANARY}api-key", "timeout": 30}),
    },
    "from_uri": {"uri": f"mysql://app:{CANARY}my%40sql%2Fpw@mysql.internal:3306/app?charset=utf8mb4"},
    "plain_http": {"conn_type": "http", "host": "public.example.com"},
}
VARIABLES = {"api_token": f"{CANARY}token", "db_password": f"{CANARY}db", "region": "eu-west-1"}
ENV = {
    "AIRFLOW_CONN_ENV_DB": f"postgres://envuser:{CANARY}env-pw@env.internal/db",
    "AIRFLOW_VAR_ENV_SECRET": f"{CANARY}envvar",
}


def home_with_secrets(tmp_path: Path) -> AirflowStack:
    stack = airflow_home(tmp_path / "airflow", ENV)
    populate(stack, CONNECTIONS, VARIABLES)
    return stack


def plan_args(target: Target, out: Path) -> list[str]:
    return [
        "plan",
        "--out",
        str(out),
        "--backend-kwargs",
        json.dumps(target.backend_kwargs()),
        "--grant-to",
        "host/airflow/worker",
    ]


def test_plan_apply_remove_leaves_no_secret_in_the_metadata_db(target: Target, tmp_path: Path) -> None:
    stack = home_with_secrets(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    plan_path = work / "plan.json"
    planned = migrate(stack, *plan_args(target, plan_path))
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(plan_path.read_text())
    assert sorted(e["id"] for e in plan["entries"]) == [
        "api_token",
        "db_password",
        "env_db",
        "env_secret",
        "from_uri",
        "http_api",
        "warehouse",
    ]
    assert {x["id"] for x in plan["left"]} == {"plain_http", "region"}

    migrator = migrator_env(target)
    apply = apply_args(plan_path)
    dry = migrate(stack, *apply, env=migrator)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout
    assert len(target.server.app.audit.events(action="conjur.store")) == 0

    done = migrate(stack, *apply, "--execute", "--remove-from-airflow", env=migrator)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "AIRFLOW__SECRETS__BACKEND_KWARGS" in done.stdout
    assert "remove AIRFLOW_CONN_ENV_DB from the deployment" in done.stdout
    report = json.loads((work / "plan.json.report.json").read_text())
    assert report["counts"]["verified"] == 7 and report["counts"]["failed"] == 0
    left = {r["id"]: r["note"] for r in report["rows"] if not r["verified"]}
    assert left == {
        "plain_http": "left by the plan: holds no secret (no password, no sensitive extra or name)",
        "region": "left by the plan: holds no secret (no password, no sensitive extra or name)",
    }

    after = dump(stack)
    assert CANARY not in json.dumps(after)
    assert after["connections"]["warehouse"]["host"] == "pg.internal"  # non-secret parts kept
    assert after["connections"]["warehouse"]["password"] is None
    assert json.loads(after["connections"]["http_api"]["extra"]) == {"timeout": 30}
    assert set(after["variables"]) == {"region"}
    assert target.stored("airflow/prod/connections/warehouse") is not None
    assert target.stored("airflow/prod/variables/env_secret") == ENV["AIRFLOW_VAR_ENV_SECRET"].encode()
    no_value = outputs(planned, dry, done) + files_under(work)
    assert CANARY not in no_value

    again = migrate(stack, *apply, "--execute", "--remove-from-airflow", env=migrator)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(target.server.app.audit.events(action="conjur.store")) == 7  # nothing written twice


def test_ctrl_c_between_the_writes_and_the_removal_leaves_each_secret_somewhere(target: Target, tmp_path: Path) -> None:
    stack = home_with_secrets(tmp_path)
    plan_path = tmp_path / "plan.json"
    assert migrate(stack, *plan_args(target, plan_path)).returncode == 0
    plan = json.loads(plan_path.read_text())
    migrator = migrator_env(target)
    # Slow reads: the interrupt lands while values are being written and verified.
    target.server.app.knobs.set_latency("conjur.retrieve", 0.4)
    assert CANARY not in interrupted_apply(stack, plan_path, migrator)

    state = json.loads((tmp_path / "plan.json.state").read_text())["entries"]
    held = held_in_airflow(stack)
    for entry in plan["entries"]:
        in_vault = target.stored(entry["variable_id"])
        in_airflow = entry["source"] == "env" or CANARY in json.dumps(held.get(f"{entry['kind']}:{entry['id']}"))
        assert in_airflow or (in_vault is not None and state.get(f"{entry['kind']}:{entry['id']}")), entry
    assert len(state) < len(plan["entries"])

    target.server.app.knobs.set_latency("conjur.retrieve", 0)
    rerun = migrate(stack, *apply_args(plan_path, "--execute", "--remove-from-airflow"), env=migrator)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert CANARY not in json.dumps(dump(stack))


def test_bad_input_is_named_and_exit_code_2(target: Target, tmp_path: Path) -> None:
    stack = airflow_home(tmp_path / "airflow")
    bad = migrate(stack, "plan", "--out", str(tmp_path / "p.json"), "--backend-kwargs", "{not json")
    assert bad.returncode == 2 and "--backend-kwargs: not valid JSON" in bad.stderr
    none = migrate(stack, "plan", "--out", str(tmp_path / "p.json"))
    assert none.returncode == 2 and "[secrets] backend_kwargs is not set" in none.stderr
    missing = migrate(stack, "apply", "--plan", str(tmp_path / "nope.json"), "--vault-conn-id", "x")
    assert missing.returncode == 2 and "--plan: cannot read a migration plan from" in missing.stderr
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    hostile = migrate(stack, "apply", "--plan", str(fifo), "--vault-conn-id", "x", timeout=60)
    assert hostile.returncode == 2 and f"--plan: '{fifo}' is not a regular file (a FIFO)" in hostile.stderr


def test_a_connection_airflow_cannot_read_is_left_with_a_reason(target: Target, tmp_path: Path) -> None:
    """Before, an Extra nested 100,000 deep in one metadata DB row (Airflow's own check recurses on
    it) ended the whole plan in a RecursionError."""
    stack = home_with_secrets(tmp_path)
    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    with sqlite3.connect(stack.database_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE connection SET extra = ?, is_extra_encrypted = 0 WHERE conn_id = 'http_api'", (deep,))
    plan_path = tmp_path / "plan.json"
    planned = migrate(stack, *plan_args(target, plan_path))
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(plan_path.read_text())
    left = {x["id"]: (x["source"], x["reason"]) for x in plan["left"]}
    assert left["http_api"] == (
        "db-invalid",
        "Airflow cannot read its Extra (JSON nested past Python's recursion limit)",
    )
    assert {"warehouse", "from_uri", "api_token"} <= {e["id"] for e in plan["entries"]}
