"""pytest fixtures for DAG and hook tests: the dev server's, plus an Airflow connection to it.

Enable with ``pytest_plugins = ["cyberark_ops.testing.pytest_plugin"]`` in a ``conftest.py``.
The emulator's own plugin stays free of Airflow connection details; this one joins the two.
"""

from __future__ import annotations

import json

import pytest

from ..devserver import DevServer
from ..devserver.connections import demo_conjur_connection
from ..devserver.pytest_plugin import cyberark_devserver, cyberark_devserver_seed
from ..devserver.seed import demo_seed


@pytest.fixture
def cyberark_connection_env(cyberark_devserver: DevServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """``AIRFLOW_CONN_CYBERARK_DEFAULT`` pointing at the dev server's Conjur API as the demo seed's
    host ``host/airflow/worker``; returns the connection id."""
    conn = demo_conjur_connection(cyberark_devserver.info(), demo_seed())
    monkeypatch.setenv("AIRFLOW_CONN_CYBERARK_DEFAULT", json.dumps(conn))
    return "cyberark_default"


__all__ = ["cyberark_connection_env", "cyberark_devserver", "cyberark_devserver_seed"]
