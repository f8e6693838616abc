"""``cyberark-ops doctor`` as a user runs it: exit codes, JSON, and no secret value in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops import cli
from cyberark_ops.devserver import DevServer
from cyberark_ops.scrub import leak_forms

from .conftest import demo_connections

CANARY_KEY = "Canary-ApiKey-7f3e9c1d-doctor-0123456789"
CANARY_VALUE = "Canary-Value-b41d2e8a-doctor-#&?%"
CANARY_PASSWORD = "Canary-Pvwa-Pass-5c2a9e"
CANARY_SEED = {
    "conjur": {
        "account": "canary",
        "hosts": [{"id": "etl/loader", "api_key": CANARY_KEY}],
        "variables": [{"id": "etl/db/password", "value": CANARY_VALUE}],
        "permits": [{"role": "host:etl/loader", "privileges": ["read", "execute"], "resources": ["etl/db/*"]}],
    },
    "vault": {
        "safes": [{"name": "DB-Prod"}],
        "accounts": [
            {"name": "pg-prod", "safe": "DB-Prod", "userName": "etl_user", "secret": CANARY_VALUE},
        ],
        "pvwa_users": [
            {
                "username": "svc_airflow",
                "password": CANARY_PASSWORD,
                "auth_type": "CyberArk",
                "permissions": {"DB-Prod": ["list", "retrieve"]},
            }
        ],
    },
}
CANARIES = (CANARY_KEY, CANARY_VALUE, CANARY_PASSWORD)


def assert_no_canary(*outputs: str) -> None:
    for canary in CANARIES:
        for form_name, form in leak_forms(canary).items():
            for output in outputs:
                assert form not in output, f"the canary appears ({form_name} form)"


def canary_conjur(server: DevServer, *, api_key: str = CANARY_KEY) -> dict[str, Any]:
    info = server.info()
    return {
        "conn_type": "cyberark",
        "host": info["url"],
        "login": "host/etl/loader",
        "password": api_key,
        "extra": {"api": "conjur", "account": "canary", "ca_bundle": info["ca_cert"]},
    }


def canary_pvwa(server: DevServer, *, password: str = CANARY_PASSWORD) -> dict[str, Any]:
    info = server.info()
    return {
        "conn_type": "cyberark",
        "host": info["url"],
        "login": "svc_airflow",
        "password": password,
        "extra": {"api": "pvwa", "ca_bundle": info["ca_cert"]},
    }


def doctor_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any] | None, *args: str
) -> tuple[int, str, str]:
    if conn is not None:
        monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_TEST", json.dumps(conn))
    code = cli.main(["doctor", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def canary_server(make_server: Callable[..., DevServer]) -> DevServer:
    return make_server(CANARY_SEED)


@pytest.mark.parametrize("as_json", [False, True])
def test_conjur_canary_never_printed_on_success_or_failure(
    canary_server: DevServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    as_json: bool,
) -> None:
    flags = ["--json"] if as_json else []
    args = ("--conn-id", "doctor_test", "--path", "etl/db/password", *flags)
    ok = doctor_main(capsys, monkeypatch, canary_conjur(canary_server), *args)
    assert ok[0] == 0, ok[1]
    # A wrong key that is itself a canary: the failure must not echo it.
    wrong_key = CANARY_KEY[::-1]
    failed = doctor_main(
        capsys,
        monkeypatch,
        canary_conjur(canary_server, api_key=wrong_key),
        "--conn-id",
        "doctor_test",
        "--path",
        "etl/db/password",
        *flags,
    )
    assert failed[0] == 1
    assert_no_canary(*ok[1:], *failed[1:])
    for form in leak_forms(wrong_key).values():
        assert form not in failed[1] + failed[2]
    if as_json:
        report = json.loads(failed[1])
        assert report["ok"] is False
        auth = next(c for c in report["checks"] if c["name"] == "authentication")
        assert auth["status"] == "fail" and "401" in auth["detail"]
        assert json.loads(ok[1])["summary"]["fail"] == 0


def test_pvwa_canary_never_printed(
    canary_server: DevServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs: list[str] = []
    for conn in (canary_pvwa(canary_server), canary_pvwa(canary_server, password=CANARY_PASSWORD + "x")):
        for flags in ([], ["--json"]):
            code, out, err = doctor_main(
                capsys, monkeypatch, conn, "--conn-id", "doctor_test", "--path", "DB-Prod/pg-prod", *flags
            )
            outputs += [out, err]
            assert code == (0 if conn["password"] == CANARY_PASSWORD else 1)
    assert_no_canary(*outputs)
    for form in leak_forms(CANARY_PASSWORD + "x").values():
        assert all(form not in output for output in outputs)


def test_text_output_is_a_table_with_remedies(
    dev_server: DevServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    code, out, _ = doctor_main(
        capsys, monkeypatch, {"conn_type": "cyberark", **conn}, "--conn-id", "doctor_test", "--path", "nope/missing"
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "cyberark-ops doctor: connection 'doctor_test' (conjur)"
    header = lines[2]
    assert header.split() == ["STATUS", "CHECK", "DETAIL"]
    column = header.index("DETAIL")
    rows = [line for line in lines[3:] if line[:4] in ("PASS", "WARN", "FAIL", "skip")]
    assert all(line[column - 2 : column] == "  " for line in rows)
    failure = next(index for index, line in enumerate(lines) if line.startswith("FAIL"))
    assert "nope/missing" in lines[failure]
    assert lines[failure + 1].strip().startswith("-> ")
    assert "fail" in lines[-1]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    code, _, err = doctor_main(capsys, monkeypatch, None, "--conn-id", "no_such_conn")
    assert code == 2 and "'no_such_conn' is not defined" in err
    code, _, err = doctor_main(capsys, monkeypatch, None, "--backend-kwargs", "{not json")
    assert code == 2 and "not valid JSON" in err
    code, _, err = doctor_main(capsys, monkeypatch, None, "--backend-kwargs", "[1]")
    assert code == 2 and "JSON object" in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["doctor"])
    assert exit_info.value.code == 2


def test_a_connection_of_another_type_fails_the_configuration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = doctor_main(capsys, monkeypatch, {"conn_type": "postgres", "host": "db"}, "--conn-id", "doctor_test")
    assert code == 1
    assert "has type 'postgres', not 'cyberark'" in out


def test_invalid_backend_kwargs_fail_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    kwargs = {"url": "https://conjur.example.com", "api": "conjur", "api_key": CANARY_KEY, "account": "x"}
    code = cli.main(["doctor", "--backend-kwargs", json.dumps(kwargs), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    config = json.loads(out)["checks"][0]
    assert config["name"] == "configuration" and config["status"] == "fail"
    assert "api_key_file" in config["detail"]
    assert_no_canary(out, err)


@pytest.mark.slow
def test_the_installed_command_runs_as_a_subprocess(canary_server: DevServer, tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "cyberark-ops"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW_CONN_CYBERARK_DOCTOR": json.dumps(canary_conjur(canary_server)),
    }
    ok = subprocess.run(
        [str(command), "doctor", "--conn-id", "cyberark_doctor", "--path", "etl/db/password"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS    read etl/db/password" in ok.stdout
    assert "least privilege" in ok.stdout
    failing = subprocess.run(
        [str(command), "doctor", "--conn-id", "cyberark_doctor", "--path", "etl/db/missing", "--json"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )
    assert failing.returncode == 1
    report = json.loads(failing.stdout)
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["read etl/db/missing"]
    assert_no_canary(ok.stdout, ok.stderr, failing.stdout, failing.stderr)


@pytest.mark.slow
def test_json_on_stdout_stays_parseable_when_airflow_logs(dev_server: DevServer, tmp_path: Path) -> None:
    """Airflow's secrets masker warns about short extras (the demo account ``demo``) on stdout."""
    conn = {"conn_type": "cyberark", **demo_connections(dev_server)["cyberark_conjur"]}
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW_CONN_CYBERARK_DEMO": json.dumps(conn)}
    result = subprocess.run(
        [sys.executable, "-m", "cyberark_ops.cli", "doctor", "--conn-id", "cyberark_demo", "--json"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["api"] == "conjur" and report["ok"] is True
    assert_no_canary(result.stdout, result.stderr)
    for form in leak_forms(str(conn["password"])).values():
        assert form not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_ccp_connection_gives_no_short_secret_warning(dev_server: DevServer, tmp_path: Path) -> None:
    """``api="ccp"`` and the demo account ``demo`` are no secrets: Airflow's "too short to mask"
    warning, as if one had gone unmasked, must not appear (issue 29)."""
    conns = demo_connections(dev_server)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW_CONN_CYBERARK_CCP": json.dumps(conns["cyberark_ccp"]),
        "AIRFLOW_CONN_CYBERARK_CONJUR": json.dumps(conns["cyberark_conjur"]),
    }
    for conn_id in ("cyberark_ccp", "cyberark_conjur"):
        result = subprocess.run(
            [sys.executable, "-m", "cyberark_ops.cli", "doctor", "--conn-id", conn_id],
            capture_output=True,
            check=False,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "too short" not in result.stdout + result.stderr
