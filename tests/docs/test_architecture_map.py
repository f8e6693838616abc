"""docs/architecture.md is the map of the house: every module of the package stands on it, so a
module added without a line there (or one removed and still described) fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAP = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_every_module_of_the_package_is_on_the_map() -> None:
    modules = sorted(path.relative_to(ROOT) for path in (ROOT / "cyberark_ops").rglob("*.py"))
    missing = [str(path) for path in modules if path.name not in MAP]
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_every_module_the_map_names_exists() -> None:
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*\.py)\b", MAP))
    existing = {path.name for path in (ROOT / "cyberark_ops").rglob("*.py")}
    existing |= {path.name for path in (ROOT / "tests").rglob("*.py")}
    assert not names - existing, f"docs/architecture.md names modules that do not exist: {sorted(names - existing)}"
