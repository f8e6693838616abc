"""The bulk-onboarding file: the plan's PVWA accounts as the CSV CyberArk's Accounts Onboard
Utility reads (cyberark/epv-api-scripts, ``Accounts_Onboard_Utility.ps1 -Create``), for a team that
loads accounts with its own tooling instead of letting this command call the API.

The file holds the secret values, so it is created owner-only (0600) and never replaced in place;
nothing leaves Airflow on its account: ``apply --verify-only`` reads each value back through the
secrets backend first. Each row is parsed back before it is kept, so a value the CSV format could
not carry whole (or that would split into extra rows or columns) is left out and reported.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from .plan import PVWA_APIS, Entry, Plan
from .report import Report, Row
from .sources import Held, read_airflow

COLUMNS = ("name", "userName", "address", "safe", "platformID", "password", "enableAutoMgmt", "manualMgmtReason")
"""The utility's column names (it reads them case-insensitively and turns any other column into a
platform property); ``userName`` and ``address`` are mandatory for its -Create mode."""
MANUAL_REASON = "Airflow connection or variable migrated by cyberark-ops"
ENCODING = "utf-8-sig"
"""With a byte-order mark: PowerShell's Import-Csv then reads the file as UTF-8 on every version."""


class BulkFileError(Exception):
    """The file could not be written; names the path, never a value."""


def csv_row(fields: Sequence[str]) -> str:
    """One CSV record, every field quoted (a value with a comma, quote or line break stays one field)."""
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(fields)
    return out.getvalue()


def reads_back(record: str, fields: Sequence[str]) -> bool:
    """Whether a conforming CSV reader gets exactly ``fields`` back from ``record``, as one row."""
    try:
        rows = list(csv.reader(io.StringIO(record, newline=""), strict=True))
    except csv.Error:
        return False
    return rows == [list(fields)]


def account_fields(entry: Entry, value: str) -> list[str]:
    account = entry.account or {}
    return [
        account.get("name", ""),
        account.get("userName", ""),
        account.get("address", ""),
        account.get("safe", ""),
        account.get("platformId", ""),
        value,
        "false",
        MANUAL_REASON,
    ]


def write_bulk_file(plan: Plan, out: Path, *, held: list[Held] | None = None, report: Report | None = None) -> Report:
    """Writes one row per planned account whose value Airflow still holds as planned; a report row
    for each entry says whether its value is in the file."""
    if plan.api not in PVWA_APIS:
        raise BulkFileError(f"--bulk-file: the plan writes to {plan.api}; the bulk-onboarding file is for PVWA")
    report = report if report is not None else Report(dry_run=True)
    report.policy = "not used (bulk-onboarding file)"
    current = {h.key: h for h in (held if held is not None else read_airflow())}
    records = [csv_row(COLUMNS)]
    for entry in plan.entries:
        row = Row(entry.kind, entry.id, entry.source, entry.path, "-", False, "no")
        report.rows.append(row)
        item = current.get(entry.key)
        if item is None or item.source != entry.source:
            row.note, row.failed = "no longer in Airflow as planned (plan again)", True
            continue
        if not item.value.strip():
            row.note, row.failed = "empty or blank value: the Vault stores none; left in Airflow", True
            continue
        fields = account_fields(entry, item.value)
        record = csv_row(fields)
        if not reads_back(record, fields):
            row.note, row.failed = "its value cannot travel whole in a CSV field; use apply --execute", True
            continue
        records.append(record)
        row.written = "in bulk file"
        row.note = "load the file, then apply --verify-only"
    for left in plan.left:
        report.rows.append(
            Row(left.kind, left.id, left.source, None, "-", False, "no", f"left by the plan: {left.reason}")
        )
    _write_private_new(out, "".join(records))
    report.next_steps = [
        f"{out} HOLDS THE SECRET VALUES (owner-only, 0600). Load it with the Accounts Onboard Utility",
        "  (Accounts_Onboard_Utility.ps1 -Create -CsvPath <file> -NoSafeCreation), then delete it (shred -u).",
        "Nothing was removed from Airflow: run apply --verify-only [--execute --remove-from-airflow] next.",
    ]
    return report


def _write_private_new(path: Path, text: str) -> None:
    """Created owner-only and never over an existing file (a symlink planted there is refused too)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise BulkFileError(
            f"--bulk-file {str(path)!r}: exists; delete it (it may hold secrets) or name another"
        ) from None
    except OSError as exc:
        raise BulkFileError(f"--bulk-file {str(path)!r}: cannot create it ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding=ENCODING, newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


__all__ = ["COLUMNS", "BulkFileError", "account_fields", "csv_row", "reads_back", "write_bulk_file"]
