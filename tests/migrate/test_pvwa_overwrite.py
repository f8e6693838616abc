"""``apply --overwrite`` into PVWA and Privilege Cloud against the dev server over HTTPS: a different
value already in an account is replaced in the Vault only (Password/Update) and read back through
the secrets backend; without --overwrite, in a dry run, on a 403 or a lost answer it stays in at
least one place, and no value reaches the report, an exception or the dev server's audit and log."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.client import Unavailable
from cyberark_ops.client.pvwa import PVWAClient
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.knobs import Fault
from cyberark_ops.migrate import Held, Report, State
from tests.migrate.pvwa_target import SAFE, PvwaTarget, seed
from tests.migrate.test_pvwa_apply import PLATFORM, airflow_side, no_canary, planned, run

OLD = "someone else's value"


@pytest.fixture(params=["pvwa", "privilege-cloud"])
def target(request: pytest.FixtureRequest, make_server: Callable[..., DevServer], tmp_path: Path) -> PvwaTarget:
    return PvwaTarget(make_server(seed()), tmp_path / "deployment", request.param)


def connections() -> list[Held]:
    """The connections of ``airflow_side`` (its variables end with white space, which see below)."""
    return [h for h in airflow_side() if h.kind == "connection"]


def occupied(target: PvwaTarget, name: str = "db_1", safe: str = SAFE) -> None:
    with target.migrator() as client:
        client.add_account(safe=safe, platform_id=PLATFORM, secret=OLD, name=name)


def row(report: Report, name: str = "db_1") -> Any:
    return next(r for r in report.rows if r.id == name)


def nothing_leaked(target: PvwaTarget, report: Report, *texts: str) -> None:
    audit = json.dumps(target.server.app.audit.events())
    no_canary(report.to_json(), report.table(), audit, *texts)


def test_overwrite_replaces_a_different_value_and_it_reads_back_through_the_backend(
    target: PvwaTarget, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    held = connections()
    plan, path = planned(target, tmp_path, held)
    occupied(target)
    lines: list[str] = []
    report = run(target, plan, path, held, overwrite=True, progress=lines.append)
    assert not report.failed, report.table()
    db_1 = row(report)
    assert db_1.written == "written" and db_1.verified
    assert db_1.note == "overwrote the different value in account 'db_1' of safe 'Airflow-Prod'"
    assert target.stored(SAFE, "db_1") == held[1].value
    assert State.next_to(path).entries == {h.key: "verified" for h in held}
    assert len(target.updates()) == 1 and len(target.adds()) == 3  # the two new ones, and ours
    (update,) = target.updates()
    assert update["object"] and "password updated in the Vault to version 2" in update["detail"]
    nothing_leaked(target, report, "\n".join(lines), caplog.text)

    again = run(target, plan, path, held, overwrite=True)
    assert [r.written for r in again.rows] == ["already equal"] * 3 and not again.failed
    assert len(target.updates()) == 1


def test_without_overwrite_a_different_value_is_left_and_the_report_says_rerun_with_overwrite(
    target: PvwaTarget, tmp_path: Path
) -> None:
    held = connections()
    plan, path = planned(target, tmp_path, held)
    occupied(target)
    report = run(target, plan, path, held)
    db_1 = row(report)
    assert db_1.failed and not db_1.verified and db_1.written == "no"
    assert db_1.note == (
        "the vault holds a different value in account 'db_1' of safe 'Airflow-Prod'; left in Airflow "
        "(rerun with --overwrite)"
    )
    assert target.stored(SAFE, "db_1") == OLD and target.updates() == []
    assert "connection:db_1" not in State.next_to(path).entries
    nothing_leaked(target, report)


def test_a_dry_run_with_overwrite_says_so_and_writes_nothing(target: PvwaTarget, tmp_path: Path) -> None:
    held = connections()
    plan, path = planned(target, tmp_path, held)
    occupied(target)
    report = run(target, plan, path, held, overwrite=True, execute=False)
    assert [r.written for r in report.rows] == ["would write"] * 3 and not report.failed
    assert row(report).note == "would overwrite the different value in account 'db_1' of safe 'Airflow-Prod'"
    assert target.stored(SAFE, "db_1") == OLD and target.updates() == [] and len(target.adds()) == 1
    assert not (tmp_path / "plan.json.state").exists()
    nothing_leaked(target, report)


def test_a_member_without_update_password_gets_403_and_the_secret_stays_in_airflow(
    make_server: Callable[..., DevServer], tmp_path: Path
) -> None:
    target = PvwaTarget(make_server(seed(migrator_may_update=False)), tmp_path / "deployment")
    held = connections()
    plan, path = planned(target, tmp_path, held)
    occupied(target)
    report = run(target, plan, path, held, overwrite=True)
    db_1 = row(report)
    assert db_1.failed and not db_1.verified and db_1.written == "no"
    assert db_1.note.startswith("left in Airflow: the vault refused to change account 'db_1' of safe 'Airflow-Prod'")
    assert "'Update password value'" in db_1.note and "403" in db_1.note, db_1.note
    assert [r.verified for r in report.rows] == [True, False, True]
    assert target.stored(SAFE, "db_1") == OLD
    (refused,) = target.server.app.audit.events(action="pvwa.update_password")
    assert refused["status"] == 403
    nothing_leaked(target, report)


def test_a_value_the_vault_would_trim_is_never_overwritten(target: PvwaTarget, tmp_path: Path) -> None:
    held = [h for h in airflow_side() if h.id == "api_token_0"]
    assert held[0].value != held[0].value.strip()
    plan, path = planned(target, tmp_path, held)
    entry = plan.entries[0].account
    assert entry is not None
    occupied(target, entry["name"], entry["safe"])
    report = run(target, plan, path, held, overwrite=True)
    assert report.rows[0].failed and "white space, which the Vault trims from a changed value" in report.rows[0].note
    assert target.updates() == []
    nothing_leaked(target, report)


class AnswerLost(PVWAClient):
    """The update reaches the Vault, but its answer never comes back (a timeout after the write)."""

    def update_password(self, account_id: str, new_value: str, *, change_entire_group: bool = False) -> None:
        super().update_password(account_id, new_value, change_entire_group=change_entire_group)
        raise Unavailable("PVWA update_password: no answer within the read timeout", api="pvwa", action="update")


def test_an_update_whose_answer_is_lost_is_read_and_counted_written_once(target: PvwaTarget, tmp_path: Path) -> None:
    held = connections()
    plan, path = planned(target, tmp_path, held)
    occupied(target)
    report = run(target, plan, path, held, client=AnswerLost(target.config()), overwrite=True)
    assert not report.failed, report.table()
    assert row(report).written == "written" and row(report).verified
    assert len(target.updates()) == 1  # read back, never sent again
    nothing_leaked(target, report)


@pytest.mark.parametrize("fault", [{"kind": "drop"}, {"kind": "status", "status": 503}])
def test_an_update_lost_before_the_vault_leaves_the_secret_and_a_rerun_completes(
    target: PvwaTarget, tmp_path: Path, fault: dict[str, Any]
) -> None:
    held = connections()
    plan, path = planned(target, tmp_path, held)
    occupied(target)
    target.server.app.knobs.add_fault(Fault.from_dict({"endpoint": "pvwa.update_password", "count": 1, **fault}, "t"))
    report = run(target, plan, path, held, overwrite=True)
    db_1 = row(report)
    assert db_1.failed and not db_1.verified and db_1.written == "no"
    assert "changing account 'db_1' of safe 'Airflow-Prod' did not answer" in db_1.note, db_1.note
    assert db_1.note.endswith("it still holds another value; rerun")
    assert target.stored(SAFE, "db_1") == OLD  # Airflow still holds its value: nothing is lost
    assert target.updates() == []  # not retried blindly
    nothing_leaked(target, report)

    again = run(target, plan, path, held, overwrite=True)
    assert not again.failed and row(again).written == "written" and row(again).verified
    assert target.stored(SAFE, "db_1") == held[1].value and len(target.updates()) == 1
