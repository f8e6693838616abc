"""With the CyberArk secrets backend configured, importing cyberark_ops before Airflow still works.

Airflow's start-up imports the configured ``[secrets] backend``; a cyberark_ops module that started
Airflow used to be half-initialized when the backend came back for it. Each probe runs in a fresh
interpreter, as a user's ``python -c`` or the ``cyberark-ops`` CLI would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import devserver_connections
from cyberark_ops.devserver.seed import load_seed

pytestmark = pytest.mark.slow  # each test starts Airflow in a subprocess

BACKEND = "cyberark_ops.secrets.CyberArkSecretsBackend"
CLI = str(Path(sys.executable).with_name("cyberark-ops"))


def _env(tmp_path: Path, kwargs: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__SECRETS__BACKEND": BACKEND,
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
    }


def _kwargs(server: DevServer, tmp_path: Path) -> dict[str, str]:
    key_file = tmp_path / "api-key"
    info = server.info()
    conjur = devserver_connections(info, load_seed(None))["cyberark_conjur"]
    key_file.write_text(conjur["password"])
    key_file.chmod(0o600)
    return {
        "url": info["url"],
        "account": info["conjur_account"],
        "login": conjur["login"],
        "api_key_file": str(key_file),
        "ca_bundle": info["ca_cert"],
        "connections_path": "airflow/{env}/connections/{conn_id}",
        "env": "dev",
    }


@pytest.mark.parametrize(
    "code",
    [
        "from cyberark_ops import CyberArkHook; print(CyberArkHook.conn_type)",
        "import cyberark_ops.secrets as s; print(s.CyberArkSecretsBackend.__name__)",
        "import cyberark_ops._compat, cyberark_ops.fetch; print('ok')",
        "from cyberark_ops import VaultedSqlOperator, with_cyberark_secret; print('ok')",
        # The backend Airflow built is the class the module exports, not a second copy.
        "import cyberark_ops.secrets as s, airflow.configuration as c; "
        "print(type(c.secrets_backend_list[0]) is s.CyberArkSecretsBackend)",
    ],
)
def test_importing_cyberark_ops_first_starts_airflow_with_the_backend(
    code: str, dev_server: DevServer, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path, _kwargs(dev_server, tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "partially initialized" not in result.stderr
    assert result.stdout.split()[-1] in {"cyberark", "CyberArkSecretsBackend", "ok", "True"}, result.stdout


def test_doctor_reports_on_the_configured_backend(dev_server: DevServer, tmp_path: Path) -> None:
    env = _env(tmp_path, _kwargs(dev_server, tmp_path))
    result = subprocess.run(
        [CLI, "doctor", "--backend-kwargs", env["AIRFLOW__SECRETS__BACKEND_KWARGS"], "--path", "prod/db/password"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "authentication" in result.stdout and "0 fail" in result.stdout, result.stdout
