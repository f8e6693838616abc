"""apply against the dev server over HTTPS: the migration identity writes, the runtime identity
reads back through the secrets backend, reruns continue, and no fault loses a secret.

Airflow's side is given as ``Held`` values here (removal from a real metadata DB is in
test_migrate_cli.py): every secret that is not read back equal is reported and stays "in Airflow".
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberark_ops.client.conjur import ConjurClient
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.knobs import Fault
from cyberark_ops.migrate import Held, Plan, Report, State, apply_plan, make_plan
from cyberark_ops.migrate.sources import held_connection
from tests.migrate.applying import held_secrets, run
from tests.migrate.conftest import SEED, Target

CANARY = "CANARY-7d1e-"


def airflow_side() -> list[Held]:
    return held_secrets(CANARY, connections=4, variables=3, password_tail=" /@:%?")


def planned(target: Target, tmp_path: Path, held: list[Held], **kwargs: Any) -> tuple[Plan, Path]:
    plan = make_plan(held, target.backend_kwargs(), airflow_group="airflow/readers", grant_to=["host/airflow/worker"])
    path = tmp_path / "plan.json"
    plan.write(path)
    return plan, path


def stores(target: Target) -> int:
    return len(target.server.app.audit.events(action="conjur.store"))


def no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text


def test_apply_writes_verifies_through_the_backend_and_a_rerun_writes_nothing(target: Target, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    lines: list[str] = []
    report = run(target, plan, path, held, progress=lines.append)
    assert not report.failed, report.table()
    assert [r.written for r in report.rows] == ["written"] * 7
    assert all(r.verified for r in report.rows)
    for item in held:
        entry = next(e for e in plan.entries if e.key == item.key)
        assert target.stored(entry.variable_id) == item.value.encode()
    assert State.next_to(path).entries == {h.key: "verified" for h in held}
    no_canary(
        report.to_json(), report.table(), "\n".join(lines), path.read_text(), (tmp_path / "plan.json.state").read_text()
    )
    assert "AIRFLOW__SECRETS__BACKEND_KWARGS" in "\n".join(report.next_steps)

    before = stores(target)
    again = run(target, plan, path, held)
    assert [r.written for r in again.rows] == ["already equal"] * 7
    assert all(r.verified for r in again.rows) and not again.failed
    assert stores(target) == before


def test_dry_run_writes_nothing_and_says_what_it_would_do(target: Target, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held, execute=False)
    assert report.dry_run and [r.written for r in report.rows] == ["would write"] * 7
    assert not any(r.verified for r in report.rows)
    assert stores(target) == 0
    assert target.server.app.audit.events(action="conjur.load_policy")[-1]["status"] == 200  # dryRun
    assert (
        target.server.app.conjur.privileges(
            target.server.app.conjur.role_for_login("migrator"), plan.entries[0].variable_id
        )
        is None
    )
    assert not (tmp_path / "plan.json.state").exists()


def test_a_different_value_in_the_vault_is_reported_and_overwritten_only_when_asked(
    target: Target, tmp_path: Path
) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    run(target, plan, path, held, execute=True)
    variable_id = plan.entries[0].variable_id
    with target.migrator() as client:
        client.set_secret(variable_id, "someone else's value")
    report = run(target, plan, path, held)
    row = report.rows[0]
    assert report.failed and not row.verified and row.written == "no"
    assert "different value" in row.note
    assert target.stored(variable_id) == b"someone else's value"
    fixed = run(target, plan, path, held, overwrite=True)
    assert not fixed.failed and fixed.rows[0].written == "written"
    assert target.stored(variable_id) == held[0].value.encode()


def test_a_403_on_one_path_leaves_that_one_and_moves_the_rest(target: Target, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    target.server.app.knobs.add_fault(Fault(endpoint="conjur.store", status=403, count=1))
    report = run(target, plan, path, held)
    first, rest = report.rows[0], report.rows[1:]
    assert first.failed and not first.verified
    assert "lacks update on variable 'airflow/prod/connections/db_0'" in first.note, first.note
    assert all(r.verified for r in rest)
    assert "connection:db_0" not in State.next_to(path).entries
    assert target.stored(plan.entries[0].variable_id) is None
    no_canary(report.to_json())


def test_the_vault_going_down_mid_run_leaves_the_rest_unverified_and_a_rerun_finishes(
    target: Target, tmp_path: Path
) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)

    def outage_after_the_second(line: str) -> None:
        if line.startswith("connection:db_1: verified"):
            target.server.app.knobs.add_fault(Fault(endpoint="conjur.*", status=503))

    report = run(target, plan, path, held, progress=outage_after_the_second)
    verified = [r.id for r in report.rows if r.verified]
    assert verified == ["db_0", "db_1"]
    assert all(r.failed and "left in Airflow" in r.note for r in report.rows[2:])
    assert set(State.next_to(path).entries) == {"connection:db_0", "connection:db_1"}
    no_canary(report.to_json(), report.table())

    target.server.app.knobs.clear_faults()
    again = run(target, plan, path, held)
    assert not again.failed and all(r.verified for r in again.rows)
    assert [r.written for r in again.rows[:2]] == ["already equal"] * 2


class RotatedMeanwhile(ConjurClient):
    """The migration identity, while another writer changes each value right after it is stored."""

    def __init__(self, target: Target) -> None:
        super().__init__(target.migrator().config)
        self.target = target

    def set_secret(self, variable_id: str, value: str | bytes) -> None:
        super().set_secret(variable_id, value)
        self.target.server.app.rotate(f"conjur:{variable_id}", "rotated by someone else")


def test_a_value_that_does_not_read_back_equal_is_not_recorded(target: Target, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held, client=RotatedMeanwhile(target))
    assert all(r.failed and not r.verified and r.note.startswith("not verified") for r in report.rows)
    # A variable is compared as served; a connection is not even connection JSON any more.
    assert all("read back a different value" in r.note for r in report.rows if r.kind == "variable")
    assert all("neither a connection URI nor connection JSON" in r.note for r in report.rows if r.kind == "connection")
    assert State.next_to(path).entries == {}
    no_canary(report.to_json(), report.table())


def test_an_interrupt_after_some_writes_keeps_the_state_and_the_rerun_continues(target: Target, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)

    def ctrl_c(line: str) -> None:
        if line.startswith("connection:db_2: verified"):
            raise KeyboardInterrupt

    report = Report(dry_run=False)
    with pytest.raises(KeyboardInterrupt), target.migrator() as client:
        apply_plan(plan, path, client, held=held, execute=True, progress=ctrl_c, report=report)
    assert [r.id for r in report.rows] == ["db_0", "db_1", "db_2"]
    assert set(State.next_to(path).entries) == {"connection:db_0", "connection:db_1", "connection:db_2"}
    again = run(target, plan, path, held)
    assert [r.written for r in again.rows] == ["already equal"] * 3 + ["written"] * 4


def test_blank_values_are_left_as_conjur_cannot_hold_them(target: Target, tmp_path: Path) -> None:
    held = [Held("variable", "empty_secret", "db", " \n", ("value",))]
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held)
    assert report.rows[0].failed and "empty or blank" in report.rows[0].note


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.from_regex(r"[\w#!():/.-]{1,30}", fullmatch=True), min_size=1, max_size=4, unique_by=str.lower),
    st.text(min_size=1, max_size=40).filter(str.strip),
)
def test_any_id_the_plan_accepts_is_served_by_the_backend_at_that_path(
    tmp_path_factory: pytest.TempPathFactory, ids: list[str], value: str
) -> None:
    base = tmp_path_factory.mktemp("any-id")
    with DevServer(SEED) as server:
        target = Target(server, base / "deployment")
        held = [Held("variable", i, "db", value + i, ("value",)) for i in ids]
        plan = make_plan(held, target.backend_kwargs(), airflow_group="g", grant_to=["host/airflow/worker"])
        if not plan.entries:
            return
        path = base / "plan.json"
        plan.write(path)
        report = run(target, plan, path, held)
        assert not report.failed, json.dumps(report.to_dict()["rows"])


def airflow_connection(conn_id: str, **fields: Any) -> Any:
    from airflow.models.connection import Connection

    return Connection(conn_id=conn_id, **fields)


def test_a_connection_is_verified_as_airflow_reads_it_not_only_as_bytes(target: Target, tmp_path: Path) -> None:
    """An empty login is not "no login": the stored JSON must give tasks the very same connection,
    and a served connection Airflow reads differently is never recorded as verified."""
    names = frozenset({"password"})
    same = held_connection(
        "redis_cache", airflow_connection("redis_cache", uri=f"redis://:{CANARY}pw%23@r:6379/0"), "db", names
    )
    assert same.view is not None and same.view[2] == ""
    other = airflow_connection("redis_cache", uri=f"redis://someone:{CANARY}pw%23@r:6379/0")
    drifted = dataclasses.replace(same, id="drifted", view=held_connection("drifted", other, "db", names).view)
    held = [same, drifted]
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held)
    rows = {r.id: r for r in report.rows}
    assert rows["redis_cache"].verified and not rows["redis_cache"].failed
    assert not rows["drifted"].verified
    assert rows["drifted"].note == "not verified: Airflow reads the served connection differently; left in Airflow"
    assert State.next_to(path).entries == {"connection:redis_cache": "verified"}
    no_canary(report.to_json(), report.table())
