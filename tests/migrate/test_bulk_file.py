"""The bulk-onboarding file: any value travels whole through a CSV reader (or is left out and
reported), nothing a value holds adds a row or a column, the file is owner-only and never replaced,
and only ``apply --verify-only``, reading each account back through the backend, records progress."""

from __future__ import annotations

import csv
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberark_ops.devserver import DevServer
from cyberark_ops.migrate import BulkFileError, Entry, Held, Plan, State, apply_plan, make_plan, write_bulk_file
from cyberark_ops.migrate.bulk import COLUMNS, account_fields, csv_row, reads_back
from tests.migrate.pvwa_target import PvwaTarget, seed
from tests.migrate.test_pvwa_apply import CANARY, PLATFORM, airflow_side, no_canary


def read_rows(path: Path) -> list[dict[str | None, str | list[str] | None]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file, strict=True))


def bare_plan(names: list[str]) -> tuple[Plan, list[Held]]:
    entries = [
        Entry(
            "variable",
            f"v{i}",
            "db",
            f"S/{name}",
            f"S/{name}",
            ("value",),
            "delete",
            {"safe": "S", "name": name, "address": "airflow", "userName": name, "platformId": PLATFORM},
        )
        for i, name in enumerate(names)
    ]
    return Plan("pvwa", {}, "", "", "", entries), []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=60)), min_size=1, max_size=6))
def test_any_value_round_trips_through_a_csv_reader_or_is_reported(
    tmp_path_factory: pytest.TempPathFactory, items: list[tuple[str, str]]
) -> None:
    out = tmp_path_factory.mktemp("bulk") / "accounts.csv"
    plan, _ = bare_plan([name for name, _ in items])
    held = [Held("variable", f"v{i}", "db", value, ("value",)) for i, (_, value) in enumerate(items)]
    report = write_bulk_file(plan, out, held=held)
    rows = read_rows(out)
    in_file = [
        (entry, item)
        for entry, item, row in zip(plan.entries, held, report.rows, strict=True)
        if row.written == "in bulk file"
    ]
    assert len(rows) == len(in_file)  # no value adds or removes a row
    for row, (entry, item) in zip(rows, in_file, strict=True):
        assert list(row) == list(COLUMNS)  # no value adds a column (DictReader puts extras under None)
        assert row["password"] == item.value and entry.account is not None and row["name"] == entry.account["name"]
    for entry, item, row in zip(plan.entries, held, report.rows, strict=True):
        if row.written != "in bulk file":
            assert row.failed
            if item.value.strip():
                fields = account_fields(entry, item.value)
                assert "cannot travel whole" in row.note and not reads_back(csv_row(fields), fields)
            else:
                assert "empty or blank" in row.note
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_a_record_that_reads_back_is_exactly_one_row_of_those_fields(fields: list[str]) -> None:
    record = csv_row(fields)
    if reads_back(record, fields):
        assert list(csv.reader(record.splitlines(keepends=True), strict=True)) == [fields]


def test_the_file_is_never_written_over_and_a_conjur_plan_has_none(tmp_path: Path) -> None:
    plan, held = bare_plan(["a"])
    out = tmp_path / "accounts.csv"
    out.write_text("someone's file")
    with pytest.raises(BulkFileError, match="exists; delete it"):
        write_bulk_file(plan, out, held=held)
    assert out.read_text() == "someone's file"
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(BulkFileError):
        write_bulk_file(plan, link, held=held)
    assert not (tmp_path / "elsewhere.csv").exists()
    conjur = Plan("conjur", {}, "root", "", "g", [])
    with pytest.raises(BulkFileError, match="the bulk-onboarding file is for PVWA"):
        write_bulk_file(conjur, tmp_path / "other.csv", held=held)


def test_bulk_file_then_verify_only_records_only_what_reads_back_equal(
    make_server: Callable[..., DevServer], tmp_path: Path
) -> None:
    target = PvwaTarget(make_server(seed()), tmp_path / "deployment")
    held = airflow_side()
    plan = make_plan(held, target.backend_kwargs(), airflow_group="g", platform_id=PLATFORM)
    path = tmp_path / "plan.json"
    plan.write(path)
    out = tmp_path / "accounts.csv"
    report = write_bulk_file(plan, out, held=held)
    assert [r.written for r in report.rows] == ["in bulk file"] * 5 and not report.failed
    assert "HOLDS THE SECRET VALUES" in "\n".join(report.next_steps)
    no_canary(report.to_json(), report.table())
    assert CANARY in out.read_text(encoding="utf-8-sig")  # the one place the values are, by design
    assert target.adds() == []

    early = apply_plan(plan, path, None, held=held, execute=False, verify_only=True)
    assert all(r.failed and "finds nothing" in r.note for r in early.rows)
    assert not (tmp_path / "plan.json.state").exists()

    # Loaded as the Accounts Onboard Utility would: one add per row, by its column names.
    with target.migrator() as client:
        for row in read_rows(out):
            assert isinstance(row["password"], str) and isinstance(row["name"], str)
            client.add_account(
                safe=str(row["safe"]),
                platform_id=str(row["platformID"]),
                secret=row["password"],
                name=row["name"],
                address=str(row["address"]),
                user_name=str(row["userName"]),
            )
    out.unlink()
    verified = apply_plan(plan, path, None, held=held, execute=False, verify_only=True)
    assert not verified.failed, verified.table()
    assert all(r.verified and r.written == "-" for r in verified.rows)
    assert State.next_to(path).entries == {h.key: "verified" for h in held}
    assert len(target.adds()) == 5  # verify-only added nothing
    no_canary(verified.to_json(), verified.table(), path.read_text())
