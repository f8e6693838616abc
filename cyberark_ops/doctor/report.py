"""The doctor's result model and its output: the bottom of the package, so every check area and
the runner share one notion of a status and one way a line leaves the doctor.

The report never holds a secret value: the credential for reaching CyberArk and every fetched
value are only ever compared, and each line of text is scrubbed of them (in every encoded form)
before it leaves the doctor, as a second line of defence.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import scrub
from ..client.untrusted import printable

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)


@dataclass(frozen=True)
class Check:
    """One line of the report. ``remedy`` says what to do when the status is not ``pass``."""

    name: str
    status: str
    detail: str
    remedy: str = ""


@dataclass
class Report:
    source: str
    api: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(check.status == FAIL for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "api": self.api,
            "ok": not self.failed,
            "summary": {status: sum(c.status == status for c in self.checks) for status in STATUSES},
            "checks": [asdict(check) for check in self.checks],
        }


# -- what never leaves the doctor -------------------------------------------------------------------


class _Secrets:
    """Everything that must not appear in the report: the credentials and every fetched value."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str | None) -> None:
        if value:
            self.values.append(value)

    def clean(self, text: str) -> str:
        """``text`` with every leak form of every value replaced, by the scrubbing module itself.

        Values under 3 characters are left alone (they would star out ordinary words); one that
        is not valid UTF-8 has no encoded forms, so only its raw text is replaced."""
        valid = [v for v in self.values if len(v) >= 3 and _is_utf8(v)]
        text = scrub.scrub(text, valid)
        for value in self.values:
            if len(value) >= 3 and not _is_utf8(value):
                text = text.replace(value, "***")
        return text


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error_text(exc: BaseException) -> str:
    """The error's message, with its HTTP status in front when the message does not say it."""
    status = getattr(exc, "status", None)
    text = str(exc)
    return f"HTTP {status}: {text}" if status and f"HTTP {status}" not in text else text


def _cleaned(report: Report, secrets: _Secrets) -> Report:
    """Secrets scrubbed, and every line cut and escaped: a check's name and detail echo settings,
    paths and server messages, and the report goes to a terminal."""
    report.source = printable(report.source, SOURCE_CHARS)
    report.checks = [
        Check(
            printable(c.name, NAME_CHARS),
            c.status,
            printable(secrets.clean(c.detail), DETAIL_CHARS),
            printable(secrets.clean(c.remedy), DETAIL_CHARS),
        )
        for c in report.checks
    ]
    return report


# -- output -----------------------------------------------------------------------------------------

SOURCE_CHARS = 200
NAME_CHARS = 160
DETAIL_CHARS = 2000
PATH_CHARS = 120
"""Characters of a report's source, a check's name and its detail or remedy (cut in the middle)."""

_MARKS = {PASS: "PASS", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}


def render_text(report: Report, width: int = 100) -> str:
    """Aligned columns: status, check, detail; a remedy on its own indented line when needed."""
    name_width = max([len(c.name) for c in report.checks] + [5])
    lines = [f"cyberark-ops doctor: {report.source}" + (f" ({report.api})" if report.api else ""), ""]
    lines.append(f"{'STATUS':<6}  {'CHECK':<{name_width}}  DETAIL")
    for check in report.checks:
        lines.append(f"{_MARKS[check.status]:<6}  {check.name:<{name_width}}  {check.detail}")
        if check.remedy and check.status != PASS:
            lines.append(f"{'':<6}  {'':<{name_width}}  -> {check.remedy}")
    counts = report.as_dict()["summary"]
    lines.append("")
    lines.append(", ".join(f"{counts[s]} {s}" for s in STATUSES) + ("" if report.failed else " — no failure"))
    return "\n".join(lines) + "\n"


def render_rich(report: Report, console: Any = None) -> None:
    """The same table through ``rich`` (Airflow depends on it), for a terminal."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    styles = {PASS: "green", WARN: "yellow", FAIL: "bold red", SKIP: "dim"}
    table = Table(title=f"cyberark-ops doctor: {report.source}" + (f" ({report.api})" if report.api else ""))
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=3)
    table.add_column("remedy", overflow="fold", ratio=2)
    for check in report.checks:
        style = styles[check.status]
        remedy = check.remedy if check.status != PASS else ""
        table.add_row(f"[{style}]{_MARKS[check.status]}[/]", escape(check.name), escape(check.detail), escape(remedy))
    console = console or Console()
    console.print(table, markup=True, highlight=False)


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)


def use_rich() -> bool:
    if not os.isatty(1) or os.environ.get("NO_COLOR"):
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True
