"""Renders ``docs/guarantees.md`` from what the session's guarantee tests recorded."""

from __future__ import annotations

import pytest

from tests.guarantees import report


def _newest() -> float:
    return max((path.stat().st_mtime for path in report.RESULTS.glob("*.json")), default=0.0)


# A conftest below the root is loaded after pytest_sessionstart: note the state at import instead.
_BEFORE = _newest()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _newest() > _BEFORE and report.complete():
        report.write_page()
