"""Airflow connections, secrets-backend settings and variables that reach a running dev server.

Plain dictionaries and shell lines built from ``DevServer.info()`` and the seed: the product's
``cyberark-ops devserver --print-connections`` prints them, and the demo and the tests use them.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from .demo import INVENTORY_PATH, INVENTORY_TOKEN_ID

DEMO_HOST = "airflow/worker"
BACKEND_CLASS = "cyberark_ops.secrets.CyberArkSecretsBackend"


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


def _write_private(path: Path, text: str) -> None:
    """Creates or replaces ``path`` readable by its owner only, never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    path.chmod(0o600)


def devserver_backend_kwargs(info: dict[str, Any], seed: dict[str, Any]) -> dict[str, Any] | None:
    """``backend_kwargs`` for ``CyberArkSecretsBackend`` against the dev server's Conjur, as the
    seed's first host with an API key. The backend refuses an inline ``api_key``, so the key is
    written to ``conjur-api-key`` (0600) in the server's state directory and named by
    ``api_key_file``. Connections ``demo_*`` resolve to ``airflow/dev/connections/<conn_id>``."""
    conjur = seed.get("conjur") or {}
    host = next((h for h in conjur.get("hosts") or [] if h.get("api_key")), None)
    if host is None or not info.get("conjur_account"):
        return None
    key_file = Path(info["state_dir"]) / "conjur-api-key"
    _write_private(key_file, str(host["api_key"]))
    kwargs: dict[str, Any] = {
        "url": info["url"],
        "api": "conjur",
        "account": info["conjur_account"],
        "login": f"host/{host['id']}",
        "api_key_file": str(key_file),
        "env": "dev",
        "connections_path": "airflow/{env}/connections/{conn_id}",
        "connections_lookup_pattern": "^demo_",
    }
    if info.get("ca_cert"):
        kwargs["ca_bundle"] = info["ca_cert"]
    return kwargs


def backend_export_lines(kwargs: dict[str, Any]) -> list[str]:
    """The ``[secrets]`` pair for the scheduler, API server and CLI, and the ``[workers]`` pair for
    task processes (Airflow 3 reads the latter there, falling back to the former)."""
    quoted = shlex.quote(json.dumps(kwargs))
    return [
        f"export AIRFLOW__SECRETS__BACKEND={BACKEND_CLASS}",
        f"export AIRFLOW__SECRETS__BACKEND_KWARGS={quoted}",
        f"export AIRFLOW__WORKERS__SECRETS_BACKEND={BACKEND_CLASS}",
        f"export AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS={quoted}",
    ]


def example_variable_lines(info: dict[str, Any], seed: dict[str, Any]) -> list[str]:
    """The Airflow variables the ``cyberark_http_token`` example reads: the dev server's stand-in
    inventory API (it accepts the Conjur variable ``prod/api/key`` as a bearer token) and the CA
    that signed the dev server's certificate."""
    variables = (seed.get("conjur") or {}).get("variables") or []
    if not any(v.get("id") == INVENTORY_TOKEN_ID for v in variables):
        return []
    lines = [f"export AIRFLOW_VAR_INVENTORY_API_URL={shlex.quote(info['url'] + INVENTORY_PATH)}"]
    if info.get("ca_cert"):
        lines.append(f"export AIRFLOW_VAR_INVENTORY_API_CA_BUNDLE={shlex.quote(info['ca_cert'])}")
    return lines


def devserver_export_lines(info: dict[str, Any], seed: dict[str, Any]) -> list[str]:
    """Everything ``cyberark-ops devserver --print-connections`` prints after its JSON line, ready to
    paste into the shell that runs Airflow: connections, secrets backend, example variables."""
    lines = ["# Airflow connections to this dev server (dev values only):"]
    lines += export_lines(devserver_connections(info, seed))
    kwargs = devserver_backend_kwargs(info, seed)
    if kwargs is not None:
        lines.append("# the secrets backend (connections demo_*), for Airflow's servers and its workers:")
        lines += backend_export_lines(kwargs)
    variables = example_variable_lines(info, seed)
    if variables:
        lines.append("# variables of the example DAG cyberark_http_token:")
        lines += variables
    return lines
