"""Progress next to the plan (``<plan>.state``): which entries were read back equal and which were
removed from Airflow. Written by atomic rename after each step, so a Ctrl-C or a crash at any
moment leaves the last whole state, and a rerun continues from it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .plan import PLAN_FILE_CAP, atomic_write, read_json_file

VERIFIED = "verified"
REMOVED = "removed"


class State:
    def __init__(self, path: Path, entries: dict[str, str]) -> None:
        self.path = path
        self.entries = entries

    @classmethod
    def next_to(cls, plan_path: Path) -> State:
        path = plan_path.with_name(plan_path.name + ".state")
        if not os.path.lexists(path):
            return cls(path, {})
        try:
            data = read_json_file(path, "state file", cap=PLAN_FILE_CAP, what="a migration state", error=ValueError)
        except ValueError as exc:
            raise ValueError(f"{exc}; move it away to start over") from None
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not all(v in (VERIFIED, REMOVED) for v in entries.values()):
            raise ValueError(f"state file {str(path)!r} is not a migration state; move it away to start over")
        return cls(path, {str(k): str(v) for k, v in entries.items()})

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def record(self, key: str, status: str) -> None:
        self.entries[key] = status
        atomic_write(self.path, json.dumps({"entries": self.entries}, indent=1, sort_keys=True) + "\n")


__all__ = ["REMOVED", "VERIFIED", "State"]
