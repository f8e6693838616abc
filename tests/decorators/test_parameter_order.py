"""Injected parameters may stand anywhere in the signature: ``def load(password, table)`` is called
``load("sales")`` (the caller sees ``load(table)``), and "sales" is ``table``.

Before, the secrets were appended as keywords to the caller's positional arguments, so "sales"
went to ``password`` and the task failed at run time with "multiple values for argument
'password'". Proved in-process for every kind of parameter, and through Airflow's ``@task`` in a
real DAG file parsed by a DagBag and run with ``dag.test()`` (behaviour only: it never masks).
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops import with_cyberark_secret
from cyberark_ops.devserver import DevServer
from tests.airflow import PYTHON, airflow_env, connection, migrate_home, run
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN
from tests.hooks.conftest import Connections

PASSWORD = "Demo-PG-Passw0rd!"
SCRIPTS = Path(__file__).resolve().parents[1] / "airflow" / "scripts"


def test_a_secret_before_the_callers_parameters_is_bound_by_name(conns: Connections) -> None:
    conn = conns.conjur()

    @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password")
    def load(password: str, table: str, mode: str = "full") -> str:
        return f"{table}:{mode}:{password == PASSWORD}"

    assert load("sales") == "sales:full:True"
    assert load("sales", "delta") == "sales:delta:True"
    assert load(table="orders", mode="delta") == "orders:delta:True"
    with pytest.raises(TypeError):
        load()  # table is missing: refused before any fetch
    assert [e["action"] for e in conns.calls()].count("conjur.batch") == 3


def test_positional_only_parameters_star_args_and_kwargs_get_their_values(conns: Connections) -> None:
    conn = conns.conjur()

    @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password", user="prod/db/username")
    def f(a: int, password: str, /, b: int, *rest: int, user: str, **more: Any) -> tuple[Any, ...]:
        return (a, password == PASSWORD, b, rest, user == "airflow_demo", more)

    assert f(1, 2, 3, 4, x=5) == (1, True, 2, (3, 4), True, {"x": 5})

    @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password")
    def g(table: str, **kwargs: Any) -> tuple[str, bool]:
        return table, kwargs["password"] == PASSWORD

    assert g("t") == ("t", True)


DAG_SOURCE = textwrap.dedent(
    """
    from airflow.sdk import dag, task
    from cyberark_ops import with_cyberark_secret


    @dag(dag_id="param_order", schedule=None)
    def param_order():
        @task
        @with_cyberark_secret(vault_conn_id="cyberark_default", password="prod/db/password")
        def load(password, table):
            return f"{table}:{len(password)}"

        @with_cyberark_secret(vault_conn_id="cyberark_default", password="prod/db/password")
        @task
        def load_above(password, table, *, mode="full"):
            return f"{table}:{mode}:{len(password)}"

        load("sales")
        load_above("orders", mode="delta")


    param_order()
    """
)


@pytest.mark.slow
def test_through_airflow_task_a_secret_first_in_the_signature_runs(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    with DevServer(state_dir=tmp_path / "devserver") as server:
        env = airflow_env(
            home,
            {
                "AIRFLOW_CONN_CYBERARK_DEFAULT": connection(
                    server, login=HOST_LOGIN, password=HOST_API_KEY, api="conjur", account=server.app.conjur.account
                ),
            },
        )
        dags = Path(env["AIRFLOW_HOME"]) / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        (dags / "param_order.py").write_text(DAG_SOURCE)
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        migrate_home(env)
        result = run([PYTHON, str(SCRIPTS / "dag_test.py"), "param_order"], env, timeout=300)
    outcome = json.loads(result.stdout.rsplit("RESULT ", 1)[1])
    assert "import_errors" not in outcome, outcome
    assert outcome["task_states"] == {"load": "success", "load_above": "success"}
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = dict(
            db.execute(
                "select task_id, value from xcom where dag_id='param_order' and run_id=? and key='return_value'",
                (outcome["run_id"],),
            ).fetchall()
        )
    values = {task: json.loads(v) if isinstance(v, (str, bytes)) else v for task, v in rows.items()}
    assert values == {"load": f"sales:{len(PASSWORD)}", "load_above": f"orders:delta:{len(PASSWORD)}"}
