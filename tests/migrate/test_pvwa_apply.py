"""apply into PVWA and Privilege Cloud against the dev server over HTTPS: the migration identity
adds accounts (or, with --overwrite, changes a different value), the runtime identity reads each
back through the secrets backend, reruns add nothing, and no fault (a 403 on one safe, an outage, a
lost answer, a value that changes) loses a secret or adds an account twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberark_ops.client import Unavailable
from cyberark_ops.client.pvwa import PVWAClient
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.knobs import Fault
from cyberark_ops.migrate import Held, Plan, PlanError, State, apply_plan, make_plan
from tests.migrate.applying import held_secrets, run
from tests.migrate.pvwa_target import SAFE, VARS_SAFE, PvwaTarget, seed

CANARY = "CANARY-4a2f-"
PLATFORM = "AirflowGeneric"


def airflow_side() -> list[Held]:
    return held_secrets(CANARY, connections=3, variables=2, password_tail=" /@:%?\"'", token_tail="\n\tend ")


@pytest.fixture(params=["pvwa", "privilege-cloud"])
def target(request: pytest.FixtureRequest, make_server: Callable[..., DevServer], tmp_path: Path) -> PvwaTarget:
    return PvwaTarget(make_server(seed()), tmp_path / "deployment", request.param)


def planned(target: PvwaTarget, tmp_path: Path, held: list[Held], **overrides: Any) -> tuple[Plan, Path]:
    plan = make_plan(held, target.backend_kwargs(**overrides), airflow_group="unused", platform_id=PLATFORM)
    path = tmp_path / "plan.json"
    plan.write(path)
    return plan, path


def no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text


def test_the_plan_names_the_account_the_backend_searches_for(target: PvwaTarget, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    assert plan.api == target.api and plan.policy == "" and not plan.left
    accounts = {e.key: e.account for e in plan.entries}
    assert accounts["connection:db_0"] == {
        "safe": SAFE,
        "name": "db_0",
        "address": "airflow",  # the test's Held has no view: labels fall back
        "userName": "db_0",
        "platformId": PLATFORM,
    }
    assert accounts["variable:api_token_1"] is not None
    assert accounts["variable:api_token_1"]["safe"] == VARS_SAFE
    assert accounts["variable:api_token_1"]["name"] == "var-api_token_1"
    no_canary(path.read_text())
    assert Plan.read(path).entries == plan.entries


def test_apply_adds_accounts_verifies_through_the_backend_and_a_rerun_adds_nothing(
    target: PvwaTarget, tmp_path: Path
) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    lines: list[str] = []
    report = run(target, plan, path, held, progress=lines.append)
    assert not report.failed, report.table()
    assert [r.written for r in report.rows] == ["written"] * 5 and all(r.verified for r in report.rows)
    assert report.policy == "not used (PVWA accounts)"
    for item, entry in zip(held, plan.entries, strict=True):
        assert entry.account is not None
        assert target.stored(entry.account["safe"], entry.account["name"]) == item.value
    assert State.next_to(path).entries == {h.key: "verified" for h in held}
    no_canary(report.to_json(), report.table(), "\n".join(lines), path.read_text())
    assert len(target.adds()) == 5

    again = run(target, plan, path, held)
    assert [r.written for r in again.rows] == ["already equal"] * 5
    assert all(r.verified for r in again.rows) and not again.failed
    assert len(target.adds()) == 5


def test_dry_run_adds_nothing(target: PvwaTarget, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held, execute=False)
    assert [r.written for r in report.rows] == ["would write"] * 5
    assert not any(r.verified for r in report.rows) and target.adds() == []
    assert not (tmp_path / "plan.json.state").exists()


def test_a_different_value_already_there_is_reported_and_changed_only_with_overwrite(
    target: PvwaTarget, tmp_path: Path
) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    with target.migrator() as client:
        client.add_account(safe=SAFE, platform_id=PLATFORM, secret="someone else's value", name="db_1")
    for _ in range(2):
        report = run(target, plan, path, held)
        row = next(r for r in report.rows if r.id == "db_1")
        assert row.failed and not row.verified and row.written == "no"
        assert "different value in account 'db_1' of safe 'Airflow-Prod'; left in Airflow" in row.note
        assert row.note.endswith("(rerun with --overwrite)")
        assert target.stored(SAFE, "db_1") == "someone else's value"
        assert sum(r.verified for r in report.rows) == 4
        no_canary(report.to_json())
    assert "connection:db_1" not in State.next_to(path).entries
    report = run(target, plan, path, held, overwrite=True)
    assert not report.failed and all(r.verified for r in report.rows), report.table()
    assert target.stored(SAFE, "db_1") == held[1].value and len(target.updates()) == 1


def test_a_403_on_one_safe_leaves_those_and_moves_the_rest(
    make_server: Callable[..., DevServer], tmp_path: Path
) -> None:
    target = PvwaTarget(make_server(seed(migrator_may_add_variables=False)), tmp_path / "deployment")
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held)
    rows = {r.id: r for r in report.rows}
    for key in ("api_token_0", "api_token_1"):
        assert rows[key].failed and not rows[key].verified
        assert "lacks 'Add accounts' on safe 'Airflow-Vars'" in rows[key].note, rows[key].note
    assert all(rows[f"db_{i}"].verified for i in range(3))
    assert set(State.next_to(path).entries) == {"connection:db_0", "connection:db_1", "connection:db_2"}
    assert target.stored(VARS_SAFE, "var-api_token_0") is None
    no_canary(report.to_json(), report.table())


def test_the_vault_going_down_mid_run_leaves_the_rest_and_a_rerun_finishes(target: PvwaTarget, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)

    def outage_after_the_second(line: str) -> None:
        if line.startswith("connection:db_1: verified"):
            target.server.app.knobs.add_fault(Fault(endpoint="*", status=503))

    report = run(target, plan, path, held, progress=outage_after_the_second)
    assert [r.id for r in report.rows if r.verified] == ["db_0", "db_1"]
    assert all(r.failed and "left in Airflow" in r.note for r in report.rows[2:]), report.table()
    assert set(State.next_to(path).entries) == {"connection:db_0", "connection:db_1"}
    no_canary(report.to_json(), report.table())

    target.server.app.knobs.clear_faults()
    again = run(target, plan, path, held)
    assert not again.failed and all(r.verified for r in again.rows)
    assert [r.written for r in again.rows] == ["already equal"] * 2 + ["written"] * 3
    assert len(target.adds()) == 5


class AnswerLost(PVWAClient):
    """The add reaches the Vault, but its answer never comes back (a timeout after the write)."""

    def add_account(self, **fields: Any) -> dict[str, Any]:
        super().add_account(**fields)
        raise Unavailable("PVWA add_account: no answer within the read timeout", api="pvwa", action="add_account")


def test_an_add_whose_answer_is_lost_is_searched_for_and_never_added_twice(target: PvwaTarget, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held, client=AnswerLost(target.config()))
    assert not report.failed, report.table()
    assert [r.written for r in report.rows] == ["written"] * 5 and all(r.verified for r in report.rows)
    assert len(target.adds()) == 5


def test_an_add_dropped_before_the_vault_is_reported_and_a_rerun_adds_it(target: PvwaTarget, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    target.server.app.knobs.add_fault(Fault(endpoint="pvwa.add_account", kind="drop", count=1))
    report = run(target, plan, path, held)
    first = report.rows[0]
    assert first.failed and not first.verified
    assert "the add did not answer" in first.note and "a search after it finds no account; rerun" in first.note
    assert all(r.verified for r in report.rows[1:])
    again = run(target, plan, path, held)
    assert not again.failed and again.rows[0].written == "written"
    assert len(target.adds()) == 5


class RotatedMeanwhile(PVWAClient):
    """The migration identity, while someone changes each account's password right after it is added."""

    def __init__(self, target: PvwaTarget) -> None:
        super().__init__(target.config())
        self.target = target

    def add_account(self, **fields: Any) -> dict[str, Any]:
        account = super().add_account(**fields)
        self.target.server.app.rotate(f"vault:{account['id']}", "rotated by someone else")
        return account


