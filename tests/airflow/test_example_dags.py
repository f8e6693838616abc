"""Every example DAG, run end to end on Airflow's real supervisor path against the dev server.

One stack (api-server + scheduler with LocalExecutor + dag-processor, throwaway ``AIRFLOW_HOME``)
whose DAGs folder is a copy of ``example_dags/``, set up with only what the docs tell a user to
set up: the lines ``cyberark-ops devserver --print-connections`` prints, pasted as printed
(connections, secrets backend, the inventory API's variables), the ``deployment_env`` variable
``cyberark_per_environment`` documents, and the PostgreSQL role ``cyberark_vaulted_postgres``
documents. Each DAG is triggered once; afterwards each run's result is checked and no form of any
value the examples fetched may be in a task log file or any metadata table.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import devserver_export_lines
from cyberark_ops.devserver.seed import demo_seed
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import DagRun, find_leaks, pasted, plain_xcom, run_dags, stored_places
from tests.operators.conftest import need_server

# Eight DAGs on two cores: the module's one stack needs more than the suite's 300 s per test.
pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
CLOUD_DAGS = {"cyberark_cloud_identity"}
"""Run by test_cloud_identity_dag.py: they need the cloud stand-ins' seed and the worker's AWS keys."""
DAG_IDS = sorted(path.stem for path in EXAMPLES.glob("*.py") if path.stem not in CLOUD_DAGS)
API_TOKEN_ID = "prod/api/key"
PG_USER, PG_PASSWORD, PG_DB = "etl_user", "Pg-Pr0d-Dev!", "sales"


def _variable(seed: dict[str, Any], variable_id: str) -> dict[str, Any]:
    return next(v for v in seed["conjur"]["variables"] if v.get("id") == variable_id)


def _account(seed: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in seed["vault"]["accounts"] if a["name"] == name)


def _prepare_postgres() -> None:
    import psycopg2

    need_server(5432, "PostgreSQL")
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_roles where rolname = %s", (PG_USER,))
            verb = "alter" if cur.fetchone() else "create"
            cur.execute(f"{verb} role {PG_USER} login password %s", (PG_PASSWORD,))
            cur.execute("select 1 from pg_database where datname = %s", (PG_DB,))
            if cur.fetchone() is None:
                cur.execute(f"create database {PG_DB} owner {PG_USER}")
    finally:
        conn.close()


@dataclass
class Examples:
    runs: dict[str, DagRun]
    stack: AirflowStack
    calls: list[dict[str, Any]]
    fetched: dict[str, str]
    all_requests: list[dict[str, Any]]
    """Every request the dev server answered, its ``/demo/inventory`` stand-in API included."""

    def explain(self) -> str:
        return "; ".join(run.explain() for run in self.runs.values() if run.state != "success")


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Examples]:
    _prepare_postgres()
    base = tmp_path_factory.mktemp("examples")
    dags = base / "dags"
    shutil.copytree(EXAMPLES, dags, ignore=shutil.ignore_patterns("__pycache__"))
    seed = copy.deepcopy(demo_seed())
    # The seed's fixed /tmp paths become this test's own.
    _variable(seed, "demo/sqlite/path")["value"] = str(base / "demo.sqlite")
    backend_db = quote(str(base / "backend.sqlite"), safe="")  # Airflow's URI: the path is the host
    _variable(seed, "airflow/dev/connections/demo_sqlite")["value"] = f"sqlite://{backend_db}"
    _account(seed, "sqlite-dev")["address"] = str(base / "vaulted.sqlite")
    fetched = {
        "conjur prod/db/password": str(_variable(seed, "prod/db/password")["value"]),
        "conjur prod/api/key": str(_variable(seed, API_TOKEN_ID)["values"][-1]),
        "conjur demo/staging/db/password": str(_variable(seed, "demo/staging/db/password")["value"]),
        **{f"conjur prod/batch/secret-0{n}": f"batch-value-0{n}" for n in range(1, 6)},
        "ccp sqlite-dev": str(_account(seed, "sqlite-dev")["secret"]),
        "ccp pg-prod": str(_account(seed, "pg-prod")["secret"]),
    }
    with DevServer(seed, state_dir=base / "devserver") as server:
        # Exactly what `cyberark-ops devserver --print-connections` prints for this server and seed.
        env = pasted(devserver_export_lines(server.info(), seed))
        env["AIRFLOW_VAR_DEPLOYMENT_ENV"] = "staging"  # cyberark_per_environment's docstring
        stack = AirflowStack(base / "home", dags, env)
        stack.add_component("triggerer", ["triggerer"])  # cyberark_deferrable's deferred task
        runs = run_dags(stack, DAG_IDS, timeout=300)
        calls = server.app.audit.events()
    yield Examples(runs, stack, [c for c in calls if not str(c["action"]).startswith("dev.")], fetched, calls)


def _xcoms(run: DagRun, task_id: str) -> list[Any]:
    """Every map index's return value of ``task_id``, in map-index order."""
    with sqlite3.connect(run.stack.home / "airflow.db") as db:
        rows = db.execute(
            "select value from xcom where dag_id=? and run_id=? and task_id=? and key='return_value' "
            "order by map_index",
            (run.dag_id, run.run_id, task_id),
        ).fetchall()
    return [plain_xcom(json.loads(value)) for (value,) in rows]


