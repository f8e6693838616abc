"""Airflow 3.2+ multi-team with the backend set as users set it (``AIRFLOW__SECRETS__BACKEND`` /
``_KWARGS``, with ``teams``), against the dev server, whose audit shows which identity read which
path. Two ways: the Execution API's route functions called with a team in a process configured as
an API server with ``[core] multi_team`` on (quick, many asks), and the example DAGs of two team
bundles on a real stack (api-server, scheduler, dag-processor, LocalExecutor), where Airflow
itself resolves each task's team from its bundle and the task process asks with no team first.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import SCRIPTS
from tests.secrets.test_backend_teams import GLOBAL_KEY, SEED, TEAM_A_KEY, TEAM_B_KEY, TEAM_TEMPLATES
from tests.versions import needs_airflow

pytestmark = [pytest.mark.airflow, needs_airflow("3.2", "[core] multi_team and team_name on secrets backends")]

ASKS = [
    ["team_a", "connections", "db_a"],
    ["team_a", "connections", "db_b"],
    ["team_a", "connections", "../team_b/connections/db_b"],
    ["team_b", "connections", "db_b"],
    ["team_b", "connections", "db_a"],
    ["team_a", "variables", "bucket"],
    ["team_b", "variables", "bucket"],
    [None, "connections", "db_a"],
    [None, "connections", "smtp"],
]


@dataclass
class TeamRun:
    answers: dict[tuple[str | None, str, str], str | None]
    reads: list[tuple[str, str, int]]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def team_backend_kwargs(info: dict[str, Any], base: Path, templates: dict[str, str]) -> dict[str, Any]:
    """The backend's settings: the global identity and one per team, each API key in a file under ``base``."""
    keys = {}
    for name, key in (("team_a", TEAM_A_KEY), ("team_b", TEAM_B_KEY), ("global", GLOBAL_KEY)):
        keys[name] = base / f"{name}.key"
        keys[name].write_text(key)
    return {
        "url": info["url"],
        "ca_bundle": info["ca_cert"],
        "api": "conjur",
        "account": "demo",
        "login": "host/airflow/global",
        "api_key_file": str(keys["global"]),
        **templates,
        "teams": {
            team: {"login": f"host/airflow/{team}", "api_key_file": str(keys[team])} for team in ("team_a", "team_b")
        },
    }


