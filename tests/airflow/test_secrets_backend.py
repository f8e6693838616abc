"""The secrets backend configured in a real Airflow 3, for each API, on the real supervisor path.

Only environment variables configure it (``AIRFLOW__SECRETS__BACKEND`` / ``_KWARGS``, and the
worker-side ``AIRFLOW__WORKERS__SECRETS_BACKEND`` / ``_KWARGS`` for Conjur), as users would. The
CLI (``airflow connections get``, ``variables get``, ``config get-value``) and tasks with no
CyberArk code at all (``BaseHook.get_connection``, ``Variable.get``) must get their values from
the dev server, and its audit log must show what each lookup cost.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import FAST_EXTRAS, SCRIPTS, vault_calls
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN, PVWA_PASSWORD, PVWA_USER

pytestmark = pytest.mark.airflow

DAG_ID = "cyberark_backend_tasks"
BACKEND = "cyberark_ops.secrets.CyberArkSecretsBackend"
PG_PROD = {"login": "etl_user", "password": "Pg-Pr0d-Dev!", "conn_type": "postgres"}


@dataclass
class ApiCase:
    name: str
    conn_id: str
    variable: str
    config_key: str
    expected_login: str
    expected_password: str
    expected_conn_type: str
    expected_variable: str
    expected_config: str
    tasks: int
    auth_action: str | None
    fetch_action: str


CASES = {
    "conjur": ApiCase(
        "conjur",
        "demo_postgres",
        "username",
        "key",
        "airflow_demo",
        "Demo-PG-Passw0rd!",
        "postgres",
        "airflow_demo",
        "demo-api-key-v3",
        10,
        "conjur.authenticate",
        "conjur.retrieve",
    ),
    "ccp": ApiCase(
        "ccp",
        "pg-prod",
        "pg-prod",
        "pg-prod",
        "etl_user",
        "Pg-Pr0d-Dev!",
        "postgres",
        "Pg-Pr0d-Dev!",
        "Pg-Pr0d-Dev!",
        2,
        None,
        "ccp.get_password",
    ),
    "pvwa": ApiCase(
        "pvwa",
        "pg-prod",
        "pg-prod",
        "pg-prod",
        "etl_user",
        "Pg-Pr0d-Dev!",
        "postgres",
        "Pg-Pr0d-Dev!",
        "Pg-Pr0d-Dev!",
        2,
        "pvwa.logon",
        "pvwa.retrieve_password",
    ),
}


def _kwargs(case: ApiCase, info: dict[str, Any], keys: Path) -> dict[str, Any]:
    common = {"url": info["url"], "ca_bundle": str(keys / "ca.pem"), **FAST_EXTRAS}
    if case.name == "conjur":
        return {
            **common,
            "api": "conjur",
            "login": HOST_LOGIN,
            "api_key_file": str(keys / "conjur-key"),
            "account": info["conjur_account"],
            "env": "dev",
            "connections_path": "airflow/{env}/connections/{conn_id}",
            "variables_path": "prod/db/{variable}",
            "config_path": "prod/api/{key}",
            "connections_lookup_pattern": "^demo_",
        }
    if case.name == "ccp":
        return {
            **common,
            "api": "ccp",
            "app_id": "AirflowProd",
            "client_cert": info["client_cert"],
            "client_key": info["client_key"],
            "conn_type": "postgres",
            "connections_path": "ccp:Safe=DB-Prod;Object={conn_id}",
            "variables_path": "ccp:Safe=DB-Prod;Object={variable}",
            "config_path": "ccp:Safe=DB-Prod;Object={key}",
        }
    return {
        **common,
        "api": "pvwa",
        "login": PVWA_USER,
        "password_env": "TEST_PVWA_PASSWORD",
        "conn_type": "postgres",
        "connections_path": "pvwa:DB-Prod/{conn_id}",
        "variables_path": "DB-Prod/{variable}",
        "config_path": "DB-Prod/{key}",
    }


@dataclass
class BackendRun:
    case: ApiCase
    state: str
    results: list[dict[str, Any]]
    cli_connection: dict[str, Any]
    cli_variable: str
    cli_config: str
    task_calls: list[dict[str, Any]]
    outside_pattern_calls: list[dict[str, Any]]


def _xcoms(db: Path, run_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select value from xcom where dag_id=? and run_id=? and key='return_value'", (DAG_ID, run_id)
        ).fetchall()
    return [json.loads(row[0]) for row in rows]


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated metadata DB, copied into each stack's home (migrating is the slow part)."""
    home = tmp_path_factory.mktemp("backend-template") / "home"
    AirflowStack(home, home / "dags").migrate()
    return home


