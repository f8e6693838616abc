"""``cyberark-ops migrate`` into PVWA in a real Airflow home, as subprocesses against the dev server:
the API path and the bulk-file path end with no secret in the metadata DB only after each value
was read back, no output holds a value, Ctrl-C between the adds and the removal loses nothing, and
--overwrite changes an account that holds a different value."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from tests.migrate.airflow_home import (
    airflow_home,
    apply_args,
    dump,
    files_under,
    held_in_airflow,
    interrupted_apply,
    migrate,
    migrator_env,
    outputs,
    populate,
)
from tests.migrate.pvwa_target import PvwaTarget, seed

pytestmark = pytest.mark.slow  # a real Airflow home driven through the CLI in subprocesses

CANARY = "CANARY-8e3d-"
CONNECTIONS: dict[str, Any] = {
    "warehouse": {"conn_type": "postgres", "host": "pg.internal", "login": "etl", "password": f"{CANARY}pg p@ss/:?#%"},
    "from_uri": {"uri": f"mysql://app:{CANARY}my%40sql%2Fpw@mysql.internal:3306/app?charset=utf8mb4"},
    "plain_http": {"conn_type": "http", "host": "public.example.com"},
}
VARIABLES = {"api_token": f"{CANARY}token", "db_password": f'{CANARY}db, "quoted"\nsecond line', "region": "eu"}


def setup(make_server: Callable[..., DevServer], tmp_path: Path) -> tuple[PvwaTarget, Any, Path, dict[str, str]]:
    target = PvwaTarget(make_server(seed()), tmp_path / "deployment")
    stack = airflow_home(tmp_path / "airflow")
    populate(stack, CONNECTIONS, VARIABLES)
    work = tmp_path / "work"
    work.mkdir()
    plan_path = work / "plan.json"
    planned = migrate(
        stack,
        "plan",
        "--out",
        str(plan_path),
        "--backend-kwargs",
        json.dumps(target.backend_kwargs()),
        "--platform-id",
        "AirflowGeneric",
    )
    assert planned.returncode == 0, planned.stderr
    assert CANARY not in planned.stdout + planned.stderr + plan_path.read_text()
    return target, stack, plan_path, migrator_env(target)


def test_bulk_file_then_verify_only_then_removal(make_server: Callable[..., DevServer], tmp_path: Path) -> None:
    target, stack, plan_path, _ = setup(make_server, tmp_path)
    bulk = tmp_path / "accounts.csv"
    refused = migrate(stack, "apply", "--plan", str(plan_path), "--bulk-file", str(bulk), "--remove-from-airflow")
    assert refused.returncode == 2 and "--bulk-file writes the file only" in refused.stderr and not bulk.exists()
    written = migrate(stack, "apply", "--plan", str(plan_path), "--bulk-file", str(bulk))
    assert written.returncode == 0, written.stderr
    assert "holds the secret values in clear text" in written.stderr
    assert stat.S_IMODE(bulk.stat().st_mode) == 0o600
    assert CANARY in bulk.read_text(encoding="utf-8-sig")
    assert CANARY in json.dumps(dump(stack))  # nothing removed on the file's account

    import csv

    with bulk.open(encoding="utf-8-sig", newline="") as file, target.migrator() as client:
        for row in csv.DictReader(file):
            client.add_account(
                safe=row["safe"],
                platform_id=row["platformID"],
                secret=row["password"],
                name=row["name"],
                address=row["address"],
                user_name=row["userName"],
            )
    bulk.unlink()
    verified = migrate(stack, "apply", "--plan", str(plan_path), "--verify-only", "--execute", "--remove-from-airflow")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads((plan_path.parent / "plan.json.report.json").read_text())
    assert report["counts"]["verified"] == 4 and report["counts"]["failed"] == 0
    after = dump(stack)
    assert CANARY not in json.dumps(after)
    assert after["connections"]["warehouse"]["host"] == "pg.internal"
    assert set(after["variables"]) == {"region"}
    assert CANARY not in outputs(refused, written, verified) + files_under(plan_path.parent)
    assert target.adds() and all(e["identity"] == "migrator" for e in target.adds())


def test_ctrl_c_between_the_adds_and_the_removal_leaves_each_secret_somewhere(
    make_server: Callable[..., DevServer], tmp_path: Path
) -> None:
    target, stack, plan_path, migrator = setup(make_server, tmp_path)
    plan = json.loads(plan_path.read_text())
    target.server.app.knobs.set_latency("pvwa.retrieve_password", 0.4)
    assert CANARY not in interrupted_apply(stack, plan_path, migrator)

    state = json.loads((plan_path.parent / "plan.json.state").read_text())["entries"]
    held = held_in_airflow(stack)
    for entry in plan["entries"]:
        key = f"{entry['kind']}:{entry['id']}"
        in_vault = target.stored(entry["account"]["safe"], entry["account"]["name"])
        in_airflow = CANARY in json.dumps(held.get(key))
        assert in_airflow or (in_vault is not None and state.get(key)), entry
    assert len(state) < len(plan["entries"])

    target.server.app.knobs.set_latency("pvwa.retrieve_password", 0)
    rerun = migrate(stack, *apply_args(plan_path, "--execute", "--remove-from-airflow"), env=migrator)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert CANARY not in json.dumps(dump(stack)) + outputs(rerun)
    assert len(target.adds()) == 4  # nothing added twice


def test_overwrite_through_the_cli_changes_the_account_and_no_output_holds_a_value(
    make_server: Callable[..., DevServer], tmp_path: Path
) -> None:
    target, stack, plan_path, migrator = setup(make_server, tmp_path)
    with target.migrator() as client:
        client.add_account(safe="Airflow-Prod", platform_id="AirflowGeneric", secret="someone else's", name="warehouse")
    apply = apply_args(plan_path)
    left = migrate(stack, *apply, "--execute", env=migrator)
    assert left.returncode == 1 and "(rerun with --overwrite)" in left.stdout, left.stdout + left.stderr
    dry = migrate(stack, *apply, "--overwrite", env=migrator)
    assert dry.returncode == 0 and "would overwrite the different value" in dry.stdout, dry.stdout + dry.stderr
    assert target.stored("Airflow-Prod", "warehouse") == "someone else's"
    done = migrate(stack, *apply, "--execute", "--overwrite", "--remove-from-airflow", env=migrator)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "overwrote the different value in account 'warehouse' of safe 'Airflow-Prod'" in done.stdout
    assert CANARY in (target.stored("Airflow-Prod", "warehouse") or "")
    assert CANARY not in json.dumps(dump(stack)) and len(target.updates()) == 1
    assert CANARY not in outputs(left, dry, done) + files_under(plan_path.parent)
    assert CANARY not in json.dumps(target.server.app.audit.events())
