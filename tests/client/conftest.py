"""Fixtures for the client layer: demo identities, fast retry settings, audit helpers.

Every test talks to a real dev server over HTTPS; only the server's own knobs (faults, latency,
rate limit, clock, token revocation) are used to provoke failures.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cyberark_ops.client import (
    CCPConfig,
    ConjurApiKeyAuth,
    ConjurConfig,
    PVWAConfig,
    PVWALogonAuth,
    TokenCache,
)
from cyberark_ops.devserver import DevServer

HOST_LOGIN = "host/airflow/worker"
HOST_API_KEY = "c3m1acy12jr30a9xs415hhfcyjceajy2zrv74ksr54cn3eaem87vtk6"
ADMIN_LOGIN = "admin"
ADMIN_API_KEY = "y85pgy8nf45w97ch4dg5c5xe0yxne48dk88ec5wcaw4xsr2zefcg4jg"
PVWA_USER = "svc_airflow"
PVWA_PASSWORD = "Airflow-Dev-Pass1"
LDAP_USER = "ldap_user"
LDAP_PASSWORD = "Ldap-Dev-Pass1"
PLATFORM_CLIENT_ID = "airflow-svc@cyberark.cloud.1234"
PLATFORM_CLIENT_SECRET = "Pcloud-Dev-Secret1"

# Audit log endpoint names of the dev server that differ from the client's action names.
CONJUR_BATCH = "conjur.batch"

# Short backoff so retry tests stay fast; a deadline that still bounds a stuck test.
FAST: dict[str, Any] = {
    "connect_timeout": 2.0,
    "read_timeout": 5.0,
    "max_retries": 3,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "deadline": 15.0,
}


class Vault:
    """One running dev server plus the helpers tests need around it."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.info = server.info()
        self.url: str = self.info["url"]
        self.ca: str = self.info["ca_cert"]
        self.account: str = self.info["conjur_account"]

    # -- configs ---------------------------------------------------------------------------------

    def conjur_config(self, **overrides: Any) -> ConjurConfig:
        settings: dict[str, Any] = {
            "base_url": self.url,
            "ca_bundle": self.ca,
            "account": self.account,
            "auth": ConjurApiKeyAuth(HOST_LOGIN, HOST_API_KEY),
            **FAST,
        }
        settings.update(overrides)
        return ConjurConfig(**settings)

    def ccp_config(self, *, cert: bool = True, **overrides: Any) -> CCPConfig:
        settings: dict[str, Any] = {
            "base_url": self.url,
            "ca_bundle": self.ca,
            "app_id": "AirflowProd",
            **FAST,
        }
        settings["connection_timeout"] = 2
        if cert:
            settings["client_cert"] = self.info["client_cert"]
            settings["client_key"] = self.info["client_key"]
        settings.update(overrides)
        return CCPConfig(**settings)

    def pvwa_config(self, **overrides: Any) -> PVWAConfig:
        settings: dict[str, Any] = {
            "base_url": self.url,
            "ca_bundle": self.ca,
            "auth": PVWALogonAuth(PVWA_USER, PVWA_PASSWORD),
            **FAST,
        }
        settings.update(overrides)
        return PVWAConfig(**settings)

    # -- server knobs ----------------------------------------------------------------------------

    def fault(self, endpoint: str, **spec: Any) -> None:
        from cyberark_ops.devserver.knobs import Fault

        self.server.app.knobs.add_fault(Fault.from_dict({"endpoint": endpoint, **spec}, "test"))

    def latency(self, endpoint: str, seconds: float) -> None:
        self.server.app.knobs.set_latency(endpoint, seconds)

    def rate_limit(self, per_second: float | None, burst: float | None = None) -> None:
        self.server.app.knobs.set_rate_limit(per_second, burst)

    def advance(self, seconds: float) -> None:
        self.server.app.clock.advance(seconds)

    def revoke_tokens(self) -> None:
        self.server.app.revoke_tokens()

    # -- audit -----------------------------------------------------------------------------------

    def mark(self) -> int:
        return int(self.server.app.audit.last_seq)

    def events(self, since: int = 0, **filters: str) -> list[dict[str, Any]]:
        return [e for e in self.server.app.audit.events(since, **filters) if not str(e["action"]).startswith("dev.")]

    def actions(self, since: int = 0) -> list[str]:
        return [str(e["action"]) for e in self.events(since)]

    def count(self, action: str, since: int = 0) -> int:
        return len(self.events(since, action=action))


@pytest.fixture(scope="session")
def _stopper() -> Iterator[ThreadPoolExecutor]:
    """Stops servers in the background: ``DevServer.stop`` waits up to 0.5 s for the accept loop's
    poll interval, which would otherwise dominate this suite's run time."""
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="devserver-stop")
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def make_vault(_stopper: ThreadPoolExecutor) -> Iterator[Callable[..., Vault]]:
    started: list[DevServer] = []

    def start(seed: Any = None, **kwargs: Any) -> Vault:
        server = DevServer(seed, **kwargs).start()
        started.append(server)
        return Vault(server)

    yield start
    for server in started:
        _stopper.submit(server.stop)


@pytest.fixture
def vault(make_vault: Callable[..., Vault]) -> Vault:
    """The dev server with the built-in demo seed."""
    return make_vault()


@pytest.fixture
def token_cache() -> TokenCache:
    """A private cache, so token counts in one test never depend on another."""
    return TokenCache()


class Events:
    """Collects ``on_event`` callbacks."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, tags: dict[str, Any]) -> None:
        self.items.append((name, dict(tags)))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [tags for event, tags in self.items if event == name]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port
