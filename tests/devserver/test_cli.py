"""``cyberark-ops devserver`` as a user runs it: a real subprocess, its JSON start line, signals."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

CLI = [sys.executable, "-m", "cyberark_ops.cli"]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "devserver", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _first_line(process: subprocess.Popen[str], timeout: float = 30) -> dict[str, str]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the dev server printed no start line"
    line = process.stdout.readline()
    return dict(json.loads(line))


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    process = _start("--port", "0", "--state-dir", str(tmp_path / "state"))
    try:
        yield process, _first_line(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_start_line_and_https(running: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    _, info = running
    assert {"url", "ca_cert", "client_cert", "client_key", "conjur_account", "admin_token"} <= set(info)
    assert info["url"].startswith("https://127.0.0.1:")
    assert all(Path(info[k]).is_file() for k in ("ca_cert", "client_cert", "client_key"))
    session = requests.Session()
    session.trust_env = False
    response = session.get(info["url"] + "/_dev/health", verify=info["ca_cert"], timeout=10)
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signals(tmp_path: Path, sig: signal.Signals) -> None:
    process = _start("--state-dir", str(tmp_path))
    info = _first_line(process)
    process.send_signal(sig)
    assert process.wait(timeout=20) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(info["url"] + "/_dev/health", verify=info["ca_cert"], timeout=2)


def test_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "devserver", "--host", "0.0.0.0", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr


def test_bad_seed_file_names_the_file(tmp_path: Path) -> None:
    seed = tmp_path / "broken.yaml"
    seed.write_text("conjur: [\n")
    result = subprocess.run(
        [*CLI, "devserver", "--seed", str(seed), "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr


def test_no_tls_and_fixed_admin_token(tmp_path: Path) -> None:
    env = {**os.environ, "CYBERARK_DEVSERVER_ADMIN_TOKEN": "fixed-admin-token-for-test"}
    process = subprocess.Popen(
        [*CLI, "devserver", "--no-tls", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = _first_line(process)
        assert info["url"].startswith("http://")
        assert info["admin_token"] == "fixed-admin-token-for-test"
        knobs = requests.get(
            info["url"] + "/_dev/knobs",
            headers={"Authorization": "Bearer fixed-admin-token-for-test"},
            timeout=5,
        )
        assert knobs.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