def test_every_example_dag_was_run(examples: Examples) -> None:
    assert set(examples.runs) == set(DAG_IDS)
    assert len(DAG_IDS) >= 8, DAG_IDS
    assert {dag_id: run.state for dag_id, run in examples.runs.items()} == dict.fromkeys(DAG_IDS, "success"), (
        examples.explain()
    )


def test_vaulted_sql_on_sqlite_and_postgres(examples: Examples) -> None:
    assert examples.runs["cyberark_vaulted_sql"].xcom("sales_by_region") == [["amer", 340], ["apac", 95], ["emea", 180]]
    assert examples.runs["cyberark_vaulted_postgres"].xcom("whoami") == [[PG_USER, PG_DB]]
    assert examples.runs["cyberark_sqlite_demo"].xcom("load_and_query") == [["amer", 340], ["apac", 95], ["emea", 180]]


def test_the_decorated_task_calls_the_api_with_the_vaulted_token(examples: Examples) -> None:
    inventory = [(c["status"], c["detail"]) for c in examples.all_requests if c["action"] == "dev.demo_inventory"]
    assert inventory == [(200, "inventory: bearer token accepted")]
    # The API echoed the token: scrubbed before it became XCom.
    assert examples.runs["cyberark_http_token"].xcom("sync_inventory") == {
        "status": 200,
        "items": 3,
        "echo": "Bearer ***",
    }


def test_the_backend_serves_a_dag_with_no_cyberark_code(examples: Examples) -> None:
    code = (EXAMPLES / "cyberark_backend_sql.py").read_text().split('"""')[2]
    assert "cyberark_ops" not in code and "CyberArk" not in code and "vault" not in code
    assert examples.runs["cyberark_backend_sql"].xcom("sqlite_version") == [["backend", 1]]
    looked_up = [c for c in examples.calls if "airflow/dev/connections/demo_sqlite" in json.dumps(c)]
    assert looked_up, "the connection came from Conjur"
    assert not [c for c in examples.calls if "connections/cyberark_" in json.dumps(c)], "outside the pattern: no call"


def test_ccp_and_pvwa_return_the_accounts_non_secret_parts(examples: Examples) -> None:
    run = examples.runs["cyberark_ccp_pvwa"]
    expected = {"user": PG_USER, "address": "127.0.0.1", "has_secret": True}
    assert run.xcom("from_ccp") == expected
    assert run.xcom("from_pvwa") == expected
    for api in ("ccp", "pvwa"):
        reasons = [str(c.get("reason")) for c in examples.calls if c["api"] == api and c.get("reason")]
        assert any("task=from_" in r and "quarterly reconciliation" in r for r in reasons), (api, reasons)


def test_the_environment_picks_the_path(examples: Examples) -> None:
    result = examples.runs["cyberark_per_environment"].xcom("check_database_password")
    assert result == {
        "env": "staging",
        "path": "demo/staging/db/password",
        "length": len(examples.fetched["conjur demo/staging/db/password"]),
    }


def test_each_mapped_instance_fetches_its_own_and_says_so(examples: Examples) -> None:
    run = examples.runs["cyberark_mapped"]
    assert _xcoms(run, "fetch_one") == [{"id": f"prod/batch/secret-0{n}", "length": 14} for n in range(1, 6)]
    reasons = [str(c.get("reason")) for c in examples.calls if c["api"] == "conjur" and c.get("reason")]
    for index in range(5):
        assert any(re.search(rf"task-fetch-one-run-.*-map-{index}-mapped-export$", r) for r in reasons), reasons


def test_the_deferred_task_waited_in_the_triggerer_and_resumed(examples: Examples) -> None:
    run = examples.runs["cyberark_deferrable"]
    assert run.xcom("wait_until_readable") == {"status": "readable", "refs": ["prod/db/username", "prod/db/password"]}
    assert run.xcom("connect") == {
        "fetched": ["prod/db/password", "prod/db/username"],
        "password_length": len(examples.fetched["conjur prod/db/password"]),
    }


def test_no_fetched_value_in_any_task_log_or_metadata_table(examples: Examples) -> None:
    places = stored_places(examples.stack, DAG_IDS)
    assert sum(1 for place in places if not place.startswith(("table ", "sqlite"))) >= 12, "task logs written"
    forms = {
        f"{what} {form}": value
        for what, secret in examples.fetched.items()
        for form, value in leak_forms(secret).items()
    }
    leaks = find_leaks(places, forms)
    assert leaks == []
    print(f"searched {len(forms)} forms of {len(examples.fetched)} values in {len(places)} places: 0 hits")


def test_no_task_log_warns_of_a_secret_too_short_to_mask(examples: Examples) -> None:
    """Airflow hands a fetched connection's extras dict to its masker, which warned "Skipping
    masking for a secret as it's too short" for ``api="ccp"`` in every task using a cyberark
    connection, as if a secret had gone unmasked."""
    logs = [path for dag_id in DAG_IDS for path in examples.stack.task_log_files(dag_id)]
    assert len(logs) >= 12
    warned = [str(path) for path in logs if "too short" in path.read_text(errors="replace")]
    assert warned == []