def test_a_value_that_does_not_read_back_equal_is_not_recorded(target: PvwaTarget, tmp_path: Path) -> None:
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held, client=RotatedMeanwhile(target))
    assert all(r.failed and not r.verified and r.note.startswith("not verified") for r in report.rows)
    assert all("read back a different value" in r.note for r in report.rows if r.kind == "variable")
    assert State.next_to(path).entries == {}
    no_canary(report.to_json(), report.table())
    again = run(target, plan, path, held)
    assert all("different value" in r.note and not r.verified for r in again.rows)


def test_a_connection_is_verified_as_airflow_reads_it(target: PvwaTarget, tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    from cyberark_ops.migrate.sources import held_connection

    conn = Connection(conn_id="redis_cache", uri=f"redis://:{CANARY}pw%23@r.internal:6379/0")
    held = [held_connection("redis_cache", conn, "db", frozenset({"password"}))]
    plan, path = planned(target, tmp_path, held)
    assert plan.entries[0].account is not None
    assert plan.entries[0].account["address"] == "r.internal"
    assert plan.entries[0].account["userName"] == "redis_cache"  # an empty login is no label
    report = run(target, plan, path, held)
    assert report.rows[0].verified, report.table()


@pytest.mark.parametrize(
    ("overrides", "held", "reason"),
    [
        (
            {"connections_path": "pvwa:id={conn_id}"},
            Held("connection", "c1", "db", "{}", ("password",), "postgres"),
            "names an account id, which the Vault assigns",
        ),
        (
            {"connection_format": "uri"},
            Held("connection", "c1", "db", "{}", ("password",), "postgres"),
            "connection_format 'uri'",
        ),
        ({}, Held("variable", "a:b", "db", "x", ("value",)), "which Vault object names may not"),
        ({}, Held("variable", "a" * 130, "db", "x", ("value",)), "the Vault allows 128"),
        (
            {"connections_path": "pvwa:Airflow-{env}-{conn_id}/password"},
            Held("connection", "c" * 20, "db", "{}", ("password",), "postgres"),
            "the Vault allows 28",
        ),
    ],
)
def test_what_the_backend_could_not_read_back_is_left_with_the_reason(
    make_server: Callable[..., DevServer], tmp_path: Path, overrides: dict[str, Any], held: Held, reason: str
) -> None:
    target = PvwaTarget(make_server(seed()), tmp_path)
    plan = make_plan([held], target.backend_kwargs(**overrides), airflow_group="g", platform_id=PLATFORM)
    assert not plan.entries and reason in plan.left[0].reason, plan.left


def test_plan_options_for_pvwa_are_checked(make_server: Callable[..., DevServer], tmp_path: Path) -> None:
    target = PvwaTarget(make_server(seed()), tmp_path)
    with pytest.raises(PlanError, match="--platform-id: required for api 'pvwa'"):
        make_plan([], target.backend_kwargs(), airflow_group="g")
    with pytest.raises(PlanError, match="--grant-to: Conjur only"):
        make_plan([], target.backend_kwargs(), airflow_group="g", grant_to=["host/x"], platform_id=PLATFORM)
    twins = [Held("variable", "Token", "db", "x", ("value",)), Held("variable", "token", "env", "y", ("value",))]
    with pytest.raises(PlanError, match="map to the same path"):
        make_plan(twins, target.backend_kwargs(), airflow_group="g", platform_id=PLATFORM)


def test_report_rows_say_why_without_a_value(target: PvwaTarget, tmp_path: Path) -> None:
    held = [*airflow_side(), Held("variable", "blank", "db", "  ", ("value",))]
    plan, path = planned(target, tmp_path, held)
    report = run(target, plan, path, held)
    blank = next(r for r in report.rows if r.id == "blank")
    assert blank.failed and "empty or blank" in blank.note
    no_canary(json.dumps(report.to_dict()))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4, unique_by=str.casefold),
    st.text(min_size=1, max_size=40).filter(str.strip),
)
def test_any_id_the_plan_accepts_is_an_account_the_backend_finds(
    tmp_path_factory: pytest.TempPathFactory, ids: list[str], value: str
) -> None:
    base = tmp_path_factory.mktemp("any-id")
    with DevServer(seed()) as server:
        target = PvwaTarget(server, base / "deployment")
        held = [Held("variable", i, "db", value + i, ("value",)) for i in ids]
        try:
            plan = make_plan(held, target.backend_kwargs(), airflow_group="g", platform_id=PLATFORM)
        except PlanError as exc:
            assert "map to the same path" in str(exc)  # ids the Vault's case-insensitive names merge
            return
        for left in plan.left:
            assert left.reason  # every id left out says why
        if not plan.entries:
            return
        path = base / "plan.json"
        plan.write(path)
        report = run(target, plan, path, held)
        assert not report.failed, json.dumps(report.to_dict()["rows"])
        assert all(r.verified for r in report.rows if r.path is not None)


def test_a_plan_and_an_identity_for_different_apis_stop_before_any_write(
    make_server: Callable[..., DevServer], tmp_path: Path
) -> None:
    from cyberark_ops.client import ConjurApiKeyAuth, ConjurConfig
    from cyberark_ops.client.conjur import ConjurClient
    from cyberark_ops.migrate import MigrationError

    target = PvwaTarget(make_server(seed()), tmp_path / "deployment")
    held = airflow_side()
    plan, path = planned(target, tmp_path, held)
    conjur = ConjurClient(
        ConjurConfig(
            base_url=target.info["url"], ca_bundle=str(target.ca), account="myorg", auth=ConjurApiKeyAuth("u", "k")
        )
    )
    with pytest.raises(MigrationError, match="does not reach pvwa"), conjur:
        apply_plan(plan, path, conjur, held=held, execute=True)
    as_conjur = Plan("conjur", plan.backend_kwargs, "root", "", "g", plan.entries)
    with pytest.raises(MigrationError, match="does not reach conjur"), target.migrator() as migrator:
        apply_plan(as_conjur, path, migrator, held=held, execute=True)
    assert target.adds() == [] and not (tmp_path / "plan.json.state").exists()
