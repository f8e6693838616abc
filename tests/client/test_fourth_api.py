"""A fourth API, written entirely here: the client layer serves it without any change to the package.

``Toy`` has its own profile (error code table, error-body parser), its own auth strategy (user +
key exchanged for a token) and its own client class, built only from the public pieces of
``cyberark_ops.client``. It runs against a small HTTPS server defined below, with this contract:

* ``POST /toy/auth`` JSON ``{"user": .., "key": ..}`` -> ``{"token": .., "expires_in": N}``;
* ``GET /toy/secrets/{name}`` with ``Authorization: Toy <token>`` -> ``{"name", "value", "username"}``;
* errors ``{"error": {"code": "TOY401" | "TOY404", "message": ..}}``.

What the transport gives every API shows up here too: typed errors from the API's own code table
with its hints, one re-authentication after a 401, retries of 5xx and 429 (``Retry-After``), TLS
trust from ``ca_bundle``, the events, and the shared message shape.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

import cyberark_ops.client
from cyberark_ops.client import (
    AuthenticationFailed,
    ConfigurationError,
    CredentialSource,
    NotFound,
    RateLimited,
    TokenCache,
    Unavailable,
)
from cyberark_ops.devserver.tls import ensure_tls_files
from tests.toyapi.client import ToyClient, ToyConfig, ToyKeyAuth

from .conftest import FAST, Events

# -- a toy emulator over HTTPS -----------------------------------------------------------------

USER, KEY = "toy-user", "toy-key-1"
SECRETS = {"db": {"name": "db", "value": "s3cret-value", "username": "app"}}


class ToyServer:
    """The toy API: tokens it issued, queued faults (status, Retry-After) and a log of requests."""

    def __init__(self, directory: pathlib.Path) -> None:
        # The dev server's certificate helper (a throwaway CA and a 127.0.0.1 certificate); the
        # server itself is this test's own.
        tls = ensure_tls_files(directory)
        self.ca = str(tls.ca_cert)
        self.tokens: set[str] = set()
        self.faults: list[tuple[int, str | None]] = []
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        toy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                toy.answer(self)

            def do_GET(self) -> None:
                toy.answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = tls.server_context().wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def count(self, method: str, prefix: str) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.log if m == method and p.startswith(prefix))

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        status, payload, headers = self._route(
            handler.command, handler.path, handler.headers.get("Authorization"), body
        )
        with self.lock:
            self.log.append((handler.command, handler.path, status))
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _route(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            fault = self.faults.pop(0) if self.faults and method == "GET" else None
        if fault is not None:
            status, retry_after = fault
            return (
                status,
                {"error": {"code": "TOY5XX", "message": "busy"}},
                ({"Retry-After": retry_after} if retry_after else {}),
            )
        if method == "POST" and path == "/toy/auth":
            request = json.loads(body or b"{}")
            if request.get("user") != USER or request.get("key") != KEY:
                return 401, {"error": {"code": "TOY401", "message": "unknown user or wrong key"}}, {}
            token = secrets.token_hex(16)
            with self.lock:
                self.tokens.add(token)
            return 200, {"token": token, "expires_in": 300}, {}
        if method == "GET" and path.startswith("/toy/secrets/"):
            scheme, _, token = (authorization or "").partition(" ")
            with self.lock:
                valid = scheme == "Toy" and token in self.tokens
            if not valid:
                return 401, {"error": {"code": "TOY401", "message": "token missing, expired or revoked"}}, {}
            name = unquote(path[len("/toy/secrets/") :])
            if name not in SECRETS:
                return 404, {"error": {"code": "TOY404", "message": f"secret {name} does not exist"}}, {}
            return 200, SECRETS[name], {}
        return 404, {"error": {"code": "no_route", "message": "no such endpoint"}}, {}

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def toy(tmp_path: pathlib.Path) -> Iterator[ToyServer]:
    server = ToyServer(tmp_path)
    yield server
    server.stop()


def _client(toy: ToyServer, events: Events | None = None, *, key: str = KEY, **overrides: Any) -> ToyClient:
    settings: dict[str, Any] = {"base_url": toy.url, "ca_bundle": toy.ca, "auth": ToyKeyAuth(USER, key), **FAST}
    settings.update(overrides)
    return ToyClient(ToyConfig(**settings), on_event=events, token_cache=TokenCache())


# -- the tests ---------------------------------------------------------------------------------


def test_fetches_a_secret_through_the_uniform_get(toy: ToyServer) -> None:
    with _client(toy) as client:
        source: CredentialSource[str] = client  # the same contract as Conjur, CCP and PVWA clients
        credential = source.get("db", reason="run 1")
        again = client.get("db")
    assert credential.secret == "s3cret-value" and credential.username == "app" and credential.source == "toy:db"
    assert again.secret == "s3cret-value"
    assert toy.count("POST", "/toy/auth") == 1, "the token is cached and reused"
    assert repr(client) == f"ToyClient(base_url={toy.url!r}, user='toy-user')"
    assert KEY not in repr(client) and KEY not in repr(client.config)


def test_an_error_code_from_the_own_table_is_typed_with_its_hint(toy: ToyServer) -> None:
    with _client(toy) as client, pytest.raises(NotFound) as raised:
        client.get("nope")
    error = raised.value
    assert (error.api, error.action, error.status, error.code) == ("toy", "retrieve", 404, "TOY404")
    assert str(error) == (
        "Toy retrieve secret 'nope': HTTP 404 Not Found [TOY404]: secret nope does not exist. "
        "Check the secret's name and that the toy user may read it. (GET /toy/secrets/nope)"
    )


def test_a_rejected_key_fails_authentication_with_the_own_hint(toy: ToyServer, events: Events) -> None:
    with _client(toy, events, key="wrong-key") as client, pytest.raises(AuthenticationFailed) as raised:
        client.get("db")
    message = str(raised.value)
    assert message.startswith("Toy authenticate as 'toy-user': HTTP 401 Unauthorized [TOY401]")
    assert "Check the toy user and key" in message and "wrong-key" not in message
    assert toy.count("POST", "/toy/auth") == 1, "a failed login is not retried"
    assert [tags["error"] for tags in events.named("error")] == ["AuthenticationFailed"]


def test_reauthenticates_once_after_a_401(toy: ToyServer, events: Events) -> None:
    with _client(toy, events) as client:
        client.get("db")
        toy.revoke_tokens()  # the server forgets the token the client has cached
        assert client.get("db").secret == "s3cret-value"
    assert toy.count("POST", "/toy/auth") == 2
    assert [tags["reason"] for tags in events.named("token_renewal")] == ["initial", "unauthorized"]


def test_a_fresh_token_rejected_too_is_not_retried_again(toy: ToyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with _client(toy) as client:
        client.get("db")
        monkeypatch.setattr(toy, "tokens", _NeverValid())
        with pytest.raises(AuthenticationFailed) as raised:
            client.get("db")
    assert "[TOY401]: token missing, expired or revoked" in str(raised.value)
    assert "rejected a freshly obtained token too" in str(raised.value)
    assert toy.count("GET", "/toy/secrets/") == 3, (
        "the earlier fetch, then one try before and one after re-authenticating"
    )
    assert toy.count("POST", "/toy/auth") == 2


class _NeverValid(set[str]):
    def __contains__(self, item: object) -> bool:
        return False


def test_retries_a_503_then_succeeds(toy: ToyServer, events: Events) -> None:
    toy.faults = [(503, None), (503, None)]
    with _client(toy, events) as client:
        assert client.get("db").secret == "s3cret-value"
    assert toy.count("GET", "/toy/secrets/") == 3
    assert [tags["reason"] for tags in events.named("retry")] == ["status_503", "status_503"]
    assert all(tags["api"] == "toy" for tags in events.named("request"))


def test_a_5xx_that_never_ends_becomes_unavailable(toy: ToyServer) -> None:
    toy.faults = [(502, None)] * 10
    with _client(toy, max_retries=2) as client, pytest.raises(Unavailable) as raised:
        client.get("db")
    assert str(raised.value).startswith(
        "Toy retrieve secret 'db': HTTP 502 Bad Gateway [TOY5XX]: busy. The server kept"
    )
    assert toy.count("GET", "/toy/secrets/") == 3


def test_429_honours_retry_after_and_runs_out_as_rate_limited(toy: ToyServer, events: Events) -> None:
    toy.faults = [(429, "0")]
    with _client(toy, events) as client:
        assert client.get("db").secret == "s3cret-value"
    assert [tags["retry_after"] for tags in events.named("rate_limited")] == [0.0]
    toy.faults = [(429, "3600")]
    with _client(toy) as client, pytest.raises(RateLimited) as raised:
        client.get("db")
    assert "asked to wait 3600s, beyond the deadline" in str(raised.value)
    assert raised.value.retry_after == 3600.0


def test_tls_trust_comes_from_ca_bundle(toy: ToyServer, tmp_path: pathlib.Path) -> None:
    other_ca = str(ensure_tls_files(tmp_path / "other").ca_cert)
    with _client(toy, ca_bundle=other_ca) as client, pytest.raises(ConfigurationError) as raised:
        client.get("db")
    assert raised.value.field == "ca_bundle"
    assert "Toy authenticate as 'toy-user': TLS certificate verification failed" in str(raised.value)
    assert toy.log == []


def test_the_package_knows_nothing_of_the_toy_api() -> None:
    """Everything above came from public imports; no package file names the toy API."""
    package = pathlib.Path(cyberark_ops.client.__file__).parent.parent
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "TOY404" not in text and "/toy/" not in text, source
    transport = (package / "client" / "transport.py").read_text(encoding="utf-8")
    for code in ("APPAP", "PASWS", "ITATS", "CONJ0"):
        assert code not in transport, f"the transport knows an API's error codes ({code})"
