"""pytest fixtures for the dev server, as moto offers ``mock_aws``.

Enable with ``pytest_plugins = ["cyberark_ops.devserver.pytest_plugin"]`` in a ``conftest.py``
(or ``cyberark_ops.testing.pytest_plugin``, which adds the Airflow connection fixture).
Set a different seed for a module or package by overriding the ``cyberark_devserver_seed``
fixture (a mapping, a path, or None for the built-in demo seed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import DevServer


@pytest.fixture
def cyberark_devserver_seed() -> dict[str, Any] | str | Path | None:
    """The seed for ``cyberark_devserver``; None is the built-in demo seed."""
    return None


@pytest.fixture
def cyberark_devserver(cyberark_devserver_seed: dict[str, Any] | str | Path | None) -> Iterator[DevServer]:
    """A fresh dev server per test, over HTTPS on a free loopback port, stopped afterwards."""
    with DevServer(cyberark_devserver_seed) as server:
        yield server
