"""The vaulted operators on Airflow's real supervisor path, and where the canary did not end up.

One stack (api-server + scheduler with LocalExecutor + dag-processor, throwaway ``AIRFLOW_HOME``,
shared with other modules' DAGs: ``tests/airflow/shared_stack.py``), one DAG: ``VaultedSqlOperator``
on SQLite, PostgreSQL and MariaDB, the generic ``vaulted()`` wrapper on common-sql and on
``BashOperator``. The canary holds ``@ : / % + " ' \\ &``, a space and unicode; the SQL tasks
deliberately log it (raw, ``%r``, URL-quoted) and return it. Afterwards every form from
``scrub.leak_forms`` is searched in the task log files and in the metadata DB's xcom,
rendered_task_instance_fields, connection and variable tables (and the whole dump). ``dag.test()``
would prove nothing here: it never masks."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from cyberark_ops.client.ccp import ccp_reason
from cyberark_ops.devserver import DevServer
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import DagRun, ccp_connection, find_leaks, stored_places, vault_calls
from tests.airflow.shared_stack import StackPart, shared_stack_part
from tests.operators.conftest import (
    CANARY,
    MY_REF,
    MY_USER,
    PG_REF,
    PG_USER,
    ROT_REF,
    ROT_TARGET,
    ROT_USER,
    set_my_password,
    set_pg_password,
    vaulted_seed,
)

pytestmark = [pytest.mark.airflow, pytest.mark.database_roles]

DAG_ID = "cyberark_vaulted_ops"
TABLES = ("xcom", "rendered_task_instance_fields", "connection", "variable")
SQL_TASKS = ("on_sqlite", "on_postgres", "on_mariadb")
TASKS = (*SQL_TASKS, "generic_sql", "bash_child", "rotated_before_use")
ROTATED = f"{CANARY}-rotated"

DAG_SOURCE = '''
import hashlib, logging, os
from urllib.parse import quote, quote_plus

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

from cyberark_ops import VaultedSqlOperator, vaulted

log = logging.getLogger("careless")


class CarelessSql(VaultedSqlOperator):
    """Logs the secret every way a careless task would, and returns it with the rows."""

    def fetch_credential(self):
        cred = super().fetch_credential()
        log.info("raw %s", cred.secret)
        log.info("repr %r", cred.secret)
        log.info("quoted %s and %s", quote(cred.secret, safe=""), quote_plus(cred.secret))
        self._careless = cred.secret
        return cred

    def _execute_vaulted(self, context):
        return [*super()._execute_vaulted(context), self._careless]


class RotatedBeforeUse(VaultedSqlOperator):
    """Right after the first fetch, before the login, the account is rotated in the vault (the dev
    server's admin API) and in MariaDB: the login fails and the operator's own retry must recover."""

    def fetch_credential(self):
        cred = super().fetch_credential()
        if not getattr(self, "_rotated", False):
            self._rotated = True
            import mysql.connector
            import requests

            requests.post(
                os.environ["VOP_DEVSERVER_URL"] + "/_dev/rotate",
                json={"target": ROT_TARGET, "value": os.environ["VOP_ROTATED"]},
                headers={"Authorization": "Bearer " + os.environ["VOP_ADMIN_TOKEN"]},
                verify=os.environ["VOP_CA"],
                timeout=10,
            ).raise_for_status()
            db = mysql.connector.connect(host="127.0.0.1", port=3306, user="root", database="test")
            try:
                cur = db.cursor()
                for host in ("%", "localhost", "127.0.0.1"):
                    cur.execute("alter user 'ROT_USER'@'" + host + "' identified by %s", (os.environ["VOP_ROTATED"],))
            finally:
                db.close()
        return cred


with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    CarelessSql(task_id="on_sqlite", vault_conn_id="cyberark_ccp", credential_ref=PG_REF,
                conn_id="local_sqlite", sql="select 'lite'")
    CarelessSql(task_id="on_postgres", vault_conn_id="cyberark_ccp", credential_ref=PG_REF,
                conn_type="postgres", sql="select current_user")
    CarelessSql(task_id="on_mariadb", vault_conn_id="cyberark_ccp", credential_ref=MY_REF,
                conn_type="mysql", conn_extra={"client": "mysql-connector-python"}, sql="select current_user()")
    RotatedBeforeUse(task_id="rotated_before_use", vault_conn_id="cyberark_ccp", credential_ref=ROT_REF,
                     conn_type="mysql", conn_extra={"client": "mysql-connector-python"}, sql="select 42")
    vaulted(SQLExecuteQueryOperator)(task_id="generic_sql", vault_conn_id="cyberark_ccp", credential_ref=PG_REF,
                                     conn_id="vop_target", target_conn_id="vop_target", conn_type="postgres",
                                     sql="select current_user")
    vaulted(BashOperator)(
        task_id="bash_child", vault_conn_id="cyberark_ccp", credential_ref=PG_REF, secret_env="VOP_SECRET",
        bash_command=(
            'if [ "$(printf %s "$VOP_SECRET" | sha256sum | cut -d" " -f1)" = "' + SHA + '" ]; '
            'then m=match; else m=differ; fi; '
            'p=$(tr "\\\\0" "\\\\n" < /proc/$PPID/environ | grep -c "^VOP_SECRET=" || true); '
            'echo "$m parent_env_hits=$p"'
        ),
    )
'''


@dataclass
class VaultedRun:
    dag_run: DagRun
    calls: list[dict[str, Any]]

    def xcom(self, task_id: str) -> Any:
        return self.dag_run.xcom(task_id)


@shared_stack_part
def _vaulted_part(base: Path, resources: contextlib.ExitStack) -> StackPart:
    set_pg_password(CANARY)
    set_my_password(CANARY)
    set_my_password(CANARY, user=ROT_USER)
    base.mkdir()
    source = (
        DAG_SOURCE.replace("DAG_ID", repr(DAG_ID))
        .replace("PG_REF", repr(PG_REF))
        .replace("MY_REF", repr(MY_REF))
        .replace("ROT_REF", repr(ROT_REF))
        .replace("ROT_TARGET", repr(ROT_TARGET))
        .replace("ROT_USER", ROT_USER)
        .replace("SHA", repr(hashlib.sha256(CANARY.encode()).hexdigest()))
    )
    seed = vaulted_seed()
    server = resources.enter_context(DevServer(seed, state_dir=base / "devserver"))
    info = server.info()
    ccp = json.loads(ccp_connection(server))  # AppID AirflowProd, client certificate

    def finish(stack: AirflowStack, runs: Mapping[str, DagRun]) -> VaultedRun:
        return VaultedRun(runs[DAG_ID], vault_calls(server))

    return StackPart(
        dag_files={"vaulted_ops.py": source},
        env={
            "AIRFLOW_CONN_CYBERARK_CCP": json.dumps(ccp),
            "AIRFLOW_CONN_LOCAL_SQLITE": json.dumps({"conn_type": "sqlite", "host": str(base / "lite.db")}),
            "VOP_DEVSERVER_URL": info["url"],
            # Not in the DAG file: the dag_code table would hold it (and every form of the canary
            # it starts with), planted by the DAG's author rather than leaked by a fetch.
            "VOP_ROTATED": ROTATED,
            "VOP_ADMIN_TOKEN": info["admin_token"],
            "VOP_CA": info["ca_cert"],
        },
        dag_ids=(DAG_ID,),
        finish=finish,
    )


@pytest.fixture(scope="module")
def run(shared_stack_runs: dict[str, Any]) -> VaultedRun:
    return cast(VaultedRun, shared_stack_runs[__name__])


def test_every_task_succeeds_and_returns_scrubbed_values(run: VaultedRun) -> None:
    assert run.dag_run.state == "success", run.dag_run.explain()
    assert run.dag_run.task_states == dict.fromkeys(TASKS, "success")
    assert run.xcom("on_sqlite") == [["lite"], "***"]
    assert run.xcom("on_postgres") == [[PG_USER], "***"]
    mariadb = run.xcom("on_mariadb")
    assert mariadb[0][0].startswith(f"{MY_USER}@") and mariadb[1] == "***"
    assert run.xcom("generic_sql") == [[PG_USER]]
    assert run.xcom("rotated_before_use") == [[42]]


def test_a_rotation_between_fetch_and_use_is_recovered_by_the_operators_own_retry(run: VaultedRun) -> None:
    assert run.dag_run.task_states["rotated_before_use"] == "success"
    expected = ccp_reason(f"airflow dag={DAG_ID} task=rotated_before_use run={run.dag_run.run_id}")
    fetches = [c for c in run.calls if expected and str(c.get("reason", "")).startswith(expected)]
    assert len(fetches) == 2, "fetched once, rejected by MariaDB after the rotation, fetched again"
    log = b"".join(p.read_bytes() for p in run.dag_run.stack.task_log_files(DAG_ID) if "rotated_before_use" in str(p))
    assert b"rejected the login" in log and b"fetching the credential again once" in log


def test_only_the_bash_child_sees_the_secret(run: VaultedRun) -> None:
    assert run.xcom("bash_child") == "match parent_env_hits=0"


def test_no_form_of_the_canary_in_task_logs_or_metadata_tables(run: VaultedRun) -> None:
    stack = run.dag_run.stack
    assert len(stack.task_log_files(DAG_ID)) >= len(TASKS), "a task log file per task"
    places = stored_places(stack, [DAG_ID])
    assert set(TABLES) <= {p.removeprefix("table ") for p in places}
    # Controls: the careless lines were written (masked), and the tables hold the runs' rows.
    text = b"".join(data for place, data in places.items() if not place.startswith(("table", "sqlite")))
    assert text.count(b"repr ") >= 3 and b"***" in text
    assert b"on_postgres" in places["table rendered_task_instance_fields"]
    forms = {
        **leak_forms(CANARY, username=PG_USER),
        **leak_forms(CANARY, username=MY_USER),
        **{f"rotated {k}": v for k, v in leak_forms(ROTATED, username=ROT_USER).items()},
    }
    leaks = find_leaks(places, forms)
    assert leaks == []
    print(f"searched {len(forms)} forms in {len(places)} places: {len(leaks)} hits")


def test_each_vault_call_names_dag_task_and_run(run: VaultedRun) -> None:
    fetches = [c for c in run.calls if "reason" in c and c.get("reason")]
    assert len(fetches) == len(TASKS) + 1, "one vault call per task (the hook is built once), two for the rotated one"
    for task_id in TASKS:
        expected = ccp_reason(f"airflow dag={DAG_ID} task={task_id} run={run.dag_run.run_id}")
        assert expected and any(str(c["reason"]).startswith(expected) for c in fetches), (task_id, fetches)
