"""A dev server with a migration identity (an admin user) and the Airflow runtime host, which can
read nothing until the migration's policy adds it to the Airflow group."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.client import ConjurApiKeyAuth, ConjurConfig
from cyberark_ops.client.conjur import ConjurClient
from cyberark_ops.devserver import DevServer

MIGRATOR = "migrator"
MIGRATOR_KEY = "migrator-api-key-0123456789abcdef"
WORKER = "host/airflow/worker"
WORKER_KEY = "worker-api-key-0123456789abcdef"
SEED: dict[str, Any] = {
    "conjur": {
        "account": "myorg",
        "users": [{"id": MIGRATOR, "api_key": MIGRATOR_KEY, "admin": True}],
        "hosts": [{"id": "airflow/worker", "api_key": WORKER_KEY}],
    }
}
FAST: dict[str, Any] = {
    "connect_timeout": 2,
    "read_timeout": 5,
    "max_retries": 1,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "deadline": 15,
}


class Target:
    """The dev server, the files a deployment would hold (CA copy, the worker's key file) and the
    backend kwargs Airflow will run with."""

    def __init__(self, server: DevServer, base: Path) -> None:
        self.server = server
        self.info = server.info()
        base.mkdir(parents=True, exist_ok=True)
        # Copies: a stopped server deletes its state directory, and an outage must look like one.
        self.ca = base / "ca.pem"
        shutil.copy(self.info["ca_cert"], self.ca)
        self.worker_key = base / "worker.key"
        self.worker_key.write_text(WORKER_KEY)
        self.worker_key.chmod(0o600)

    def backend_kwargs(self, **overrides: Any) -> dict[str, Any]:
        return {
            "url": self.info["url"],
            "ca_bundle": str(self.ca),
            "api": "conjur",
            "account": "myorg",
            "login": WORKER,
            "api_key_file": str(self.worker_key),
            "env": "prod",
            "connections_path": "airflow/{env}/connections/{conn_id}",
            "variables_path": "airflow/{env}/variables/{variable}",
            **FAST,
            **overrides,
        }

    def migrator(self) -> ConjurClient:
        return ConjurClient(
            ConjurConfig(
                base_url=self.info["url"],
                ca_bundle=str(self.ca),
                account="myorg",
                auth=ConjurApiKeyAuth(MIGRATOR, MIGRATOR_KEY),
                **FAST,
            )
        )

    def migrator_connection(self) -> dict[str, Any]:
        """The migration identity as an Airflow ``cyberark`` connection (JSON form)."""
        return {
            "conn_type": "cyberark",
            "host": self.info["url"],
            "login": MIGRATOR,
            "password": MIGRATOR_KEY,
            "extra": {"api": "conjur", "account": "myorg", "ca_bundle": str(self.ca), **FAST},
        }

    def stored(self, variable_id: str) -> bytes | None:
        """What Conjur holds, read by the test as the migrator (None: no value)."""
        from cyberark_ops.client import NotFound

        with self.migrator() as client:
            try:
                return client.get_secret_bytes(variable_id)
            except NotFound:
                return None


@pytest.fixture
def target(make_server: Callable[..., DevServer], tmp_path: Path) -> Iterator[Target]:
    yield Target(make_server(SEED), tmp_path / "deployment")
