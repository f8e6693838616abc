"""Airflow connections for a running dev server, as the demo, the tests and the pytest plugin use."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

DEMO_HOST = "airflow/worker"


def demo_conjur_connection(info: dict[str, Any], seed: dict[str, Any], key_dir: Path | None = None) -> dict[str, Any]:
    """A ``cyberark`` connection (JSON form) reaching the dev server's Conjur API as the seed's
    ``host/airflow/worker``. With ``key_dir`` the API key goes into a 0600 file named by
    ``api_key_file``, as production setups do; without it, into the password field."""
    host = next(h for h in seed["conjur"]["hosts"] if h["id"] == DEMO_HOST)
    extra: dict[str, Any] = {"api": "conjur", "account": info["conjur_account"], "ca_bundle": info["ca_cert"]}
    conn: dict[str, Any] = {"conn_type": "cyberark", "host": info["url"], "login": f"host/{DEMO_HOST}"}
    if key_dir is None:
        conn["password"] = host["api_key"]
    else:
        key_file = key_dir / "airflow-worker.api-key"
        key_file.write_text(host["api_key"])
        key_file.chmod(0o600)
        extra["api_key_file"] = str(key_file)
    conn["extra"] = extra
    return conn


def devserver_connections(info: dict[str, Any], seed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Ready-to-use ``cyberark`` connections (JSON form) for a running dev server, keyed by conn id:
    Conjur as the seed's first host with an API key, CCP as its first AppID with the dev client
    certificate, PVWA as its first user. What the seed lacks is left out. Dev values only."""
    conns: dict[str, dict[str, Any]] = {}
    base = {"conn_type": "cyberark", "host": info["url"]}
    tls = {"ca_bundle": info["ca_cert"]}
    conjur = seed.get("conjur") or {}
    host = next((h for h in conjur.get("hosts") or [] if h.get("api_key")), None)
    if host is not None:
        conns["cyberark_conjur"] = {
            **base,
            "login": f"host/{host['id']}",
            "password": host["api_key"],
            "extra": {"api": "conjur", "account": info["conjur_account"], **tls},
        }
    vault = seed.get("vault") or {}
    application = next(iter(vault.get("ccp_applications") or []), None)
    if application is not None:
        conns["cyberark_ccp"] = {
            **base,
            "extra": {
                "api": "ccp",
                "app_id": application["app_id"],
                "client_cert": info["client_cert"],
                "client_key": info["client_key"],
                **tls,
            },
        }
    user = next(iter(vault.get("pvwa_users") or []), None)
    if user is not None:
        conns["cyberark_pvwa"] = {
            **base,
            "login": user["username"],
            "password": user["password"],
            "extra": {"api": "pvwa", "auth_method": str(user.get("auth_type") or "cyberark").lower(), **tls},
        }
    return conns


def export_lines(connections: dict[str, dict[str, Any]]) -> list[str]:
    """``export AIRFLOW_CONN_<ID>='<json>'`` lines to paste into a shell."""
    return [
        f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn))}"
        for conn_id, conn in connections.items()
    ]
