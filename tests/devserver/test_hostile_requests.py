"""The dev server against hostile requests and seeds, over raw sockets (as an attacker sends them).

A body the server cannot frame exactly as every proxy would (a negative chunk size, two different
lengths, a length with chunking) is a 400 and a closed connection: the bytes left over must never
run as a second, smuggled request. Bad seeds end in the documented exit 2 with a message. After
each case the server still answers.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cyberark_ops import cli
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.http import MAX_BODY_BYTES
from tests.conftest import DevClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server() -> Iterator[DevServer]:
    running = DevServer().start()
    yield running
    running.stop()


def _connect(server: DevServer) -> ssl.SSLSocket:
    info = server.info()
    url = urlsplit(info["url"])
    context = ssl.create_default_context(cafile=info["ca_cert"])
    raw = socket.create_connection((url.hostname, url.port), timeout=10)
    return context.wrap_socket(raw, server_hostname=url.hostname)


def _responses(sock: ssl.SSLSocket) -> tuple[list[str], bool]:
    """Status lines of every response read until the server closes (or goes quiet): and whether it
    closed the connection."""
    data = b""
    closed = False
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except TimeoutError:
        pass
    except (ConnectionResetError, ssl.SSLError):
        closed = True
    statuses = [line.decode("latin-1") for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    return statuses, closed


def _assert_alive(server: DevServer) -> None:
    client = DevClient(server)
    try:
        health = client.get("/_dev/health", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
    finally:
        client.close()


SMUGGLED = b"GET /_dev/health HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5\r\nContent-Length: " + str(5 + len(SMUGGLED)).encode() + b"\r\n",
        b"Content-Length: " + str(5 + len(SMUGGLED)).encode() + b"\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: " + str(10 + len(SMUGGLED)).encode() + b"\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Content-Length: +5\r\n",
    ],
    ids=["5-then-longer", "longer-then-5", "te-then-cl", "cl-then-te", "te-gzip", "plus-sign"],
)
def test_an_ambiguous_body_frame_is_a_400_and_closes_the_connection(server: DevServer, head: bytes) -> None:
    sock = _connect(server)
    body = b"0\r\n\r\n" if b"chunked" in head else b"hello"
    sock.sendall(b"POST /_dev/health HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body + SMUGGLED)
    statuses, closed = _responses(sock)
    sock.close()
    assert statuses == ["HTTP/1.1 400 Bad Request"], "one answer: the smuggled request never ran"
    assert closed
    _assert_alive(server)


def test_a_negative_chunk_size_cannot_bypass_the_body_limit(server: DevServer) -> None:
    """int("-1", 16) is -1, and read(-1) read everything the client sent: 300 MiB grew the server by 300 MiB."""
    sock = _connect(server)
    sock.sendall(b"POST /authn/demo/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n")
    sent = 0
    try:
        while sent <= 2 * MAX_BODY_BYTES:
            sock.sendall(b"x" * 65536)
            sent += 65536
    except OSError:
        pass  # the server answered and closed before everything was sent: what it should do
    statuses, closed = _responses(sock)
    sock.close()
    assert statuses == ["HTTP/1.1 400 Bad Request"]
    assert closed
    _assert_alive(server)


def test_a_chunk_without_its_line_end_is_a_400(server: DevServer) -> None:
    sock = _connect(server)
    sock.sendall(
        b"POST /_dev/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n"
    )
    statuses, closed = _responses(sock)
    sock.close()
    assert statuses == ["HTTP/1.1 400 Bad Request"]
    assert closed
    _assert_alive(server)


def test_rotating_to_an_empty_value_is_a_400(server: DevServer) -> None:
    client = DevClient(server)
    try:
        answer = client.admin("POST", "/rotate", json={"target": "conjur:prod/db/password", "value": ""})
        assert answer.status_code == 400
        assert "value" in answer.text
        assert server.app.rotate("conjur:prod/db/password")  # the variable keeps a value
    finally:
        client.close()
    _assert_alive(server)


# -- seeds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.yaml", b"conjur: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        ("deep.json", b'{"conjur": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("shallow-but-deep.json", b'{"conjur": ' + b"[" * 500 + b"]" * 500 + b"}"),
        ("latin1.yaml", "conjur:\n  account: d\u00e9mo\n".encode("latin-1")),
    ],
)
@pytest.mark.slow
def test_a_seed_the_server_cannot_load_is_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes
) -> None:
    seed = tmp_path / name
    seed.write_bytes(content)
    code = cli.main(["devserver", "--seed", str(seed), "--port", "0", "--state-dir", str(tmp_path / "state")])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"cyberark-ops devserver: {seed}")
    assert "Traceback" not in err and len(err) < 500
    assert out == ""


def test_a_seed_that_is_a_fifo_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = tmp_path / "seed.yaml"
    os.mkfifo(seed)
    code = cli.main(["devserver", "--seed", str(seed), "--port", "0", "--state-dir", str(tmp_path / "state")])
    assert code == 2
    assert "not a regular file" in capsys.readouterr().err


def test_the_json_seed_limit_leaves_real_seeds_alone(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"conjur": {"account": "demo", "variables": [{"id": "a/b", "value": "v"}]}}))
    with DevServer(seed) as running:
        _assert_alive(running)
