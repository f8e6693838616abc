"""``@with_cyberark_secret`` and ``@task.cyberark`` on Airflow's real supervisor path.

One stack (api-server + scheduler with LocalExecutor + dag-processor, throwaway ``AIRFLOW_HOME``,
shared with other modules' DAGs: ``tests/airflow/shared_stack.py``), one DAG whose tasks get a
Conjur and a CCP canary through the decorator in every way it can be written (below ``@task``, above
it, ``@task.cyberark`` with a per-secret connection, an async function) and then try to leak them:
logged at every level (raw, ``%r``, URL-quoted), printed to stdout and stderr, returned alone and
inside dicts and rows, and raised in an exception. Afterwards every form from ``scrub.leak_forms``
is searched in the task log files and in every table of the metadata DB; the task process and its
parent hold the value in no environment variable. ``dag.test()`` would prove nothing here: it never
masks."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from cyberark_ops.client.ccp import ccp_reason
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import demo_conjur_connection
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import FAST_EXTRAS, DagRun, ccp_connection, find_leaks, stored_places, vault_calls
from tests.airflow.shared_stack import StackPart, shared_stack_part
from tests.airflow.test_hook_in_tasks import conjur_request_id
from tests.operators.conftest import CANARY, PG_REF, PG_USER, vaulted_seed

pytestmark = pytest.mark.airflow

DAG_ID = "cyberark_decorated_tasks"
CONJUR_REF = "prod/db/password"
CONJUR_USER = "airflow_demo"
# The CCP account's value differs from the Conjur one, so that each is searched on its own.
CCP_CANARY = f"{CANARY}#?=;ccp"
SUCCEEDING = ("below_task", "above_task", "task_cyberark", "in_async")
TASKS = (*SUCCEEDING, "raises")

DAG_SOURCE = '''
import asyncio, logging, os, sys
from urllib.parse import quote, quote_plus

import pendulum
from airflow.sdk import DAG, task

from cyberark_ops import Credential, Secret, with_cyberark_secret

log = logging.getLogger("careless")


def careless(value):
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        log.log(level, "raw %s repr %r", value, value)
    log.info("quoted %s and %s", quote(value, safe=""), quote_plus(value))
    print("decorated stdout", value, repr(value))
    print("decorated stderr", value, file=sys.stderr)


def environ_hits(value):
    """How often the value is in this process's or its parent's environment."""
    hits = 0
    for pid in ("self", str(os.getppid())):
        with open(f"/proc/{pid}/environ", "rb") as env:
            hits += env.read().count(value.encode())
    return hits


with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):

    @task
    @with_cyberark_secret(vault_conn_id=CONJUR_CONN, password=CONJUR_REF, user="prod/db/username")
    def below_task(password, user):
        careless(password)
        return {"pw": password, "rows": [(user, password)], "environ_hits": environ_hits(password)}

    @with_cyberark_secret(vault_conn_id=CCP_CONN, cred=Secret(PG_REF, as_credential=True))
    @task
    def above_task(cred: Credential):
        careless(cred.secret)
        return [cred.username, cred.secret, environ_hits(cred.secret)]

    @task.cyberark(
        vault_conn_id=CONJUR_CONN,
        secrets={"password": CONJUR_REF, "pg": Secret(PG_REF, as_credential=True, vault_conn_id=CCP_CONN)},
    )
    def task_cyberark(password, pg: Credential):
        careless(password)
        careless(pg.secret)
        return {"differ": password != pg.secret, "values": [password, pg.secret]}

    @task
    @with_cyberark_secret(vault_conn_id=CONJUR_CONN, password=CONJUR_REF)
    async def in_async(password):
        await asyncio.sleep(0)
        careless(password)
        return password

    @task(retries=0)
    @with_cyberark_secret(vault_conn_id=CONJUR_CONN, password=CONJUR_REF)
    def raises(password):
        raise ValueError(f"cannot log in with {password!r}")

    below_task()
    above_task()
    task_cyberark()
    in_async()
    raises()
'''


@dataclass
class DecoratedRun:
    dag_run: DagRun
    calls: list[dict[str, Any]]


# Connection ids of this module's own (the stack is shared: tests/airflow/shared_stack.py).
CONJUR_CONN, CCP_CONN = "decorated_conjur", "decorated_ccp"


@shared_stack_part
def _decorated_part(base: Path, resources: contextlib.ExitStack) -> StackPart:
    base.mkdir()
    source = (
        DAG_SOURCE.replace("DAG_ID", repr(DAG_ID))
        .replace("CONJUR_REF", repr(CONJUR_REF))
        .replace("PG_REF", repr(PG_REF))
        .replace("CONJUR_CONN", repr(CONJUR_CONN))
        .replace("CCP_CONN", repr(CCP_CONN))
    )
    seed = copy.deepcopy(vaulted_seed(password=CCP_CANARY))
    next(v for v in seed["conjur"]["variables"] if v["id"] == CONJUR_REF)["value"] = CANARY
    server = resources.enter_context(DevServer(seed, state_dir=base / "devserver"))
    info = server.info()
    conjur = demo_conjur_connection(info, seed, key_dir=base)
    conjur["extra"].update(FAST_EXTRAS)
    ccp = json.loads(ccp_connection(server))  # AppID AirflowProd, client certificate

    def finish(stack: AirflowStack, runs: Mapping[str, DagRun]) -> DecoratedRun:
        return DecoratedRun(runs[DAG_ID], vault_calls(server))

    return StackPart(
        dag_files={"decorated_tasks.py": source},
        env={
            f"AIRFLOW_CONN_{CONJUR_CONN.upper()}": json.dumps(conjur),
            f"AIRFLOW_CONN_{CCP_CONN.upper()}": json.dumps(ccp),
        },
        dag_ids=(DAG_ID,),
        finish=finish,
    )


@pytest.fixture(scope="module")
def run(shared_stack_runs: dict[str, Any]) -> DecoratedRun:
    return cast(DecoratedRun, shared_stack_runs[__name__])


def test_each_way_of_writing_it_runs_and_returns_scrubbed_values(run: DecoratedRun) -> None:
    dag_run = run.dag_run
    assert dag_run.task_states == {**dict.fromkeys(SUCCEEDING, "success"), "raises": "failed"}, dag_run.explain()
    # Every injected value is a secret: the user name fetched beside the password is scrubbed too.
    assert dag_run.xcom("below_task") == {"pw": "***", "rows": [["***", "***"]], "environ_hits": 0}
    assert dag_run.xcom("above_task") == [PG_USER, "***", 0]
    assert dag_run.xcom("task_cyberark") == {"differ": True, "values": ["***", "***"]}
    assert dag_run.xcom("in_async") == "***"


def test_no_form_of_either_canary_in_task_logs_or_any_metadata_table(run: DecoratedRun) -> None:
    stack = run.dag_run.stack
    places = stored_places(stack, [DAG_ID])
    logs = {place: data for place, data in places.items() if not place.startswith(("table ", "sqlite"))}
    assert len(logs) >= len(TASKS), "a task log file per task"
    # Controls: the careless lines and the exception reached the logs, masked.
    text = b"".join(logs.values())
    # (info, warning, error: debug is below the task log's level)
    assert text.count(b"raw *** repr '***'") >= 3 * len(SUCCEEDING)
    assert text.count(b"quoted *** and ***") >= len(SUCCEEDING)
    assert b"decorated stdout *** '***'" in text and b"decorated stderr ***" in text
    assert b"cannot log in with '***'" in text
    assert {"xcom", "rendered_task_instance_fields", "connection", "variable", "dag_run", "log"} <= {
        p.removeprefix("table ") for p in places
    }
    forms = {
        **{f"conjur {k}": v for k, v in leak_forms(CANARY, username=CONJUR_USER).items()},
        **{f"ccp {k}": v for k, v in leak_forms(CCP_CANARY, username=PG_USER).items()},
    }
    leaks = find_leaks(places, forms)
    assert leaks == []
    print(f"searched {len(forms)} forms in {len(places)} places: {len(leaks)} hits")


def test_each_vault_call_names_dag_task_and_run(run: DecoratedRun) -> None:
    run_id = run.dag_run.run_id
    reasons = [str(c["reason"]) for c in run.calls if c.get("reason")]
    for task_id in ("below_task", "task_cyberark", "in_async", "raises"):
        expected = conjur_request_id(f"airflow dag={DAG_ID} task={task_id} run={run_id}")
        assert any(r.startswith(expected) for r in reasons), (task_id, reasons)
    for task_id in ("above_task", "task_cyberark"):
        expected = ccp_reason(f"airflow dag={DAG_ID} task={task_id} run={run_id}")
        assert expected and any(r.startswith(expected) for r in reasons), (task_id, reasons)
