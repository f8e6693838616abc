"""``example_dags/cyberark_cloud_identity.py`` on Airflow's real supervisor path: each task's worker
authenticates to the dev server's Conjur with a cloud identity (authn-iam from AWS keys in the
environment, authn-azure and authn-gcp from the IMDS and GCE metadata stand-ins), set up as the DAG's
docstring says. Task logs run at DEBUG (botocore's signer logs its canonical request there); no
fetched value and no AWS secret may be in any task log or metadata table."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import DagRun, connection, find_leaks, plain_xcom, run_dags, stored_places
from tests.cloudauth import (
    ACCOUNT,
    AZURE_HOST,
    GCP_HOST,
    IAM_HOST,
    ROLE_KEY,
    ROLE_SECRET,
    ROLE_TOKEN,
    SEED,
    VALUE,
    azure_metadata_url,
    gcp_metadata_url,
)

pytest.importorskip(
    "botocore.session", reason="authn-iam signs with botocore (extra aws), not installed beside the pinned Airflow 3.1"
)
pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "cyberark_cloud_identity.py"
DAG_ID = "cyberark_cloud_identity"
AWS_SETTINGS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


@dataclass
class Ran:
    run: DagRun
    stack: AirflowStack
    calls: list[dict[str, Any]]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    base = tmp_path_factory.mktemp("cloud")
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE, dags)
    with pytest.MonkeyPatch.context() as patch, DevServer(SEED, state_dir=base / "devserver") as server:
        for name in AWS_SETTINGS:  # the stack inherits this process's environment
            patch.delenv(name, raising=False)
        common = {"account": ACCOUNT, "api": "conjur"}
        env = {
            "AIRFLOW_CONN_CYBERARK_CONJUR_AWS": connection(
                server, login=IAM_HOST, password=None, auth_method="authn-iam", service_id="prod", **common
            ),
            "AIRFLOW_CONN_CYBERARK_CONJUR_AZURE": connection(
                server,
                login=AZURE_HOST,
                password=None,
                auth_method="authn-azure",
                service_id="prod",
                metadata_url=azure_metadata_url(server),
                **common,
            ),
            "AIRFLOW_CONN_CYBERARK_CONJUR_GCP": connection(
                server,
                login=GCP_HOST,
                password=None,
                auth_method="authn-gcp",
                metadata_url=gcp_metadata_url(server),
                **common,
            ),
            # The worker's AWS identity, as an instance role would give it, and nothing else of AWS's.
            "AWS_ACCESS_KEY_ID": ROLE_KEY,
            "AWS_SECRET_ACCESS_KEY": ROLE_SECRET,
            "AWS_SESSION_TOKEN": ROLE_TOKEN,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(base / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(base / "no-aws-credentials"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        }
        stack = AirflowStack(base / "home", dags, env)
        runs = run_dags(stack, [DAG_ID], timeout=240)
        calls = [e for e in server.app.audit.events() if not str(e["action"]).startswith("dev.")]
    yield Ran(runs[DAG_ID], stack, calls)


def _xcom(run: DagRun, task_id: str) -> Any:
    import json
    import sqlite3

    with sqlite3.connect(run.stack.home / "airflow.db") as db:
        (value,) = db.execute(
            "select value from xcom where dag_id=? and run_id=? and task_id=? and key='return_value'",
            (run.dag_id, run.run_id, task_id),
        ).fetchone()
    return plain_xcom(json.loads(value))


def test_each_cloud_identity_fetches_the_password(ran: Ran) -> None:
    assert ran.run.state == "success", ran.run.explain()
    for task_id, cloud in (("export_on_aws", "aws"), ("export_on_azure", "azure"), ("export_on_gcp", "gcp")):
        assert _xcom(ran.run, task_id) == {"cloud": cloud, "password_length": len(VALUE)}
    authenticated = {str(e["action"]): e["identity"] for e in ran.calls if e["status"] == 200}
    assert authenticated["conjur.authenticate_iam"] == IAM_HOST
    assert authenticated["conjur.authenticate_azure"] == AZURE_HOST
    assert authenticated["conjur.authenticate_gcp"] == GCP_HOST
    assert {"imds.identity_token", "gce_metadata.identity_token"} <= set(authenticated)
    reads = [e for e in ran.calls if e["action"] in ("conjur.retrieve", "conjur.batch")]  # hook / decorator
    assert {e["identity"] for e in reads if e["status"] == 200} == {IAM_HOST, AZURE_HOST, GCP_HOST}


def test_no_value_or_aws_secret_in_any_task_log_or_metadata_table(ran: Ran) -> None:
    places = stored_places(ran.stack, [DAG_ID])
    assert any(name.endswith(".log") or "attempt=" in name for name in places), sorted(places)
    forms = {
        f"{label} {form}": value
        for label, secret in (("value", VALUE), ("aws secret key", ROLE_SECRET), ("aws session token", ROLE_TOKEN))
        for form, value in leak_forms(secret).items()
    }
    assert find_leaks(places, forms) == []
