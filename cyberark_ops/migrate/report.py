"""The migration report: one row per connection or variable (what moved, what was verified, what
was left and why), as JSON and as a table. Rows hold ids, paths and outcomes, never a value."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    kind: str
    id: str
    source: str
    path: str | None
    written: str
    """``written``, ``already equal``, ``would write``, ``no`` or ``-``."""
    verified: bool
    removed: str
    """What happened in Airflow: ``no``, ``password and sensitive extras removed``, ..."""
    note: str = ""
    failed: bool = False


@dataclass
class Report:
    dry_run: bool
    rows: list[Row] = field(default_factory=list)
    policy: str = ""
    next_steps: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return self.interrupted or any(r.failed for r in self.rows)

    def counts(self) -> dict[str, int]:
        return {
            "entries": len(self.rows),
            "written": sum(r.written == "written" for r in self.rows),
            "already_equal": sum(r.written == "already equal" for r in self.rows),
            "verified": sum(r.verified for r in self.rows),
            "removed": sum(r.removed not in ("no", "") for r in self.rows),
            "failed": sum(r.failed for r in self.rows),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            "policy": self.policy,
            "counts": self.counts(),
            "rows": [asdict(r) for r in self.rows],
            "next_steps": self.next_steps,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def table(self) -> str:
        headers = ("kind", "id", "source", "path", "written", "verified", "removed from Airflow", "note")
        body = [
            (r.kind, r.id, r.source, r.path or "-", r.written, "yes" if r.verified else "no", r.removed, r.note)
            for r in self.rows
        ]
        widths = [
            min(48, max(len(h), *(len(str(row[i])) for row in body))) if body else len(h) for i, h in enumerate(headers)
        ]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        for row in body:
            lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        mode = "dry run: nothing written or removed" if self.dry_run else "applied"
        summary = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        lines.append(f"\n{mode}; {summary}" + ("; interrupted (rerun to continue)" if self.interrupted else ""))
        lines += self.next_steps
        return "\n".join(lines) + "\n"


__all__ = ["Report", "Row"]
