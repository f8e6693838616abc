"""The stack shared by the modules that register a part (``tests/airflow/shared_stack.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.airflow.shared_stack import PARTS, run_parts


@pytest.fixture(scope="session")
def shared_stack_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each selected module's result, by module name: only the parts of modules with a test in this
    session start (a module run alone starts only its own)."""
    selected = {item.module.__name__ for item in request.session.items if isinstance(item, pytest.Function)}
    return run_parts(selected & PARTS.keys(), tmp_path_factory.mktemp("shared-stack"))
