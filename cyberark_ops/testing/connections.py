"""Airflow connections for a running dev server, as the demo, the tests and the pytest plugin use."""

from __future__ import annotations

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
