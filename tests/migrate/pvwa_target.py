"""A dev server's Vault for migrations into PVWA / Privilege Cloud: a migration identity that may
add accounts and update their values, and the Airflow runtime identity that may only list and
retrieve (both APIs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cyberark_ops.client import PVWALogonAuth
from cyberark_ops.client.auth.privilege_cloud import PlatformTokenAuth
from cyberark_ops.client.config import PVWAConfig
from cyberark_ops.client.pvwa import PVWAClient
from cyberark_ops.devserver import DevServer
from tests.migrate.conftest import FAST

SAFE = "Airflow-Prod"
VARS_SAFE = "Airflow-Vars"
READER, READER_PASSWORD = "airflow-reader", "Reader-Pass-1"
MIGRATOR, MIGRATOR_PASSWORD = "migrator", "Migrator-Pass-1"
CLOUD_READER, CLOUD_READER_SECRET = "airflow-svc@cyberark.cloud.1234", "Cloud-Reader-Secret1"
CLOUD_MIGRATOR, CLOUD_MIGRATOR_SECRET = "migrate-svc@cyberark.cloud.1234", "Cloud-Migrator-Secret1"
READ = ["list", "retrieve"]
ADD = ["list", "retrieve", "add_accounts"]
UPDATE = [*ADD, "update_password"]


def seed(*, migrator_may_add_variables: bool = True, migrator_may_update: bool = True) -> dict[str, Any]:
    write = UPDATE if migrator_may_update else ADD
    migrator = {SAFE: write, VARS_SAFE: write if migrator_may_add_variables else READ}
    readers = {SAFE: READ, VARS_SAFE: READ}
    return {
        "vault": {
            "safes": [SAFE, VARS_SAFE],
            "accounts": [],
            "pvwa_users": [
                {"username": MIGRATOR, "password": MIGRATOR_PASSWORD, "permissions": migrator},
                {"username": READER, "password": READER_PASSWORD, "permissions": readers},
            ],
            "platform_clients": [
                {"client_id": CLOUD_MIGRATOR, "client_secret": CLOUD_MIGRATOR_SECRET, "permissions": migrator},
                {"client_id": CLOUD_READER, "client_secret": CLOUD_READER_SECRET, "permissions": readers},
            ],
        }
    }


class PvwaTarget:
    """The dev server, the files a deployment holds, and the backend kwargs Airflow will run with."""

    def __init__(self, server: DevServer, base: Path, api: str = "pvwa") -> None:
        self.server = server
        self.api = api
        self.info = server.info()
        base.mkdir(parents=True, exist_ok=True)
        self.ca = base / "ca.pem"
        shutil.copy(self.info["ca_cert"], self.ca)
        self.reader_secret = base / "reader.secret"
        self.reader_secret.write_text(READER_PASSWORD if api == "pvwa" else CLOUD_READER_SECRET)
        self.reader_secret.chmod(0o600)

    def backend_kwargs(self, **overrides: Any) -> dict[str, Any]:
        identity: dict[str, Any] = (
            {"api": "pvwa", "login": READER}
            if self.api == "pvwa"
            else {"api": "privilege-cloud", "login": CLOUD_READER, "identity_url": self.info["url"]}
        )
        return {
            "url": self.info["url"],
            "ca_bundle": str(self.ca),
            "password_file": str(self.reader_secret),
            "env": "Prod",
            "connections_path": "pvwa:Airflow-{env}/{conn_id}",
            "variables_path": "Airflow-Vars/var-{variable}",
            **identity,
            **FAST,
            **overrides,
        }

    def config(self) -> PVWAConfig:
        auth = (
            PVWALogonAuth(MIGRATOR, MIGRATOR_PASSWORD)
            if self.api == "pvwa"
            else PlatformTokenAuth(self.info["url"], CLOUD_MIGRATOR, CLOUD_MIGRATOR_SECRET)
        )
        return PVWAConfig(base_url=self.info["url"], ca_bundle=str(self.ca), auth=auth, **FAST)

    def migrator(self) -> PVWAClient:
        return PVWAClient(self.config())

    def migrator_connection(self) -> dict[str, Any]:
        """The migration identity as an Airflow ``cyberark`` connection (JSON form)."""
        extra: dict[str, Any] = {"api": self.api, "ca_bundle": str(self.ca), **FAST}
        if self.api == "pvwa":
            login, password = MIGRATOR, MIGRATOR_PASSWORD
        else:
            login, password = CLOUD_MIGRATOR, CLOUD_MIGRATOR_SECRET
            extra["identity_url"] = self.info["url"]
        return {"conn_type": "cyberark", "host": self.info["url"], "login": login, "password": password, "extra": extra}

    def stored(self, safe: str, name: str) -> str | None:
        """The account's password, read by the test as the migrator (None: no such account)."""
        from cyberark_ops.client import NotFound

        with self.migrator() as client:
            try:
                return client.get_credential(safe, name).secret
            except NotFound:
                return None

    def updates(self) -> list[dict[str, Any]]:
        return [e for e in self.server.app.audit.events(action="pvwa.update_password") if e["status"] == 200]

    def adds(self) -> list[dict[str, Any]]:
        return [e for e in self.server.app.audit.events(action="pvwa.add_account") if e["status"] == 201]
