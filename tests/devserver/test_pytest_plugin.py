"""The fixtures users get from ``cyberark_ops.testing.pytest_plugin`` (the dev server's included)."""

from __future__ import annotations

from typing import Any

import pytest

from cyberark_ops import CyberArkHook
from cyberark_ops.devserver import DevServer


def test_default_fixture_serves_the_demo_seed_to_the_hook(
    cyberark_devserver: DevServer, cyberark_connection_env: str
) -> None:
    assert CyberArkHook(cyberark_connection_env).get_secret("prod/db/username") == "airflow_demo"
    actions = [e["action"] for e in cyberark_devserver.app.audit.events()]
    assert actions == ["conjur.authenticate", "conjur.retrieve"]


class TestOwnSeed:
    @pytest.fixture
    def cyberark_devserver_seed(self) -> dict[str, Any]:
        return {"conjur": {"account": "acme", "variables": [{"id": "only/one", "value": "v"}]}}

    def test_the_overridden_seed_is_used(self, cyberark_devserver: DevServer) -> None:
        assert cyberark_devserver.info()["conjur_account"] == "acme"
        assert cyberark_devserver.app.conjur.account == "acme"
