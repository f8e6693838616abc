"""``cyberark-ops devserver --print-connections`` prints everything a user pastes, and it works
as pasted: the lines run in a shell, and Airflow then serves a connection from the dev server
through the secrets backend (both the ``[secrets]`` and the ``[workers]`` settings)."""

from __future__ import annotations

import json
import os
import queue
import shlex
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cyberark_ops.devserver.seed import load_seed

CLI = [sys.executable, "-m", "cyberark_ops.cli"]
END = "# end of the lines to paste"

PROBE = """
import json
from airflow.configuration import conf
from airflow.models.connection import Connection
conn = Connection.get_connection_from_secrets("demo_sqlite")
print(json.dumps({
    "conn_type": conn.conn_type,
    "workers_backend": conf.get("workers", "secrets_backend"),
    "workers_kwargs": json.loads(conf.get("workers", "secrets_backend_kwargs")),
    "kwargs": json.loads(conf.get("secrets", "backend_kwargs")),
}))
"""


def _read_until_end(process: subprocess.Popen[str], timeout: float = 30) -> list[str]:
    """Lines up to the end marker, read in a thread (select() cannot see what readline() buffered)."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            found.put(line.rstrip("\n"))
        found.put("")

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    while not lines or lines[-1] != END:
        line = found.get(timeout=timeout)
        assert line, f"the dev server exited after {lines}"
        lines.append(line)
    return lines


@pytest.fixture
def printed(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    process = subprocess.Popen(
        [*CLI, "devserver", "--print-connections", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_until_end(process)
        yield json.loads(lines[0]), lines[1:]
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_the_printed_lines_configure_connections_backend_and_workers(
    printed: tuple[dict[str, str], list[str]], tmp_path: Path
) -> None:
    info, lines = printed
    exports = [line for line in lines if line.startswith("export ")]
    names = [line.split("=", 1)[0].removeprefix("export ") for line in exports]
    assert names == [
        "AIRFLOW_CONN_CYBERARK_CONJUR",
        "AIRFLOW_CONN_CYBERARK_CCP",
        "AIRFLOW_CONN_CYBERARK_PVWA",
        "AIRFLOW__SECRETS__BACKEND",
        "AIRFLOW__SECRETS__BACKEND_KWARGS",
        "AIRFLOW__WORKERS__SECRETS_BACKEND",
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS",
        "AIRFLOW_VAR_INVENTORY_API_URL",
        "AIRFLOW_VAR_INVENTORY_API_CA_BUNDLE",
    ]
    # Pasted as printed into a shell, then Airflow (as a CLI or server process would) looks up
    # a demo_* connection: the backend fetches it from the dev server's Conjur.
    script = "\n".join(lines) + f"\nexec {shlex.quote(sys.executable)} -c {shlex.quote(PROBE)}\n"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home")}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["conn_type"] == "sqlite"
    assert seen["workers_backend"] == "cyberark_ops.secrets.CyberArkSecretsBackend"
    assert seen["workers_kwargs"] == seen["kwargs"]

    # No credential inline: the API key sits in a 0600 file in the state directory.
    kwargs = seen["kwargs"]
    key_file = Path(kwargs["api_key_file"])
    assert key_file.parent == Path(info["state_dir"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    api_key = key_file.read_text()
    assert api_key and api_key not in json.dumps(kwargs)
    assert not {"api_key", "password"} & set(kwargs)


def test_the_printed_inventory_variables_reach_an_api_taking_the_vaulted_token(
    printed: tuple[dict[str, str], list[str]],
) -> None:
    info, lines = printed
    values = dict(line.removeprefix("export ").split("=", 1) for line in lines if "AIRFLOW_VAR_" in line)
    url, ca_bundle = values["AIRFLOW_VAR_INVENTORY_API_URL"], values["AIRFLOW_VAR_INVENTORY_API_CA_BUNDLE"]
    assert url == info["url"] + "/demo/inventory" and ca_bundle == info["ca_cert"]
    token = next(v["values"][-1] for v in load_seed(None)["conjur"]["variables"] if v["id"] == "prod/api/key")
    answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=ca_bundle, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"items": 3, "echo": f"Bearer {token}"}
    refused = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, verify=ca_bundle, timeout=10)
    assert refused.status_code == 401