def run_team_lookups(base: Path) -> TeamRun:
    """The asks above through the Execution API's routes, in a fresh multi-team Airflow process."""
    home = base / "home"
    stack = AirflowStack(home, base / "dags")
    stack.migrate()
    with DevServer(SEED, state_dir=base / "devserver") as server:
        kwargs = team_backend_kwargs(server.info(), base, TEAM_TEMPLATES)
        env = {
            **stack.env,
            "AIRFLOW__CORE__MULTI_TEAM": "True",
            "AIRFLOW__SECRETS__BACKEND": "cyberark_ops.secrets.CyberArkSecretsBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
        }
        since = server.app.audit.last_seq
        done = subprocess.run(
            [stack.python, str(SCRIPTS / "multi_team" / "lookups.py"), json.dumps(ASKS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        reads = [
            (str(e["identity"]), str(e["object"]), int(e["status"]))
            for e in server.app.audit.events(since)
            if e["action"] == "conjur.retrieve"
        ]
    lines = [line for line in done.stdout.splitlines() if line.startswith("ANSWERS ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    answers = {(team, kind, item): answer for team, kind, item, answer in json.loads(lines[-1][8:])}
    return TeamRun(answers, reads)


@pytest.fixture
def team_run(multi_team_lookups: TeamRun) -> TeamRun:
    return multi_team_lookups


def test_each_team_gets_its_own_connection_and_variable(team_run: TeamRun) -> None:
    assert team_run.answers[("team_a", "connections", "db_a")] == sha("Team-A-Passw0rd")
    assert team_run.answers[("team_b", "connections", "db_b")] == sha("Team-B-Passw0rd")
    assert team_run.answers[("team_a", "variables", "bucket")] == sha("team-a-bucket")
    assert team_run.answers[("team_b", "variables", "bucket")] == sha("team-b-bucket")


def test_a_team_asking_for_the_other_teams_connection_gets_none(team_run: TeamRun) -> None:
    for ask in (
        ("team_a", "connections", "db_b"),
        ("team_a", "connections", "../team_b/connections/db_b"),
        ("team_b", "connections", "db_a"),
        (None, "connections", "db_a"),
    ):
        assert team_run.answers[ask] == "HTTP 404", ask
    assert team_run.answers[(None, "connections", "smtp")] == sha("Shared-Passw0rd")


def test_the_audit_shows_each_team_reading_only_its_own_paths_as_itself(team_run: TeamRun) -> None:
    assert team_run.reads, "the lookups reached the dev server"
    for identity, path, _ in team_run.reads:
        if path.startswith("airflow/teams/"):
            team = path.split("/")[2]
            assert identity == f"host/airflow/{team}", (identity, path)
        else:
            assert (identity, path.rsplit("/", 1)[0]) == ("host/airflow/global", "airflow/shared/connections")
    assert not [r for r in team_run.reads if r[0] == "host/airflow/team_a" and "teams/team_b" in r[1]]
    assert not [r for r in team_run.reads if r[0] == "host/airflow/team_b" and "teams/team_a" in r[1]]


# -- end to end: two teams, two DAG bundles, a real scheduler, LocalExecutor ----------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "cyberark_multi_team"
STACK_SEED: dict[str, Any] = {
    "conjur": {
        **SEED["conjur"],
        "variables": [
            {"id": "airflow/teams/team_a/connections/team_a_db", "value": "postgresql://a_user:A-Db-Passw0rd@db-a/a"},
            {"id": "airflow/teams/team_b/connections/team_b_db", "value": "postgresql://b_user:B-Db-Passw0rd@db-b/b"},
            {"id": "airflow/shared/connections/smtp", "value": "smtp://mail:Shared-Passw0rd@mail/x"},
        ],
    }
}


@dataclass
class TeamDagRun:
    states: dict[str, str]
    results: dict[tuple[str, str], Any]
    """XCom of each task, by (team letter, task id)."""
    reads: list[tuple[str, str, int]]
    scheduler_log: Path


def run_team_dags(tmp_path: Path) -> TeamDagRun:
    """Both example DAGs on a real multi-team stack, each in its team's bundle."""
    dags = tmp_path / "dags"
    shutil.copytree(EXAMPLE, dags)
    with DevServer(STACK_SEED, state_dir=tmp_path / "devserver") as server:
        kwargs = team_backend_kwargs(
            server.info(), tmp_path, {"connections_path": "airflow/teams/{team}/connections/{conn_id}"}
        )
        bundles = [
            {
                "name": f"{team}_dags",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(dags / team)},
                "team_name": team,
            }
            for team in ("team_a", "team_b")
        ]
        env = {
            "AIRFLOW__CORE__MULTI_TEAM": "True",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__SECRETS__BACKEND": "cyberark_ops.secrets.CyberArkSecretsBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
        }
        stack = AirflowStack(tmp_path / "home", dags, env)
        stack.migrate()
        for team in ("team_a", "team_b"):
            stack.cli("teams", "create", team)
        stack.start()
        try:
            runs = {}
            for team in ("a", "b"):
                stack.wait_for_dag(f"cyberark_multi_team_{team}", timeout=240)
            since = server.app.audit.last_seq
            for team in ("a", "b"):
                runs[team] = stack.trigger(f"cyberark_multi_team_{team}")
            states = {
                team: stack.wait_for_run(f"cyberark_multi_team_{team}", run, timeout=300) for team, run in runs.items()
            }
            reads = [
                (str(e["identity"]), str(e["object"]), int(e["status"]))
                for e in server.app.audit.events(since)
                if e["action"] == "conjur.retrieve"
            ]
        finally:
            stack.stop()
    with sqlite3.connect(tmp_path / "home" / "airflow.db") as db:
        rows = db.execute("select dag_id, task_id, value from xcom where key='return_value'").fetchall()
    results = {(dag_id[-1], task_id): json.loads(value) for dag_id, task_id, value in rows}
    return TeamDagRun(states, results, reads, stack.process_log("scheduler"))


def test_two_teams_dags_each_get_their_own_connection_and_not_the_others(multi_team_dags: TeamDagRun) -> None:
    run = multi_team_dags
    results, reads = run.results, run.reads
    assert run.states == {"a": "success", "b": "success"}, run.scheduler_log
    assert results[("a", "own_connection")] == {"conn_id": "team_a_db", "host": "db-a", "login": "a_user"}
    assert results[("b", "own_connection")] == {"conn_id": "team_b_db", "host": "db-b", "login": "b_user"}
    assert results[("a", "other_teams_connection")] == {"conn_id": "team_b_db", "found": False}
    assert results[("b", "other_teams_connection")] == {"conn_id": "team_a_db", "found": False}
    assert ("host/airflow/team_a", "airflow/teams/team_a/connections/team_a_db", 200) in reads
    assert ("host/airflow/team_b", "airflow/teams/team_b/connections/team_b_db", 200) in reads
    for identity, path, _ in reads:
        assert identity == f"host/airflow/{path.split('/')[2]}", (identity, path)
