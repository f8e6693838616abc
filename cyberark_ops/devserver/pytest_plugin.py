"""pytest fixtures for the dev server, as moto offers ``mock_aws``.

Enable with ``pytest_plugins = ["cyberark_ops.devserver.pytest_plugin"]`` in a ``conftest.py``
(or ``cyberark_ops.testing.pytest_plugin``, which adds the Airflow connection fixture).
Set a different seed for a module or package by overriding the ``cyberark_devserver_seed``
fixture (a mapping, a path, or None for the built-in demo seed), and emulate other APIs by
overriding ``cyberark_devserver_apis`` (e.g. ``{**DEFAULT_APIS, "acme": AcmeApi}``; see ``api.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .api import EmulatedApi
from .server import DevServer

APIS_FIXTURE = "cyberark_devserver_apis"


@pytest.fixture
def cyberark_devserver_seed() -> dict[str, Any] | str | Path | None:
    """The seed for ``cyberark_devserver``; None is the built-in demo seed."""
    return None


@pytest.fixture
def cyberark_devserver_apis() -> Mapping[str, EmulatedApi] | None:
    """The APIs ``cyberark_devserver`` emulates; None is ``DEFAULT_APIS``."""
    return None


@pytest.fixture
def cyberark_devserver(
    cyberark_devserver_seed: dict[str, Any] | str | Path | None, request: pytest.FixtureRequest
) -> Iterator[DevServer]:
    """A fresh dev server per test, over HTTPS on a free loopback port, stopped afterwards.

    It emulates the APIs of a ``cyberark_devserver_apis`` fixture when one is visible (this plugin's,
    or an override), looked up by name so plugins re-exporting only this fixture keep working.
    """
    try:
        apis: Mapping[str, EmulatedApi] | None = request.getfixturevalue(APIS_FIXTURE)
    except pytest.FixtureLookupError:
        apis = None
    with DevServer(cyberark_devserver_seed, apis=apis) as server:
        yield server
