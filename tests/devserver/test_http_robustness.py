"""The HTTP server under bad and heavy traffic: unknown paths and methods, oversized or malformed
bodies, garbage on the socket, two hundred concurrent clients."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

import pytest
import requests

from cyberark_ops.devserver import DevServer
from tests.conftest import DevClient

pytestmark = pytest.mark.waits  # the server's own read timeouts on half-sent requests

# The Conjur status page is the cheapest unauthenticated endpoint to aim knobs at.
STATUS_PATH = "/"


def test_unknown_path_is_404_and_wrong_method_is_405(client: DevClient) -> None:
    assert client.get("/no/such/thing").status_code == 404
    assert client.request("DELETE", "/_dev/health").status_code == 405


def test_oversized_and_malformed_bodies(client: DevClient) -> None:
    too_big = client.post("/authn/demo/admin/authenticate", data=b"x" * (1024 * 1024 + 1))
    assert too_big.status_code == 413
    raw = _raw_request(client, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400")
    assert client.get(STATUS_PATH).status_code == 200


def test_garbage_on_the_socket_does_not_hurt_the_server(client: DevClient) -> None:
    host, port = client.server.host, client.server.port
    with socket.create_connection((host, port), timeout=5) as plain:
        plain.sendall(b"\x16\x03\x01 this is not TLS at all\r\n\r\n")
        with contextlib.suppress(OSError):
            plain.recv(100)
    _raw_request(client, b"\x00\x01\x02 GARBAGE \xff\r\n\r\n")
    assert client.get(STATUS_PATH).status_code == 200


def test_two_hundred_concurrent_clients(dev_server: DevServer) -> None:
    info = dev_server.info()
    barrier = threading.Barrier(200)
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one_client() -> None:
        session = requests.Session()
        session.trust_env = False
        try:
            barrier.wait(timeout=60)
            for _ in range(3):
                status = session.get(info["url"] + STATUS_PATH, verify=info["ca_cert"], timeout=60).status_code
                with lock:
                    results.append(status)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=one_client) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert results == [200] * 600


def _raw_request(client: DevClient, payload: bytes) -> bytes:
    context = ssl.create_default_context(cafile=client.info["ca_cert"])
    address = (client.server.host, client.server.port)
    with (
        socket.create_connection(address, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(payload)
        chunks = []
        try:
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except OSError:
            pass
        return b"".join(chunks)
