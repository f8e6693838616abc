"""The Airflow version under test, for tests of behaviour that older supported versions lack."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.version import Version

AIRFLOW = Version(version("apache-airflow"))


def needs_airflow(minimum: str, why: str) -> pytest.MarkDecorator:
    """Skips on an Airflow older than ``minimum``, saying which version is running and why."""
    return pytest.mark.skipif(Version(minimum) > AIRFLOW, reason=f"needs Airflow {minimum}+ (running {AIRFLOW}): {why}")
