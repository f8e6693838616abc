"""The issue's "done": an Airflow home with 20 connections and 10 variables, migrated into the dev
server's Conjur (plan -> apply -> --remove-from-airflow), then a DAG with no CyberArk code gets every
one of them right through the secrets backend, while the metadata DB holds no secret."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.migrate.airflow_home import airflow_home, apply_args, dump, migrate, migrator_env, populate
from tests.migrate.conftest import Target

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).resolve().parent / "scripts" / "dags"
BACKEND = "cyberark_ops.secrets.CyberArkSecretsBackend"
C = "CANARY-e2e-"


def connections() -> dict[str, Any]:
    conns: dict[str, Any] = {}
    hostile = ["p@ss:w/rd", "with space", "pct%41%zz", "q?u#e&r=y", "ünïcødé-€", "quote\"'\\", "semi;colon", "+plus+"]
    for i, tail in enumerate(hostile):
        conns[f"db_{i}"] = {
            "conn_type": "postgres",
            "host": f"db{i}.internal",
            "login": f"user {i}@corp",
            "password": f"{C}{i}-{tail}",
            "schema": "analytics",
            "port": 5432 + i,
        }
    conns["uri_mysql"] = {"uri": f"mysql://app%40corp:{C}my%2Fsql%3Fpw@mysql.internal:3306/app?charset=utf8mb4"}
    conns["uri_redis"] = {"uri": f"redis://:{C}redis%20pw%23@redis.internal:6379/0"}
    conns["uri.dotted-id"] = {"uri": f"https://svc:{C}h%3At%3Ap@api.example.com/v1"}
    for i, extra in enumerate(
        [
            {"api_key": f"{C}key-a", "region": "eu"},
            {"token": f"{C}tok-b", "nested": {"deep": [1, 2]}},
            {"keyfile_dict": {"private_key": f"{C}-----BEGIN KEY-----\nabc\n-----END KEY-----\n"}, "project": "p"},
            {"client_secret": f"{C}cs", "tenant": "t"},
            {"private_key": f"{C}pk", "passphrase": f"{C}pp", "user": "sftp"},
        ]
    ):
        conns[f"extra_{i}"] = {"conn_type": "http", "host": f"svc{i}.example.com", "extra": json.dumps(extra)}
    for i in range(4):
        conns[f"public_{i}"] = {
            "conn_type": "http",
            "host": f"public{i}.example.com",
            "extra": json.dumps({"timeout": i}),
        }
    assert len(conns) == 20
    return conns


VARIABLES = {
    "api_key": f"{C}v-api",
    "db_password": f"{C}v-db\nsecond line",
    "service_token": f"{C}v-tok",
    "slack_webhook_url": f"{C}https://hooks.example.com/x",
    "my_secret_json": json.dumps({"k": f"{C}v-json"}),
    "partner_creds": f"{C}v-partner",  # not a sensitive name: chosen by --include
    "region": "eu-west-1",
    "bucket": "data-lake",
    "retries": "3",
    "owner_email": "data@example.com",
}


def connection_digest(fields: dict[str, Any]) -> str:
    extra = json.loads(fields["extra"]) if fields.get("extra") else {}
    values = [fields.get(n) for n in ("conn_type", "host", "login", "password", "schema", "port")]
    return hashlib.sha256(json.dumps([*values, extra], sort_keys=True).encode()).hexdigest()


def test_twenty_connections_and_ten_variables_move_and_a_dag_uses_them_through_the_backend(
    target: Target, tmp_path: Path
) -> None:
    stack = airflow_home(tmp_path / "airflow")
    shutil.copy(DAGS / "migrated_secrets.py", stack.dags_folder)
    populate(stack, connections(), VARIABLES)
    before = dump(stack)
    expected = {
        "connections": {c: connection_digest(f) for c, f in before["connections"].items()},
        "variables": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in before["variables"].items()},
    }

    kwargs = target.backend_kwargs()
    plan_path = tmp_path / "plan.json"
    planned = migrate(
        stack,
        "plan",
        "--out",
        str(plan_path),
        "--backend-kwargs",
        json.dumps(kwargs),
        "--grant-to",
        "host/airflow/worker",
        "--include",
        "variable:partner_*",
    )
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(plan_path.read_text())
    assert len(plan["entries"]) == 16 + 6 and len(plan["left"]) == 4 + 4

    applied = migrate(stack, *apply_args(plan_path, "--execute", "--remove-from-airflow"), env=migrator_env(target))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = dump(stack)
    assert C not in json.dumps(after)
    assert sorted(after["variables"]) == ["bucket", "owner_email", "region", "retries"]
    assert C not in planned.stdout + planned.stderr + applied.stdout + applied.stderr
    assert C not in "".join(p.read_text() for p in tmp_path.glob("plan.json*"))
    with sqlite3.connect(stack.home / "airflow.db") as db:  # no cleartext copy left anywhere in the file
        db.execute("vacuum")
    assert C.encode() not in (stack.home / "airflow.db").read_bytes()

    stack.env.update(
        {
            "AIRFLOW__SECRETS__BACKEND": BACKEND,
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
            "AIRFLOW__WORKERS__SECRETS_BACKEND": BACKEND,
            "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": json.dumps(kwargs),
            "CYBERARK_TEST_EXPECTED": json.dumps(expected),
        }
    )
    since = target.server.app.audit.last_seq
    stack.start()
    try:
        stack.wait_for_dag("migrated_secrets")
        run_id = stack.trigger("migrated_secrets")
        state = stack.wait_for_run("migrated_secrets", run_id, timeout=300)
    finally:
        stack.stop()
    assert state == "success", stack.process_log("scheduler").read_text()[-3000:]
    with sqlite3.connect(stack.home / "airflow.db") as db:
        (value,) = db.execute(
            "select value from xcom where dag_id='migrated_secrets' and run_id=? and key='return_value'", (run_id,)
        ).fetchone()
    assert json.loads(value) == {"checked": 30, "wrong": []}
    served = {e["object"] for e in target.server.app.audit.events(since) if e["action"] == "conjur.retrieve"}
    assert {
        f"airflow/prod/{'connections' if e['kind'] == 'connection' else 'variables'}/{e['id']}" for e in plan["entries"]
    } <= {s.removeprefix("myorg:variable:") for s in served}
