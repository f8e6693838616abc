"""Team ``team_a``'s DAG in an Airflow 3.2+ multi-team deployment (bundle ``team_a_dags``).

No CyberArk code: ``BaseHook.get_connection`` asks the task's supervisor, whose Execution API
call resolves the team from this file's bundle and passes it to the API server's
``CyberArkSecretsBackend``, which reads ``airflow/teams/team_a/connections/<id>`` as team_a's own
Conjur host. Asking for team_b's connection id reads only team_a's namespace and finds nothing.
Set-up (bundles, teams, backend_kwargs, Conjur policy): docs/secrets-backend.md, "Multi-team".
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import BaseHook, dag, task
from airflow.sdk.exceptions import AirflowNotFoundException

OWN_CONN_ID = "team_a_db"
OTHER_TEAMS_CONN_ID = "team_b_db"


@dag(
    dag_id="cyberark_multi_team_a",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example", "multi-team"],
)
def cyberark_multi_team_a() -> None:
    @task
    def own_connection() -> dict[str, Any]:
        conn = BaseHook.get_connection(OWN_CONN_ID)
        return {"conn_id": OWN_CONN_ID, "host": conn.host, "login": conn.login}

    @task
    def other_teams_connection() -> dict[str, Any]:
        try:
            BaseHook.get_connection(OTHER_TEAMS_CONN_ID)
        except AirflowNotFoundException:
            return {"conn_id": OTHER_TEAMS_CONN_ID, "found": False}
        raise RuntimeError(f"{OTHER_TEAMS_CONN_ID} resolved for team_a: check the backend's {{team}} paths")

    own_connection()
    other_teams_connection()


cyberark_multi_team_a()
