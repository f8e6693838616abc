"""The team-isolation row of docs/guarantees.md, from a real multi-team Airflow lookup run.

The runs are those ``tests/airflow/test_multi_team.py`` asserts on too (session fixtures in
``tests/conftest.py``): one lookup run and one DAG run serve both files."""

from __future__ import annotations

import pytest

from tests.airflow.test_multi_team import ASKS, TeamDagRun, TeamRun, sha
from tests.guarantees import report
from tests.versions import needs_airflow

CROSSING = [
    ("team_a", "connections", "db_b"),
    ("team_a", "connections", "../team_b/connections/db_b"),
    ("team_b", "connections", "db_a"),
]
"""A team asking for the other team's connection id, or spelling its path."""

pytestmark = [pytest.mark.airflow, needs_airflow("3.2", "[core] multi_team and team_name on secrets backends")]


def test_no_team_reads_another_teams_path_and_each_reads_as_itself(multi_team_lookups: TeamRun) -> None:
    run = multi_team_lookups
    own = [run.answers[("team_a", "connections", "db_a")], run.answers[("team_b", "connections", "db_b")]]
    crossing_answers = [run.answers[ask] for ask in CROSSING]
    foreign_reads = [
        (identity, path)
        for identity, path, _ in run.reads
        if path.startswith("airflow/teams/") and identity != f"host/airflow/{path.split('/')[2]}"
    ]
    assert own == [sha("Team-A-Passw0rd"), sha("Team-B-Passw0rd")]
    assert crossing_answers and all(answer == "HTTP 404" for answer in crossing_answers)
    assert foreign_reads == []
    report.record(
        "teams",
        "execution-api-conjur",
        {
            "what": "two teams (team_a, team_b), Conjur, connections_path airflow/teams/{team}/connections/{conn_id}, "
            "one host per team (teams in backend_kwargs)",
            "lookups": f"{len(ASKS)} through the Execution API's connection and variable routes, [core] multi_team on",
            "own id": "found (2 of 2)",
            "other team's id": f"not found ({len(crossing_answers)} of {len(crossing_answers)})",
            "reads of a team's path by another identity (dev server audit)": str(len(foreign_reads)),
        },
    )


def test_two_team_bundles_on_a_real_stack_each_read_only_their_own(multi_team_dags: TeamDagRun) -> None:
    run = multi_team_dags
    foreign_reads = [
        (identity, path)
        for identity, path, _ in run.reads
        if path.startswith("airflow/teams/") and identity != f"host/airflow/{path.split('/')[2]}"
    ]
    own = [run.results[(team, "own_connection")]["conn_id"] for team in ("a", "b")]
    crossing = [run.results[(team, "other_teams_connection")]["found"] for team in ("a", "b")]
    assert run.states == {"a": "success", "b": "success"}
    assert own == ["team_a_db", "team_b_db"]
    assert crossing == [False, False]
    assert foreign_reads == []
    report.record(
        "teams",
        "dag-run-conjur",
        {
            "what": "two DAG bundles (team_a, team_b) running example_dags/cyberark_multi_team on api-server + "
            "scheduler + dag-processor, LocalExecutor; Conjur, one host per team",
            "lookups": "BaseHook.get_connection in 4 tasks: the task process asks with no team (not found), "
            "the Execution API with the task's team",
            "own id": "found (2 of 2)",
            "other team's id": "not found (2 of 2)",
            "reads of a team's path by another identity (dev server audit)": str(len(foreign_reads)),
        },
    )
