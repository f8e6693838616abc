"""``cyberark-ops devserver --print-connections``: the lines a new user pastes work as they are."""

from __future__ import annotations

import select
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cyberark_ops.client import PROCESS_TOKEN_CACHE
from cyberark_ops.hooks.cyberark import CyberArkHook


def _read_lines(process: subprocess.Popen[str], count: int, timeout: float = 30) -> list[str]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the dev server printed nothing"
    # All lines come at start-up; readline (buffered) after the first select, not select again.
    return [process.stdout.readline().rstrip("\n") for _ in range(count)]


def test_the_printed_connections_reach_all_three_apis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cyberark_ops.cli", "devserver", "--state-dir", str(tmp_path), "--print-connections"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_lines(process, 5)
        assert lines[1].startswith("# Airflow connections to this dev server")
        exports = lines[2:]
        names = []
        for line in exports:
            # What a shell does with the line: export NAME=<one shell word>.
            words = shlex.split(line)
            assert words[0] == "export"
            name, _, value = words[1].partition("=")
            names.append(name)
            monkeypatch.setenv(name, value)
        assert names == ["AIRFLOW_CONN_CYBERARK_CONJUR", "AIRFLOW_CONN_CYBERARK_CCP", "AIRFLOW_CONN_CYBERARK_PVWA"]
        PROCESS_TOKEN_CACHE.clear()
        assert CyberArkHook("cyberark_conjur").get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
        assert CyberArkHook("cyberark_ccp").get_credential("Safe=DB-Prod;Object=pg-prod").username == "etl_user"
        assert CyberArkHook("cyberark_pvwa").get_credential("DB-Prod/pg-prod").secret == "Pg-Pr0d-Dev!"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
