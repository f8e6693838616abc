"""doctor against hostile input: what it echoes is cut and escaped, and the files it reads are
regular files read up to a cap (a FIFO, /dev/zero or a huge file fail the check at once)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cyberark_ops import cli
from cyberark_ops.devserver import DevServer
from tests.hostile import hostile_file

from .conftest import by_name, demo_connections, run

pytestmark = pytest.mark.timeout(120)

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m\r\x9b1m\u202e"


def _doctor(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, server: DevServer, *args: str
) -> tuple[int, str]:
    conn = demo_connections(server)["cyberark_conjur"]
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_TEST", json.dumps({"conn_type": "cyberark", **conn}))
    code = cli.main(["doctor", "--conn-id", "doctor_test", *args])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.parametrize("as_json", [False, True])
def test_a_path_with_terminal_escapes_is_printed_escaped(
    dev_server: DevServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    flags = ["--json"] if as_json else []
    code, output = _doctor(capsys, monkeypatch, dev_server, "--path", f"prod/{ESCAPES}/x", *flags)
    assert code == 1
    for char in ("\x1b", "\x07", "\x9b", "\u202e", "\r"):
        assert char not in output, f"{char!r} reached the terminal"
    if as_json:
        checks = json.loads(output)["checks"]
        assert any("\\x1b" in check["name"] for check in checks)
    else:
        assert "\\x1b" in output


def test_a_huge_path_gives_a_short_report(
    dev_server: DevServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 100 KB --path gave a 202 KB report."""
    code, output = _doctor(capsys, monkeypatch, dev_server, "--path", "p" * 100_000)
    assert code == 1
    assert len(output) < 10_000
    assert "(100000 characters)" in output


@pytest.mark.parametrize("kind", ["fifo", "zero", "sparse-1g"])
@pytest.mark.parametrize(
    ("conn_name", "field", "check"),
    [
        ("cyberark_conjur", "ca_bundle", "tls: CA bundle"),
        ("cyberark_ccp", "client_cert", "tls: client certificate"),
        ("cyberark_ccp", "client_key", "tls: client certificate"),
        ("cyberark_conjur", "api_key_file", "configuration"),
    ],
)
def test_a_file_that_is_not_a_bounded_regular_file_fails_its_check(
    make_server: Callable[..., DevServer], tmp_path: Path, kind: str, conn_name: str, field: str, check: str
) -> None:
    server = make_server()
    conn = demo_connections(server)[conn_name]
    path = hostile_file(kind, tmp_path)
    conn["extra"] = {**conn["extra"], field: str(path)}
    if field == "api_key_file":
        conn.pop("password", None)
    found = by_name(run(conn))[check]
    assert found.status == "fail"
    assert str(path) in found.detail
    assert field in found.detail
    assert any(why in found.detail for why in ("not a regular file", "larger than", "not a readable file"))
