"""Airflow connections pointing at a dev server, given to the hook through ``AIRFLOW_CONN_*``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from tests.client.conftest import (
    HOST_API_KEY,
    HOST_LOGIN,
    PLATFORM_CLIENT_ID,
    PLATFORM_CLIENT_SECRET,
    PVWA_PASSWORD,
    PVWA_USER,
)

FAST_EXTRAS = {"connect_timeout": 2, "read_timeout": 5, "max_retries": 2, "deadline": 15}


class Connections:
    def __init__(self, server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.info = server.info()
        self._monkeypatch = monkeypatch

    def add(self, conn_id: str, *, login: str | None, password: str | None, **extra: Any) -> str:
        conn = {
            "conn_type": "cyberark",
            "host": self.info["url"],
            "login": login,
            "password": password,
            "extra": {"ca_bundle": self.info["ca_cert"], **FAST_EXTRAS, **extra},
        }
        self._monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    def conjur(self, conn_id: str = "cyberark_conjur", **extra: Any) -> str:
        params: dict[str, Any] = {"login": HOST_LOGIN, "password": HOST_API_KEY}
        params.update({k: extra.pop(k) for k in ("login", "password") if k in extra})
        return self.add(conn_id, api="conjur", account=self.info["conjur_account"], **params, **extra)

    def ccp(self, conn_id: str = "cyberark_ccp", **extra: Any) -> str:
        settings: dict[str, Any] = {
            "api": "ccp",
            "app_id": "AirflowProd",
            "client_cert": self.info["client_cert"],
            "client_key": self.info["client_key"],
            **extra,
        }
        return self.add(conn_id, login=None, password=None, **settings)

    def pvwa(self, conn_id: str = "cyberark_pvwa", **extra: Any) -> str:
        return self.add(conn_id, login=PVWA_USER, password=PVWA_PASSWORD, api="pvwa", **extra)

    def privilege_cloud(self, conn_id: str = "cyberark_pcloud") -> str:
        return self.add(
            conn_id,
            login=PLATFORM_CLIENT_ID,
            password=PLATFORM_CLIENT_SECRET,
            api="privilege-cloud",
            identity_url=self.info["url"],
        )

    def calls(self, api: str | None = None) -> list[dict[str, Any]]:
        events = [e for e in self.server.app.audit.events() if not e["action"].startswith("dev.")]
        return [e for e in events if api is None or e["api"] == api]


@pytest.fixture
def conns(make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    yield Connections(make_server(), monkeypatch)
