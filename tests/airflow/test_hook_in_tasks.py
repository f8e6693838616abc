"""``CyberArkHook`` inside real Airflow tasks, as seen from the vault's audit log.

One scenario, run once for the module in a throwaway ``AIRFLOW_HOME``, in three phases against an
in-process dev server, each phase's vault calls kept apart:

1. ``airflow dags list --local`` imports a DAG file that builds a hook at module level (parsing);
2. ``airflow connections test`` for a Conjur and a CCP connection (what the UI's Test button runs);
3. ``dag.test()`` of that DAG: a Conjur secret, a batch of 20 Conjur secrets, a CCP credential.

``dag.test()`` does not mask anything, so nothing here is about masking (see ``test_real_path``).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from tests.airflow import (
    PYTHON,
    SCRIPTS,
    airflow,
    airflow_env,
    ccp_connection,
    connection,
    json_output,
    migrate_home,
    run,
    vault_calls,
)
from tests.client.conftest import ADMIN_API_KEY, ADMIN_LOGIN, HOST_API_KEY, HOST_LOGIN

pytestmark = pytest.mark.airflow

DAG_ID = "cyberark_hook_tasks"
FETCHING_ACTIONS = {"conjur.retrieve", "conjur.batch", "ccp.get_password", "pvwa.retrieve_password"}


@dataclass
class Scenario:
    home: Path
    listed_dags: list[str]
    parse_calls: list[dict[str, Any]]
    test_connection_output: dict[str, str]
    test_connection_calls: list[dict[str, Any]]
    run_id: str
    run_state: str
    task_states: dict[str, str]
    run_calls: list[dict[str, Any]]

    def xcom(self, task_id: str) -> Any:
        with sqlite3.connect(self.home / "airflow.db") as db:
            row = db.execute(
                "select value from xcom where dag_id=? and run_id=? and task_id=? and key='return_value'",
                (DAG_ID, self.run_id, task_id),
            ).fetchone()
        assert row is not None, f"no XCom from {task_id}"
        # A JSON column: SQLite's numeric affinity hands numbers back already decoded.
        return json.loads(row[0]) if isinstance(row[0], (str, bytes)) else row[0]


def conjur_request_id(text: str) -> str:
    """What Conjur can audit of a reason: ``X-Request-Id`` allows ``[A-Za-z0-9-]`` only."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    home = tmp_path_factory.mktemp("hook-in-tasks")
    with DevServer(state_dir=home / "devserver") as server:
        account = server.app.conjur.account
        env = airflow_env(
            home / "airflow",
            {
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW_CONN_CYBERARK_DEFAULT": connection(
                    server, login=HOST_LOGIN, password=HOST_API_KEY, api="conjur", account=account
                ),
                "AIRFLOW_CONN_CYBERARK_BATCH": connection(
                    server, login=ADMIN_LOGIN, password=ADMIN_API_KEY, api="conjur", account=account
                ),
                "AIRFLOW_CONN_CYBERARK_CCP": ccp_connection(server),
            },
        )
        airflow_home = Path(env["AIRFLOW_HOME"])
        shutil.copytree(SCRIPTS / "dags", airflow_home / "dags")
        migrate_home(env)

        # 1. Parsing only: the DAG file is imported (and its module-level hook constructed).
        listed = json_output(airflow("dags", "list", "--local", "-o", "json", env=env))
        parse_calls = vault_calls(server)
        mark = server.app.audit.last_seq

        # 2. The Test button's code path, one connection per process (run side by side).
        tests = {
            conn_id: subprocess.Popen(
                [PYTHON, "-m", "airflow", "connections", "test", conn_id],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for conn_id in ("cyberark_default", "cyberark_ccp")
        }
        outputs = {conn_id: proc.communicate(timeout=120)[0] for conn_id, proc in tests.items()}
        for conn_id, proc in tests.items():
            assert proc.returncode == 0, f"connections test {conn_id} failed:\n{outputs[conn_id][-3000:]}"
        test_connection_calls = vault_calls(server, mark)
        mark = server.app.audit.last_seq

        # 3. A real DAG run.
        result = run([PYTHON, str(SCRIPTS / "dag_test.py"), DAG_ID], env, timeout=180)
        outcome = json.loads(result.stdout.rsplit("RESULT ", 1)[1])
        yield Scenario(
            home=airflow_home,
            listed_dags=[d["dag_id"] for d in listed],
            parse_calls=parse_calls,
            test_connection_output=outputs,
            test_connection_calls=test_connection_calls,
            run_id=outcome["run_id"],
            run_state=outcome["state"],
            task_states=outcome["task_states"],
            run_calls=vault_calls(server, mark),
        )


def test_parsing_a_dag_that_builds_a_hook_makes_no_vault_call(scenario: Scenario) -> None:
    assert DAG_ID in scenario.listed_dags  # the file was imported, module-level hook and all
    assert scenario.parse_calls == []


def test_test_connection_authenticates_but_fetches_nothing(scenario: Scenario) -> None:
    for conn_id, output in scenario.test_connection_output.items():
        assert "Connection success!" in output, (conn_id, output[-2000:])
    actions = [e["action"] for e in scenario.test_connection_calls]
    # Conjur: the API key is exchanged for a token and the token checked; CCP: a TLS handshake only.
    assert sorted(actions) == ["conjur.authenticate", "conjur.whoami"]
    assert not FETCHING_ACTIONS & set(actions)


def test_the_dag_run_succeeds_with_the_fetched_values(scenario: Scenario) -> None:
    assert scenario.run_state == "success", scenario.task_states
    assert scenario.task_states == dict.fromkeys(("conjur_secret", "conjur_batch", "ccp_credential"), "success")
    assert scenario.xcom("conjur_secret") == len("Demo-PG-Passw0rd!")
    assert scenario.xcom("ccp_credential") == "etl_user"
    batch = scenario.xcom("conjur_batch")
    assert len(batch) == 20
    assert all(batch.values())


def test_conjur_request_id_names_dag_task_and_run(scenario: Scenario) -> None:
    (retrieve,) = [e for e in scenario.run_calls if e["action"] == "conjur.retrieve"]
    assert retrieve["object"].endswith("prod/db/password")
    expected = conjur_request_id(f"airflow dag={DAG_ID} task=conjur_secret run={scenario.run_id}")
    assert retrieve["reason"] == expected
    assert re.fullmatch(r"[A-Za-z0-9-]+", retrieve["reason"])
    # Spelled out, so a change in the sanitising above cannot hide a reason that lost the ids.
    assert "dag-cyberark-hook-tasks-task-conjur-secret-run-manual-" in retrieve["reason"]


def test_ccp_reason_names_dag_task_and_run(scenario: Scenario) -> None:
    (fetch,) = [e for e in scenario.run_calls if e["action"] == "ccp.get_password"]
    assert fetch["identity"] == "AirflowProd"
    assert fetch["status"] == 200
    # CCP cannot carry '+' in Reason: the client writes the '+00:00' of run ids as 'Z' (issue 16).
    run_id = re.sub(r"\+00:00\b", "Z", scenario.run_id).replace("+", " ")
    assert fetch["reason"] == f"airflow dag={DAG_ID} task=ccp_credential run={run_id} nightly load"


def test_twenty_conjur_secrets_cost_two_vault_calls(scenario: Scenario) -> None:
    # The batch task alone uses the admin identity, so its calls are exactly the admin's.
    calls = [e for e in scenario.run_calls if e["identity"] == ADMIN_LOGIN]
    assert [e["action"] for e in calls] == ["conjur.authenticate", "conjur.batch"]
    assert calls[1]["reason"] == conjur_request_id(f"airflow dag={DAG_ID} task=conjur_batch run={scenario.run_id}")


def test_the_whole_run_costs_five_vault_calls(scenario: Scenario) -> None:
    # Two Conjur identities authenticate once each; one call per fetch; nothing else.
    assert sorted(e["action"] for e in scenario.run_calls) == sorted(
        ["conjur.authenticate", "conjur.retrieve", "conjur.authenticate", "conjur.batch", "ccp.get_password"]
    )
    assert all(e["status"] == 200 for e in scenario.run_calls)