def _run(case: ApiCase, base: Path, template_home: Path) -> BackendRun:
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(SCRIPTS / "backend_dags" / "cyberark_backend_tasks.py", dags)
    with DevServer(None, state_dir=base / "devserver") as server:
        info = server.info()
        keys = base / "keys"
        keys.mkdir()
        shutil.copy(info["ca_cert"], keys / "ca.pem")
        (keys / "conjur-key").write_text(HOST_API_KEY)
        kwargs = _kwargs(case, info, keys)
        env = {
            "AIRFLOW__SECRETS__BACKEND": BACKEND,
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
            "TEST_PVWA_PASSWORD": PVWA_PASSWORD,
            "CYBERARK_TEST_CONN_ID": case.conn_id,
            "CYBERARK_TEST_VARIABLE": case.variable,
            "CYBERARK_TEST_TASKS": str(case.tasks),
        }
        if case.name == "conjur":
            # Tasks resolve through the worker-side setting; its reason tells their calls apart.
            env["AIRFLOW__WORKERS__SECRETS_BACKEND"] = BACKEND
            env["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS"] = json.dumps({**kwargs, "reason": "workers"})
        home = base / "home"
        home.mkdir()
        shutil.copy(template_home / "airflow.db", home / "airflow.db")
        stack = AirflowStack(home, dags, env)
        stack.start()
        try:
            stack.wait_for_dag(DAG_ID)
            since = server.app.audit.last_seq
            run_id = stack.trigger(DAG_ID)
            state = stack.wait_for_run(DAG_ID, run_id, timeout=180)
            task_calls = vault_calls(server, since)
            cli_connection = stack.cli_json("connections", "get", case.conn_id)
            cli_variable = stack.cli("variables", "get", case.variable).strip().splitlines()[-1]
            # Only for this command: every Airflow process reading its config would look it up.
            stack.env["AIRFLOW__ATLAS__PASSWORD_SECRET"] = case.config_key
            cli_config = stack.cli("config", "get-value", "atlas", "password").strip().splitlines()[-1]
            del stack.env["AIRFLOW__ATLAS__PASSWORD_SECRET"]
            before_outside = server.app.audit.last_seq
            if case.name == "conjur":
                # Outside connections_lookup_pattern: resolved by the metastore only (and not found).
                stack.env["AIRFLOW_CONN_LOCAL_ONLY"] = "sqlite:///tmp/local.db"
                stack.cli_json("connections", "get", "local_only")
            outside = vault_calls(server, before_outside)
        finally:
            stack.stop()
        results = _xcoms(home / "airflow.db", run_id)
    connection = cli_connection[0] if isinstance(cli_connection, list) else cli_connection
    return BackendRun(case, state, results, connection, cli_variable, cli_config, task_calls, outside)


@pytest.fixture(scope="module", params=list(CASES))
def backend_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, template_home: Path
) -> Iterator[BackendRun]:
    case = CASES[request.param]
    yield _run(case, tmp_path_factory.mktemp(f"backend-{case.name}"), template_home)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_tasks_get_connections_and_variables_from_cyberark(backend_run: BackendRun) -> None:
    case = backend_run.case
    assert backend_run.state == "success"
    assert len(backend_run.results) == case.tasks
    for result in backend_run.results:
        assert result["login_sha256"] == _sha(case.expected_login)
        assert result["conn_type"] == case.expected_conn_type
        assert result["password_sha256"] == _sha(case.expected_password)
        assert result["variable_sha256"] == _sha(case.expected_variable)
        assert result["same_twice"] is True


def test_the_cli_gets_connection_variable_and_config_from_cyberark(backend_run: BackendRun) -> None:
    case = backend_run.case
    assert backend_run.cli_connection["login"] == case.expected_login
    assert backend_run.cli_connection["password"] == case.expected_password  # the CLI prints it: Airflow's choice
    assert backend_run.cli_variable == case.expected_variable
    assert backend_run.cli_config == case.expected_config


def test_each_task_process_authenticates_at_most_once_and_repeats_cost_nothing(backend_run: BackendRun) -> None:
    case = backend_run.case
    processes = {result["pid"] for result in backend_run.results}
    fetches = [e for e in backend_run.task_calls if e["action"] == case.fetch_action]
    # Per task process: one fetch for the connection (its second lookup is cached) and one for the variable.
    assert len(fetches) == 2 * len(processes)
    if case.auth_action:
        logons = [e for e in backend_run.task_calls if e["action"] == case.auth_action]
        assert 1 <= len(logons) <= len(processes)
    if case.name == "conjur":
        assert all("workers" in str(e.get("reason")) for e in fetches), "tasks used [workers] secrets_backend"


def test_ids_outside_the_lookup_pattern_cost_no_vault_call(backend_run: BackendRun) -> None:
    assert backend_run.outside_pattern_calls == []
