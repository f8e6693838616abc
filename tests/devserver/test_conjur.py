"""The Conjur emulation over real HTTPS: every endpoint, every status it can answer, and the wire
quirks clients depend on (docs/cyberark-apis.md §1)."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cyberark_ops.devserver import DevServer, SeedError
from cyberark_ops.devserver.conjur.issuer import DEV_JWT_ISSUER
from cyberark_ops.devserver.conjur.state import ConjurModel
from tests.conftest import DevClient

HOST_KEY = "c3m1acy12jr30a9xs415hhfcyjceajy2zrv74ksr54cn3eaem87vtk6"
ADMIN_KEY = "y85pgy8nf45w97ch4dg5c5xe0yxne48dk88ec5wcaw4xsr2zefcg4jg"
ADMIN_PASSWORD = "Demo-Admin-Passw0rd!"
HOST_LOGIN = "host%2Fairflow%2Fworker"
KEYSTORE = base64.b64decode(
    "/u3+7QAAAAIAAAABXhSDb6oY8+Y6dxISF1diLfOjtBceLSaQ5e+LEvVO2pzfthAqOMjJlGFpTqL4EOKe0pww8GleD7t/"
    "D+R488Zp2Pub8CZcVJC5N2QmU7w8bgE="
)
NOT_FOUND = "CONJ00076E Variable demo:variable:{} is empty or not found."
SPECIAL_IDS = {
    "prod/db/password": "Demo-PG-Passw0rd!",
    "a/ b /c": "space-and-slash",
    "research+development": "plus-sign",
    "sales&marketing": "ampersand",
    "alice@devops": "at-sign",
    "with,comma": "comma-cannot-batch",
    "percent%literal": "percent-sign",
    "unicode/clé-ключ": "ünïcödé-välue",
}


# -- helpers -------------------------------------------------------------------------------------


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def token_header(token_body: bytes) -> dict[str, str]:
    return {"Authorization": f'Token token="{b64(token_body)}"'}


def login_token(client: DevClient, login: str = HOST_LOGIN, api_key: str = HOST_KEY, account: str = "demo") -> bytes:
    response = client.post(f"/authn/{account}/{login}/authenticate", data=api_key)
    assert response.status_code == 200, response.text
    return response.content


def host_auth(client: DevClient) -> dict[str, str]:
    return token_header(login_token(client))


def admin_auth(client: DevClient) -> dict[str, str]:
    return token_header(login_token(client, "admin", ADMIN_KEY))


def basic(login: str, secret: str) -> dict[str, str]:
    return {"Authorization": f"Basic {b64(f'{login}:{secret}')}"}


def decode_part(part: str) -> dict[str, Any]:
    assert len(part) % 4 == 0, "token parts keep their base64 padding"
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part))
    return result


def raw_http(
    client: DevClient,
    method: str,
    path: bytes | str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """Sends bytes exactly as given (requests and http.client would normalise or refuse them)."""
    target = path.encode("latin-1") if isinstance(path, str) else path
    lines = [method.encode() + b" " + target + b" HTTP/1.1", f"Host: 127.0.0.1:{client.server.port}".encode()]
    for name, value in {"Connection": "close", "Content-Length": str(len(body)), **(headers or {})}.items():
        lines.append(name.encode("latin-1") + b": " + value.encode("latin-1"))
    context = ssl.create_default_context(cafile=client.info["ca_cert"])
    sock = socket.create_connection(("127.0.0.1", client.server.port), timeout=10)
    with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        chunks = []
        while data := tls.recv(65536):
            chunks.append(data)
    head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split(" ", 2)[1]), parsed, payload


def sign_jwt(key: rsa.RSAPrivateKey, claims: dict[str, Any], *, kid: str | None = None, alg: str = "RS256") -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = f"{part(header)}.{part(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def jwks_for(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()

    def enc(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"keys": [{"kty": "RSA", "kid": kid, "n": enc(numbers.n), "e": enc(numbers.e)}]}


@pytest.fixture(scope="module")
def foreign_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def server(dev_server: DevServer) -> DevServer:
    """A fresh demo server, for tests that change state (clock, tokens, values, keys)."""
    return dev_server


@pytest.fixture(scope="module")
def shared() -> Iterator[DevClient]:
    """One demo server for the tests that only read, so the suite stays fast."""
    with DevServer() as server:
        client = DevClient(server)
        yield client
        client.close()


# -- status, authenticators, prefixes ------------------------------------------------------------


def test_status_page_html_and_json(shared: DevClient) -> None:
    html = shared.get("/")
    assert html.status_code == 200
    assert html.headers["Content-Type"].startswith("text/html")
    assert "Version 1.24.0" in html.text
    assert shared.get("/", headers={"Accept": "application/json"}).json() == {"version": "1.24.0"}
    assert shared.get("/", headers={"Accept": "application/json, text/html"}).json() == {"version": "1.24.0"}
    assert (
        shared.get("/", headers={"Accept": "text/html, application/json"})
        .headers["Content-Type"]
        .startswith("text/html")
    )
    assert "Version 1.24.0" in shared.get("/api").text
    assert shared.get("/api/", headers={"Accept": "application/json"}).json()["version"] == "1.24.0"


def test_authenticators(shared: DevClient) -> None:
    response = shared.get("/authenticators")
    assert response.status_code == 200
    assert response.json() == {
        "installed": ["authn", "authn-azure", "authn-gcp", "authn-iam", "authn-jwt"],
        "configured": ["authn", "authn-jwt/airflow"],
        "enabled": ["authn", "authn-jwt/airflow"],
    }


def test_api_prefix_serves_the_same_api(shared: DevClient) -> None:
    token = shared.post(f"/api/authn/demo/{HOST_LOGIN}/authenticate", data=HOST_KEY)
    assert token.status_code == 200
    response = shared.get("/api/secrets/demo/variable/prod%2Fdb%2Fusername", headers=token_header(token.content))
    assert response.content == b"airflow_demo"
    assert shared.get("/api/whoami", headers=token_header(token.content)).json()["username"] == "host/airflow/worker"


def test_empty_seed_gives_an_empty_model_with_account_conjur(make_server: Callable[..., DevServer]) -> None:
    server = make_server({})
    assert server.app.conjur.account == "conjur"
    client = DevClient(server)
    assert client.get("/authenticators").json()["configured"] == ["authn"]
    assert client.post("/authn/conjur/admin/authenticate", data="x").status_code == 401
    client.close()


# -- login and authenticate ----------------------------------------------------------------------


def test_login_returns_the_api_key(shared: DevClient) -> None:
    for login, secret, key in [
        ("admin", ADMIN_PASSWORD, ADMIN_KEY),
        ("admin", ADMIN_KEY, ADMIN_KEY),
        ("user/admin", ADMIN_PASSWORD, ADMIN_KEY),
        ("host/airflow/worker", HOST_KEY, HOST_KEY),
    ]:
        response = shared.get("/authn/demo/login", headers=basic(login, secret))
        assert response.status_code == 200, login
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.text == key


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("admin", "wrong"),
        basic("nobody", ADMIN_PASSWORD),
        basic("host/airflow/worker", ADMIN_PASSWORD),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Basic {b64('no-colon')}"},
        {"Authorization": f"Basic {b64(b'admin:' + bytes([0xFF, 0xFE]))}"},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic"},
    ],
)
def test_login_failures_are_401_with_empty_body(shared: DevClient, headers: dict[str, str]) -> None:
    response = shared.get("/authn/demo/login", headers=headers)
    assert response.status_code == 401
    assert response.content == b""


def test_login_cross_account_is_401(shared: DevClient) -> None:
    assert shared.get("/authn/other/login", headers=basic("admin", ADMIN_PASSWORD)).status_code == 401


def test_authenticate_returns_a_slosilo_shaped_json_token(shared: DevClient) -> None:
    response = shared.post(
        f"/authn/demo/{HOST_LOGIN}/authenticate", data=HOST_KEY, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    token = response.json()
    assert set(token) == {"protected", "payload", "signature"}
    protected = decode_part(token["protected"])
    assert protected["alg"] == "conjur.org/slosilo/v2"
    assert len(protected["kid"]) == 64
    payload = decode_part(token["payload"])
    assert payload["sub"] == "host/airflow/worker"
    assert payload["exp"] - payload["iat"] == 480
    # Go and Python SDKs decode the payload with the *standard* alphabet.
    assert json.loads(base64.b64decode(token["payload"], validate=True))["sub"] == "host/airflow/worker"
    assert len(token["signature"]) % 4 == 0
    assert len(base64.urlsafe_b64decode(token["signature"])) == 32


@pytest.mark.parametrize("accept_encoding", ["base64", "gzip, Base64", "deflate ,BASE64 , br"])
def test_authenticate_base64_token(shared: DevClient, accept_encoding: str) -> None:
    response = shared.post(
        f"/authn/demo/{HOST_LOGIN}/authenticate", data=HOST_KEY, headers={"Accept-Encoding": accept_encoding}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Encoding"] == "base64"
    token = json.loads(base64.b64decode(response.content, validate=True))
    assert decode_part(token["payload"])["sub"] == "host/airflow/worker"
    # The already-encoded form goes straight into the header.
    headers = {"Authorization": f'Token token="{response.text}"'}
    assert shared.get("/whoami", headers=headers).status_code == 200


def test_authenticate_users_by_bare_or_prefixed_login(shared: DevClient) -> None:
    for login in ("admin", "user%2Fadmin"):
        token = json.loads(login_token(shared, login, ADMIN_KEY))
        assert decode_part(token["payload"])["sub"] == "admin"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/authn/demo/{HOST_LOGIN}/authenticate", b"wrong-key"),
        (f"/authn/demo/{HOST_LOGIN}/authenticate", b""),
        (f"/authn/demo/{HOST_LOGIN}/authenticate", b"\xff\xfe" + HOST_KEY.encode()),
        (f"/authn/demo/{HOST_LOGIN}/authenticate", ADMIN_KEY.encode()),
        ("/authn/demo/host%2Fairflow%2Fnobody/authenticate", HOST_KEY.encode()),
        (f"/authn/other/{HOST_LOGIN}/authenticate", HOST_KEY.encode()),
        ("/authn/demo/%ff%fe/authenticate", HOST_KEY.encode()),
    ],
)
def test_authenticate_failures_are_401_with_empty_body(shared: DevClient, path: str, body: bytes) -> None:
    response = shared.post(path, data=body)
    assert response.status_code == 401
    assert response.content == b""


def test_authenticate_needs_an_encoded_host_login(shared: DevClient) -> None:
    # ``[^/?]+`` route constraint: an unencoded slash in the login finds no route.
    assert shared.post("/authn/demo/host/airflow/worker/authenticate", data=HOST_KEY).status_code == 404


def test_authenticate_ignores_a_token_in_the_authorization_header(shared: DevClient) -> None:
    headers = {"Authorization": 'Token token="garbage"'}
    assert shared.post(f"/authn/demo/{HOST_LOGIN}/authenticate", data=HOST_KEY, headers=headers).status_code == 200
    assert shared.post(f"/authn/demo/{HOST_LOGIN}/authenticate", data=b"", headers=host_auth(shared)).status_code == 401


# -- access tokens at the rack layer -------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Authorization missing"),
        ("Bearer abc", "Authorization missing"),
        ("Token token=abc", "Authorization missing"),
        ('token token="abc"', "Authorization missing"),
        (f'Token token="{b64("not json")}"', "Malformed authorization token"),
        (f'Token token="{b64("[1, 2]")}"', "Malformed authorization token"),
        (f'Token token="{b64(json.dumps({"data": "x", "signature": "y"}))}"', "Unauthorized: Invalid token"),
        ('Token token="%%%"', "Malformed authorization token"),
    ],
)
def test_rack_level_token_errors(shared: DevClient, authorization: str | None, message: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for path in (
        "/whoami",
        "/secrets/demo/variable/prod/db/password",
        "/secrets?variable_ids=demo:variable:x",
        "/resources/demo",
    ):
        response = shared.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["Content-Type"] == "text/plain"
        assert response.text == message


def test_tampered_tokens_are_invalid(shared: DevClient) -> None:
    token = json.loads(login_token(shared))
    payload = decode_part(token["payload"])
    payload["sub"] = "admin"
    forged = {**token, "payload": base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()}
    bad_signature = {**token, "signature": base64.urlsafe_b64encode(b"x" * 32).decode()}
    other_kid = {
        **token,
        "protected": base64.urlsafe_b64encode(b'{"alg":"conjur.org/slosilo/v2","kid":"0"}').decode(),
    }
    for variant in (forged, bad_signature, other_kid):
        response = shared.get("/whoami", headers=token_header(json.dumps(variant).encode()))
        assert (response.status_code, response.text) == (401, "Unauthorized: Invalid token")


def test_token_accepts_lenient_base64_in_the_header(shared: DevClient) -> None:
    encoded = b64(login_token(shared)).rstrip("=")
    assert shared.get("/whoami", headers={"Authorization": f'Token token="{encoded}"'}).status_code == 200


def test_token_expires_after_480_seconds(client: DevClient, server: DevServer) -> None:
    headers = host_auth(client)
    server.app.clock.advance(470)
    assert client.get("/whoami", headers=headers).status_code == 200
    server.app.clock.advance(11)
    response = client.get("/secrets/demo/variable/prod/db/password", headers=headers)
    assert (response.status_code, response.text) == (401, "Unauthorized: Invalid token")
    assert client.get("/secrets/demo/variable/prod/db/password", headers=host_auth(client)).status_code == 200


def test_token_expiry_through_the_admin_clock(client: DevClient) -> None:
    headers = host_auth(client)
    assert client.admin("POST", "/clock", json={"advance": 481}).status_code == 200
    assert client.get("/whoami", headers=headers).status_code == 401


def test_token_ttl_is_configurable(client: DevClient, server: DevServer) -> None:
    assert client.admin("PUT", "/token-ttl", json={"seconds": 60}).status_code == 200
    token = json.loads(login_token(client))
    payload = decode_part(token["payload"])
    assert payload["exp"] - payload["iat"] == 60
    server.app.clock.advance(61)
    assert client.get("/whoami", headers=token_header(json.dumps(token).encode())).status_code == 401


def test_revoke_invalidates_every_issued_token(client: DevClient, server: DevServer) -> None:
    first, second = host_auth(client), admin_auth(client)
    revoked = client.admin("POST", "/tokens/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] >= 2
    for headers in (first, second):
        assert client.get("/whoami", headers=headers).text == "Unauthorized: Invalid token"
    fresh = host_auth(client)
    assert client.get("/whoami", headers=fresh).status_code == 200
    server.app.revoke_tokens()
    assert client.get("/whoami", headers=fresh).status_code == 401


def test_whoami(shared: DevClient) -> None:
    response = shared.get("/whoami", headers={**host_auth(shared), "User-Agent": "probe/1.0"})
    assert response.status_code == 200
    body = response.json()
    assert body["account"] == "demo"
    assert body["username"] == "host/airflow/worker"
    assert body["client_ip"] == "127.0.0.1"
    assert body["user_agent"] == "probe/1.0"
    assert body["token_issued_at"].endswith("+00:00")
    assert len(body["token_issued_at"].split(".")[1]) == len("000+00:00")


def test_request_id_is_echoed_or_generated(shared: DevClient) -> None:
    headers = host_auth(shared)
    assert shared.get("/whoami", headers={**headers, "X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    generated = shared.get("/whoami", headers=headers).headers["X-Request-Id"]
    assert len(generated) == 36
    sanitized = shared.get("/whoami", headers={**headers, "X-Request-Id": "airflow-d-t-manual__2026:01+00"})
    assert sanitized.headers["X-Request-Id"] == "airflow-d-t-manual__20260100"


# -- single secrets ------------------------------------------------------------------------------


ENCODERS: dict[str, Callable[[str], str]] = {
    "python-sdk": lambda i: quote(i, safe=""),
    "literal-slash": lambda i: quote(i, safe="/"),
    "go-sdk": lambda i: quote(i, safe="+&@:=$,;"),
}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_retrieve_ids_in_every_encoding(shared: DevClient, encoder: str) -> None:
    headers = host_auth(shared)
    for identifier, value in SPECIAL_IDS.items():
        response = shared.get(f"/secrets/demo/variable/{ENCODERS[encoder](identifier)}", headers=headers)
        assert response.status_code == 200, (encoder, identifier)
        assert response.content == value.encode()
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"] == "attachment"


def test_a_literal_plus_is_not_a_space(shared: DevClient) -> None:
    headers = host_auth(shared)
    response = shared.get("/secrets/demo/variable/research%20development", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == NOT_FOUND.format("research development")


def test_retrieve_raw_utf8_path(shared: DevClient) -> None:
    headers = host_auth(shared)
    status, _, body = raw_http(
        shared, "GET", "/secrets/demo/variable/unicode/clé-ключ".encode().decode("latin-1"), headers
    )
    assert (status, body) == (200, "ünïcödé-välue".encode())


def test_retrieve_mime_type_and_binary(shared: DevClient) -> None:
    headers = host_auth(shared)
    config = shared.get("/secrets/demo/variable/prod%2Fapp%2Fconfig", headers=headers)
    assert config.headers["Content-Type"] == "application/json"
    assert config.json()["feature_flags"] == {"new_ui": True}
    keystore = shared.get("/secrets/demo/variable/certs%2Fkeystore", headers=headers)
    assert keystore.headers["Content-Type"] == "application/octet-stream"
    assert keystore.content == KEYSTORE


def test_retrieve_versions(shared: DevClient) -> None:
    headers = host_auth(shared)
    for version, expected in [
        (None, b"demo-api-key-v3"),
        (1, b"demo-api-key-v1"),
        (2, b"demo-api-key-v2"),
        (3, b"demo-api-key-v3"),
    ]:
        query = "" if version is None else f"?version={version}"
        assert shared.get(f"/secrets/demo/variable/prod/api/key{query}", headers=headers).content == expected
    assert shared.get("/secrets/demo/variable/prod/api/key?version=4", headers=headers).status_code == 404
    assert shared.get("/secrets/demo/variable/prod/api/key?version=0", headers=headers).status_code == 404
    for bad in ("abc", "-1", "1.5", ""):
        response = shared.get(f"/secrets/demo/variable/prod/api/key?version={bad}", headers=headers)
        assert response.status_code == 422
        assert response.json() == {"error": {"code": "argument_error", "message": "version"}}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/secrets/demo/variable/admin/break-glass", 404),  # exists, invisible
        ("/secrets/demo/variable/does/not/exist", 404),
        ("/secrets/demo/variable/prod/db/empty", 404),  # visible, no value
        ("/secrets/demo/variable/prod/restricted/audit-key", 403),  # read without execute
        ("/secrets/demo/variable/admin/break-glass?version=abc", 404),  # visibility before version
        ("/secrets/demo/variable/prod/restricted/audit-key?version=abc", 403),
        ("/secrets/other/variable/prod/db/password", 404),
        ("/secrets/demo/host/airflow/worker", 404),
        ("/secrets/demo/variable/prod/db/password%00", 404),
        ("/secrets/demo/variable/prod%2Fdb%2Fpassword%ff", 404),
        ("/secrets/de%2Fmo/variable/prod/db/password", 404),
    ],
)
def test_retrieve_errors(shared: DevClient, path: str, status: int) -> None:
    response = shared.get(path, headers=host_auth(shared))
    assert response.status_code == status
    if status == 403:
        assert response.content == b""
    if path == "/secrets/demo/variable/admin/break-glass":
        assert response.json() == {"error": {"code": "not_found", "message": NOT_FOUND.format("admin/break-glass")}}


def test_admin_sees_everything(shared: DevClient) -> None:
    headers = admin_auth(shared)
    assert shared.get("/secrets/demo/variable/admin/break-glass", headers=headers).status_code == 200
    assert shared.get("/secrets/demo/variable/prod/restricted/audit-key", headers=headers).status_code == 200


def test_dot_segments_reach_no_other_object(shared: DevClient) -> None:
    headers = host_auth(shared)
    for path in (
        "/secrets/demo/variable/prod/db/../db/password",
        "/secrets/demo/variable/prod/db/%2E%2E/db/password",
        "/secrets/demo/variable/../variable/prod/db/password",
        "/secrets/demo/variable/prod/db/./password",
    ):
        status, _, body = raw_http(shared, "GET", path, headers)
        assert status == 404
        assert b"Demo-PG" not in body


# -- storing values and versions -----------------------------------------------------------------


def test_store_creates_versions_and_keeps_twenty(client: DevClient, server: DevServer) -> None:
    headers = host_auth(client)
    path = "/secrets/demo/variable/prod%2Frotating%2Fpassword"
    for n in range(1, 23):
        response = client.post(
            path,
            data=f"value-{n}".encode(),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (response.status_code, response.content) == (201, b"")
    assert client.get(path, headers=headers).content == b"value-22"
    assert server.app.conjur.versions("prod/rotating/password") == list(range(4, 24))
    assert client.get(path + "?version=23", headers=headers).content == b"value-22"
    assert client.get(path + "?version=4", headers=headers).content == b"value-3"
    assert client.get(path + "?version=1", headers=headers).status_code == 404
    assert client.get(path + "?version=3", headers=headers).status_code == 404
    # An identical value is not re-versioned.
    assert client.post(path, data=b"value-22", headers=headers).status_code == 201
    assert server.app.conjur.versions("prod/rotating/password")[-1] == 23


def test_store_keeps_binary_exactly(client: DevClient) -> None:
    headers = host_auth(client)
    blob = bytes(range(256))
    assert client.post("/secrets/demo/variable/prod/rotating/password", data=blob, headers=headers).status_code == 201
    assert client.get("/secrets/demo/variable/prod/rotating/password", headers=headers).content == blob


def test_store_errors(shared: DevClient) -> None:
    headers = host_auth(shared)
    for body in (b"", b"   \n\t"):
        response = shared.post("/secrets/demo/variable/prod/rotating/password", data=body, headers=headers)
        assert response.status_code == 422
        assert response.json() == {"error": {"code": "argument_error", "message": "'value' may not be empty"}}
    assert shared.post("/secrets/demo/variable/prod/db/password", data=b"x", headers=headers).status_code == 403
    assert shared.post("/secrets/demo/variable/prod/db/password", data=b"x", headers=headers).content == b""
    response = shared.post("/secrets/demo/variable/admin%2Fbreak-glass", data=b"x", headers=headers)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "Variable 'admin/break-glass' not found in account 'demo'",
            "target": "variable",
            "details": {"code": "not_found", "target": "id", "message": "demo:variable:admin/break-glass"},
        }
    }
    assert shared.post("/secrets/demo/variable/nope", data=b"x", headers=headers).status_code == 404
    assert shared.post("/secrets/demo/variable/nope", data=b"x").status_code == 401
    assert shared.post("/secrets/demo/variable/prod/rotating/password?expirations", headers=headers).status_code == 201


def test_admin_can_store_anywhere(client: DevClient) -> None:
    headers = admin_auth(client)
    assert client.post("/secrets/demo/variable/prod/db/empty", data=b"now-set", headers=headers).status_code == 201
    assert client.get("/secrets/demo/variable/prod/db/empty", headers=host_auth(client)).content == b"now-set"


# -- rotation ------------------------------------------------------------------------------------


def test_rotation_in_process(client: DevClient, server: DevServer) -> None:
    headers = host_auth(client)
    before = client.get("/secrets/demo/variable/prod/db/password", headers=headers).content
    result = server.app.rotate("conjur:prod/db/password")
    assert result == {"target": "conjur:prod/db/password", "version": 2, "changed": True}
    after = client.get("/secrets/demo/variable/prod/db/password", headers=headers).content
    assert after != before
    assert client.get("/secrets/demo/variable/prod/db/password?version=1", headers=headers).content == before
    assert server.app.rotate("conjur:prod/db/password", "fixed")["version"] == 3
    assert server.app.rotate("conjur:demo:variable:prod/db/password", "fixed") == {
        "target": "conjur:prod/db/password",
        "version": 3,
        "changed": False,
    }
    with pytest.raises(KeyError):
        server.app.rotate("conjur:no/such/variable")


def test_rotation_through_the_admin_api(client: DevClient) -> None:
    canary = "CANARY-rotated-7f3a"
    response = client.admin("POST", "/rotate", json={"target": "conjur:prod/db/password", "value": canary})
    assert response.status_code == 200
    assert canary not in response.text
    assert response.json()["version"] == 2
    assert client.get("/secrets/demo/variable/prod/db/password", headers=host_auth(client)).text == canary
    assert client.admin("POST", "/rotate", json={"target": "conjur:missing"}).status_code == 404
    assert client.admin("POST", "/rotate", json={"target": "conjur:prod/db/host"}).status_code == 200


# -- batch ---------------------------------------------------------------------------------------


def batch_query(*ids: str, encode: bool = True) -> str:
    return "/secrets?variable_ids=" + ",".join(
        quote(f"demo:variable:{i}", safe="") if encode else f"demo:variable:{i}" for i in ids
    )


def test_batch_returns_full_ids(shared: DevClient) -> None:
    headers = host_auth(shared)
    ids = [i for i in SPECIAL_IDS if "," not in i]
    response = shared.get(batch_query(*ids), headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {f"demo:variable:{i}": SPECIAL_IDS[i] for i in ids}
    literal = shared.get(batch_query("prod/db/username", "prod/db/password", encode=False), headers=headers)
    assert literal.json() == {
        "demo:variable:prod/db/username": "airflow_demo",
        "demo:variable:prod/db/password": "Demo-PG-Passw0rd!",
    }
    twenty = shared.get(batch_query(*(f"prod/batch/secret-{n:02d}" for n in range(1, 21))), headers=headers)
    assert len(twenty.json()) == 20


def test_batch_base64_uses_mime_lines_of_60(shared: DevClient) -> None:
    headers = {**host_auth(shared), "Accept-Encoding": "base64"}
    response = shared.get(batch_query("certs/keystore", "prod/db/username"), headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "base64"
    body = response.json()
    keystore = body["demo:variable:certs/keystore"]
    lines = keystore.split("\n")
    assert lines[-1] == "" and keystore.endswith("\n")
    assert all(len(line) == 60 for line in lines[:-2]) and 0 < len(lines[-2]) <= 60
    assert len(lines) - 1 == 3
    assert base64.b64decode(keystore.replace("\n", "")) == KEYSTORE
    assert body["demo:variable:prod/db/username"] == "YWlyZmxvd19kZW1v\n"


@pytest.mark.parametrize("accept_encoding", [None, "gzip, base64", "*", "identity"])
def test_batch_binary_without_exact_base64_is_406(shared: DevClient, accept_encoding: str | None) -> None:
    headers = host_auth(shared)
    if accept_encoding:
        headers["Accept-Encoding"] = accept_encoding
    response = shared.get(batch_query("certs/keystore", "prod/db/username"), headers=headers)
    assert response.status_code == 406
    assert response.json() == {
        "error": {
            "code": "not_acceptable",
            "message": "CONJ00074E Issue encoding secret into JSON format, try including "
            "'Accept-Encoding: base64' header in request.",
        }
    }


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?variable_ids=",
        "?variable_ids=,,,",
        "?variable_ids=demo:variable:a,,demo:variable:b",
        "?variable_ids=,demo:variable:prod/db/host",
        "?other=1",
    ],
)
def test_batch_blank_ids_are_422(shared: DevClient, query: str) -> None:
    response = shared.get(f"/secrets{query}", headers=host_auth(shared))
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "argument_error", "message": "variable_ids"}}


def test_batch_trailing_comma_is_dropped_like_ruby_split(shared: DevClient) -> None:
    response = shared.get(batch_query("prod/db/host") + ",", headers=host_auth(shared))
    assert response.json() == {"demo:variable:prod/db/host": "localhost"}


def test_batch_checks_privilege_before_existence(shared: DevClient) -> None:
    headers = host_auth(shared)
    # Invisible (break-glass) and read-only both give 403 even though an id is also missing.
    for hidden in ("admin/break-glass", "prod/restricted/audit-key"):
        response = shared.get(batch_query("does/not/exist", hidden, "prod/db/host"), headers=headers)
        assert (response.status_code, response.content) == (403, b"")
    missing = shared.get(batch_query("prod/db/host", "missing/one", "missing/two"), headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == NOT_FOUND.format("missing/one")
    empty = shared.get(batch_query("prod/db/host", "prod/db/empty"), headers=headers)
    assert empty.json()["error"]["message"] == NOT_FOUND.format("prod/db/empty")


def test_batch_splits_on_commas_even_encoded(shared: DevClient) -> None:
    headers = host_auth(shared)
    response = shared.get(batch_query("with,comma"), headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == NOT_FOUND.format("with")


def test_batch_other_oddities(shared: DevClient) -> None:
    headers = host_auth(shared)
    malformed = shared.get("/secrets?variable_ids=1", headers=headers)
    assert malformed.json()["error"]["message"] == "CONJ00076E Variable 1 is empty or not found."
    other_account = shared.get("/secrets?variable_ids=other:variable:prod/db/host", headers=headers)
    assert other_account.status_code == 404
    duplicate = shared.get(batch_query("prod/db/host", "prod/db/host"), headers=headers)
    assert duplicate.status_code == 422
    # The query string is form-decoded: a literal + is a space.
    plus = shared.get("/secrets?variable_ids=demo:variable:research+development", headers=headers)
    assert plus.json()["error"]["message"] == NOT_FOUND.format("research development")


def test_batch_sees_rotation(client: DevClient, server: DevServer) -> None:
    headers = host_auth(client)
    server.app.rotate("conjur:prod/batch/secret-01", "rotated-01")
    response = client.get(batch_query("prod/batch/secret-01", "prod/batch/secret-02"), headers=headers)
    assert response.json()["demo:variable:prod/batch/secret-01"] == "rotated-01"


# -- resources -----------------------------------------------------------------------------------


def test_resources_show_only_what_the_caller_may_touch(shared: DevClient) -> None:
    headers = host_auth(shared)
    response = shared.get("/resources/demo", headers=headers)
    assert response.status_code == 200
    ids = [r["id"] for r in response.json()]
    assert ids == sorted(ids)
    assert "demo:variable:prod/restricted/audit-key" in ids
    assert "demo:variable:admin/break-glass" not in ids
    assert "demo:webservice:conjur/authn-jwt/airflow" in ids
    assert not [i for i in ids if ":host:" in i or ":user:" in i]
    admin_ids = [r["id"] for r in shared.get("/resources/demo", headers=admin_auth(shared)).json()]
    assert {
        "demo:variable:admin/break-glass",
        "demo:host:airflow/worker",
        "demo:user:admin",
        "demo:policy:root",
    } <= set(admin_ids)


def test_resource_objects_have_conjur_fields(shared: DevClient) -> None:
    response = shared.get("/resources/demo/variable?search=api", headers=host_auth(shared))
    (resource,) = response.json()
    assert resource["id"] == "demo:variable:prod/api/key"
    assert resource["owner"] == resource["policy"] == "demo:policy:root"
    assert [s["version"] for s in resource["secrets"]] == [1, 2, 3]
    assert {
        "privilege": "execute",
        "role": "demo:host:airflow/worker",
        "policy": "demo:policy:root",
    } in resource["permissions"]
    config = shared.get("/resources/demo/variable?search=config", headers=host_auth(shared)).json()[0]
    assert {"name": "conjur/mime_type", "value": "application/json", "policy": "demo:policy:root"} in config[
        "annotations"
    ]
    assert "feature_flags" not in json.dumps(config)


def test_resources_filters_and_paging(shared: DevClient) -> None:
    headers = host_auth(shared)
    batch = shared.get("/resources/demo/variable?search=batch", headers=headers).json()
    assert len(batch) == 20
    assert (
        shared.get("/resources/demo?kind=webservice", headers=headers).json()[0]["id"]
        == "demo:webservice:conjur/authn-jwt/airflow"
    )
    assert shared.get("/resources/demo/variable?search=batch&count=true", headers=headers).json() == {"count": 20}
    page = shared.get("/resources/demo/variable?search=batch&limit=5&offset=5", headers=headers).json()
    assert [r["id"] for r in page] == [r["id"] for r in batch[5:10]]
    assert len(shared.get("/resources/demo/variable?search=batch&offset=2", headers=headers).json()) == 10
    assert shared.get("/resources/demo/variable?limit=0", headers=headers).json() == []
    assert shared.get("/resources/other", headers=headers).json() == []
    assert shared.get("/resources?kind=webservice", headers=headers).status_code == 200
    assert shared.get("/resources/demo/group", headers=headers).json() == []


@pytest.mark.parametrize(
    "query",
    [
        "/resources/demo?limit=1001",
        "/resources/demo?limit=abc",
        "/resources/demo?offset=-1",
        "/resources/demo?kind=bogus",
        "/resources/demo/bogus",
        "/resources/demo?search=",
        "/resources/demo?count=maybe",
        "/resources/a%20b",
    ],
)
def test_resources_bad_parameters_are_422(shared: DevClient, query: str) -> None:
    assert shared.get(query, headers=host_auth(shared)).status_code == 422


def test_resources_acting_as(shared: DevClient) -> None:
    host, admin = host_auth(shared), admin_auth(shared)
    assert shared.get("/resources/demo?role=user:admin", headers=host).status_code == 403
    assert shared.get("/resources/demo?acting_as=demo:user:nobody", headers=admin).status_code == 403
    as_host = shared.get("/resources/demo?acting_as=demo:host:airflow/worker", headers=admin).json()
    assert as_host == shared.get("/resources/demo", headers=host).json()


def test_single_resource_and_privilege_check(shared: DevClient) -> None:
    headers = host_auth(shared)
    shown = shared.get("/resources/demo/variable/prod%2Fdb%2Fpassword", headers=headers)
    assert shown.json()["id"] == "demo:variable:prod/db/password"
    hidden = shared.get("/resources/demo/variable/admin/break-glass", headers=headers)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["message"] == "Variable 'admin/break-glass' not found in account 'demo'"
    check = "/resources/demo/variable/prod/restricted/audit-key?check=true&privilege="
    assert shared.get(check + "read", headers=headers).status_code == 204
    assert shared.get(check + "execute", headers=headers).status_code == 404
    assert shared.get(check, headers=headers).status_code == 422
    assert shared.get(check + "execute&role=host:airflow/worker", headers=admin_auth(shared)).status_code == 404
    assert shared.get(check + "execute", headers=admin_auth(shared)).status_code == 204


# -- API key rotation ----------------------------------------------------------------------------


def test_rotate_own_api_key_with_basic(client: DevClient) -> None:
    response = client.request("PUT", "/authn/demo/api_key", headers=basic("host/airflow/worker", HOST_KEY))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    new_key = response.text
    assert len(new_key) == 55 and new_key != HOST_KEY
    assert client.post(f"/authn/demo/{HOST_LOGIN}/authenticate", data=HOST_KEY).status_code == 401
    assert client.post(f"/authn/demo/{HOST_LOGIN}/authenticate", data=new_key).status_code == 200


def test_rotate_api_key_with_a_token_and_for_others(client: DevClient) -> None:
    host_token = host_auth(client)
    own = client.request("PUT", "/authn/demo/api_key", headers=host_token)
    assert own.status_code == 200
    # Tokens issued before the rotation stay valid.
    assert client.get("/whoami", headers=host_token).status_code == 200
    admin = admin_auth(client)
    other = client.request("PUT", "/authn/demo/api_key?role=host:airflow/worker", headers=admin)
    assert other.status_code == 200
    assert client.post(f"/authn/demo/{HOST_LOGIN}/authenticate", data=other.text).status_code == 200
    assert client.request("PUT", "/authn/demo/api_key?role=user:admin", headers=host_token).status_code == 403
    assert client.request("PUT", "/authn/demo/api_key?role=host:nobody", headers=admin).status_code == 404
    assert client.request("PUT", "/authn/demo/api_key?role=bogus", headers=admin).status_code == 422
    by_password = client.request("PUT", "/authn/demo/api_key", headers=basic("admin", ADMIN_PASSWORD))
    assert by_password.status_code == 200
    assert client.get("/authn/demo/login", headers=basic("admin", ADMIN_PASSWORD)).text == by_password.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("host/airflow/worker", "wrong"),
        {"Authorization": "Basic %%%"},
        {"Authorization": "Digest x"},
    ],
)
def test_rotate_api_key_failures(shared: DevClient, headers: dict[str, str]) -> None:
    response = shared.request("PUT", "/authn/demo/api_key", headers=headers)
    assert (response.status_code, response.content) == (401, b"")


def test_rotate_api_key_with_a_bad_token_is_a_rack_error(shared: DevClient) -> None:
    response = shared.request("PUT", "/authn/demo/api_key", headers={"Authorization": f'Token token="{b64("nope")}"'})
    assert (response.status_code, response.text) == (401, "Malformed authorization token")
    assert shared.request("PUT", "/authn/other/api_key", headers=host_auth(shared)).status_code == 401


# -- authn-jwt -----------------------------------------------------------------------------------


def jwt_authenticate(
    client: DevClient,
    jwt: str,
    service: str = "airflow",
    account: str = "demo",
    host: str | None = None,
    **kwargs: Any,
) -> Any:
    path = f"/authn-jwt/{service}/{account}" + (f"/{quote(host, safe='')}" if host else "") + "/authenticate"
    kwargs.setdefault("data", {"jwt": jwt})
    return client.post(path, **kwargs)


def test_authn_jwt_with_the_dev_issuer(shared: DevClient) -> None:
    jwt = shared.server.app.conjur.mint_jwt({"sub": "worker"}, 300, shared.server.app.clock.now())
    response = jwt_authenticate(shared, jwt)
    assert response.status_code == 200
    assert decode_part(response.json()["payload"])["sub"] == "host/airflow/worker"
    encoded = jwt_authenticate(shared, jwt, headers={"Accept-Encoding": "base64"})
    assert encoded.headers["Content-Encoding"] == "base64"
    # conjur-api-python sends ``jwt=...`` as a text/plain body.
    plain = jwt_authenticate(shared, jwt, data=f"jwt={jwt}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 200
    token = token_header(response.content)
    assert shared.get("/secrets/demo/variable/prod/db/password", headers=token).status_code == 200


def test_dev_jwt_endpoint(shared: DevClient) -> None:
    assert shared.post("/_dev/conjur/jwt", json={"claims": {"sub": "worker"}}).status_code == 401
    minted = shared.admin("POST", "/conjur/jwt", json={"claims": {"sub": "worker"}, "ttl": 60})
    assert minted.status_code == 200
    jwt = minted.json()["jwt"]
    header = json.loads(base64.urlsafe_b64decode(jwt.split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    assert claims["iss"] == DEV_JWT_ISSUER and claims["exp"] - claims["iat"] == 60
    assert jwt_authenticate(shared, jwt).status_code == 200
    for bad in (b"not json", b"[1]", json.dumps({"claims": []}).encode(), json.dumps({"ttl": "x"}).encode()):
        response = shared.admin("POST", "/conjur/jwt", data=bad)
        assert response.status_code == 400


def test_dev_jwt_key_is_kept_in_the_state_dir(make_server: Callable[..., DevServer], tmp_path: Path) -> None:
    first = make_server(None, state_dir=tmp_path)
    jwt = first.app.conjur.mint_jwt({"sub": "worker"}, 300, first.app.clock.now())
    key_file = tmp_path / "jwt-key.pem"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600
    first.stop()
    second = make_server(None, state_dir=tmp_path)
    client = DevClient(second)
    assert jwt_authenticate(client, jwt).status_code == 200
    client.close()


def test_authn_jwt_expired_gets_a_json_message(client: DevClient, server: DevServer) -> None:
    jwt = server.app.conjur.mint_jwt({"sub": "worker"}, 60, server.app.clock.now())
    server.app.clock.advance(61)
    response = jwt_authenticate(client, jwt)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "CONJ00016E Token expired"}}


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({}, 400),
        ({"other": "x"}, 400),
        ({"jwt": ""}, 400),
        ({"jwt": "   "}, 400),
        ({"jwt": "abc"}, 401),
        ({"jwt": "a.b.c"}, 401),
        ({"jwt": "a.b.c.d"}, 401),
        ({"jwt": "a b.c.d"}, 401),
    ],
)
def test_authn_jwt_body_problems(shared: DevClient, data: dict[str, str], status: int) -> None:
    response = jwt_authenticate(shared, "", data=data)
    assert (response.status_code, response.content) == (status, b"")


def test_authn_jwt_json_body_is_not_a_form(shared: DevClient) -> None:
    jwt = shared.server.app.conjur.mint_jwt({"sub": "worker"}, 300, shared.server.app.clock.now())
    assert jwt_authenticate(shared, jwt, data=None, json={"jwt": jwt}).status_code == 400


def test_authn_jwt_claim_failures(shared: DevClient, foreign_key: rsa.RSAPrivateKey) -> None:
    now = shared.server.app.clock.now()
    mint = shared.server.app.conjur.mint_jwt
    cases = {
        "wrong issuer": mint({"sub": "worker", "iss": "https://evil.example"}, 300, now),
        "no issuer": mint({"sub": "worker", "iss": None}, 300, now),
        "no exp": mint({"sub": "worker", "exp": None}, 300, now),
        "not yet valid": mint({"sub": "worker", "nbf": int(now) + 120}, 300, now),
        "no sub": mint({}, 300, now),
        "empty sub": mint({"sub": ""}, 300, now),
        "non-string sub": mint({"sub": 42}, 300, now),
        "unknown host": mint({"sub": "nobody"}, 300, now),
        "foreign key": sign_jwt(foreign_key, {"sub": "worker", "iss": DEV_JWT_ISSUER, "exp": int(now) + 300}),
        "alg HS256": sign_jwt(
            foreign_key, {"sub": "worker", "iss": DEV_JWT_ISSUER, "exp": int(now) + 300}, alg="HS256"
        ),
    }
    alg_none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    cases["alg none"] = alg_none + "." + mint({"sub": "worker"}, 300, now).split(".", 1)[1]
    for name, jwt in cases.items():
        response = jwt_authenticate(shared, jwt)
        assert (response.status_code, response.content) == (401, b""), name
    good = mint({"sub": "worker"}, 300, now)
    assert jwt_authenticate(shared, good, service="nope").status_code == 401
    assert jwt_authenticate(shared, good, account="other").status_code == 401
    # token_app_property is configured, so the URL may not name the host as well.
    assert jwt_authenticate(shared, good, host="host/airflow/worker").status_code == 401


JWT_ISSUER = "https://issuer.example"


@pytest.fixture(scope="module")
def jwt_client(foreign_key: rsa.RSAPrivateKey) -> Iterator[DevClient]:
    pem = (
        foreign_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    seed = {
        "conjur": {
            "account": "acme",
            "hosts": [{"id": "apps/a"}, {"id": "apps/b"}, {"id": "ci/runner"}],
            "users": [{"id": "alice", "api_key": "alice-key"}],
            "variables": [{"id": "apps/secret", "value": "s3cr3t"}],
            "permits": [{"role": "host:apps/a", "privileges": ["read", "execute"], "resources": ["apps/*"]}],
            "authn_jwt": [
                {
                    "service_id": "claim",
                    "issuer": JWT_ISSUER,
                    "audience": "conjur",
                    "token_app_property": "workload/name",
                    "identity_path": "/apps/",
                    "public_keys": jwks_for(foreign_key, "k1"),
                    "enabled_hosts": ["apps/a", "host/ci/runner"],
                },
                {"service_id": "url", "issuer": JWT_ISSUER, "public_keys": pem},
                {
                    "service_id": "prod/gke",
                    "issuer": JWT_ISSUER,
                    "public_keys": [pem],
                    "token_app_property": "sub",
                },
                {
                    "service_id": "off",
                    "issuer": DEV_JWT_ISSUER,
                    "enabled": False,
                    "token_app_property": "sub",
                },
            ],
        }
    }
    with DevServer(seed) as server:
        client = DevClient(server)
        yield client
        client.close()


def test_authn_jwt_with_a_configured_jwks(jwt_client: DevClient, foreign_key: rsa.RSAPrivateKey) -> None:
    now = jwt_client.server.app.clock.now()
    claims = {"iss": JWT_ISSUER, "aud": ["other", "conjur"], "exp": int(now) + 300, "workload": {"name": "a"}}
    response = jwt_authenticate(jwt_client, sign_jwt(foreign_key, claims, kid="k1"), service="claim", account="acme")
    assert response.status_code == 200
    token = token_header(response.content)
    assert jwt_client.get("/secrets/acme/variable/apps/secret", headers=token).content == b"s3cr3t"
    # An unknown kid finds no key; a wrong audience fails; a known host not enabled is 403.
    assert (
        jwt_authenticate(
            jwt_client, sign_jwt(foreign_key, claims, kid="k2"), service="claim", account="acme"
        ).status_code
        == 401
    )
    wrong_aud = {**claims, "aud": "someone-else"}
    assert (
        jwt_authenticate(
            jwt_client, sign_jwt(foreign_key, wrong_aud, kid="k1"), service="claim", account="acme"
        ).status_code
        == 401
    )
    other = {**claims, "workload": {"name": "b"}}
    response = jwt_authenticate(jwt_client, sign_jwt(foreign_key, other, kid="k1"), service="claim", account="acme")
    assert (response.status_code, response.content) == (403, b"")


def test_authn_jwt_identity_from_the_url(jwt_client: DevClient, foreign_key: rsa.RSAPrivateKey) -> None:
    now = jwt_client.server.app.clock.now()
    jwt = sign_jwt(foreign_key, {"iss": JWT_ISSUER, "exp": int(now) + 300})
    ok = jwt_authenticate(jwt_client, jwt, service="url", account="acme", host="host/apps/b")
    assert ok.status_code == 200
    assert decode_part(ok.json()["payload"])["sub"] == "host/apps/b"
    # Without an id and without token_app_property there is no identity.
    assert jwt_authenticate(jwt_client, jwt, service="url", account="acme").status_code == 401
    assert jwt_authenticate(jwt_client, jwt, service="url", account="acme", host="host/apps/zzz").status_code == 401
    # Users may not use authn-jwt here.
    assert jwt_authenticate(jwt_client, jwt, service="url", account="acme", host="alice").status_code == 403


def test_authn_jwt_encoded_service_id_and_disabled_service(
    jwt_client: DevClient, foreign_key: rsa.RSAPrivateKey
) -> None:
    now = jwt_client.server.app.clock.now()
    jwt = sign_jwt(foreign_key, {"iss": JWT_ISSUER, "exp": int(now) + 300, "sub": "ci/runner"})
    assert jwt_authenticate(jwt_client, jwt, service="prod%2Fgke", account="acme").status_code == 200
    minted = jwt_client.server.app.conjur.mint_jwt({"sub": "apps/a"}, 300, now)
    assert jwt_authenticate(jwt_client, minted, service="off", account="acme").status_code == 401
    assert jwt_client.get("/authenticators").json()["enabled"] == [
        "authn",
        "authn-jwt/claim",
        "authn-jwt/prod/gke",
        "authn-jwt/url",
    ]


# -- audit ---------------------------------------------------------------------------------------


def test_audit_names_identity_object_and_reason_and_never_a_secret(client: DevClient, server: DevServer) -> None:
    canary = "CANARY-9c1f-never-log-me"
    host = host_auth(client)
    admin = admin_auth(client)
    reason = "airflow-demo_dag-fetch-manual__2026-01-01T00:00:00+00:00"
    assert client.post("/secrets/demo/variable/prod/rotating/password", data=canary, headers=host).status_code == 201
    traced = {**host, "X-Request-Id": reason}
    assert client.get("/secrets/demo/variable/prod%2Frotating%2Fpassword", headers=traced).text == canary
    assert client.get(batch_query("prod/rotating/password", "prod/db/host"), headers=traced).status_code == 200
    assert (
        client.get(batch_query("prod/rotating/password"), headers={**traced, "Accept-Encoding": "base64"}).status_code
        == 200
    )
    client.get("/authn/demo/login", headers=basic("admin", ADMIN_PASSWORD))
    client.get("/authn/demo/login", headers=basic("admin", "wrong-password-canary"))
    client.request("PUT", "/authn/demo/api_key", headers=admin)
    client.admin("POST", "/rotate", json={"target": "conjur:prod/rotating/password", "value": canary + "-2"})
    jwt = server.app.conjur.mint_jwt({"sub": "worker"}, 300, server.app.clock.now())
    jwt_authenticate(client, jwt)

    events = server.app.audit.events()
    retrieve = [e for e in events if e["action"] == "conjur.retrieve"][-1]
    assert (retrieve["identity"], retrieve["object"], retrieve["reason"]) == (
        "host/airflow/worker",
        "prod/rotating/password",
        reason,
    )
    batch = next(e for e in events if e["action"] == "conjur.batch")
    assert batch["object"] == "prod/rotating/password,prod/db/host"
    assert batch["reason"] == reason
    store = next(e for e in events if e["action"] == "conjur.store")
    assert store["identity"] == "host/airflow/worker" and store["reason"] is None
    jwt_event = next(e for e in events if e["action"] == "conjur.authenticate_jwt")
    assert jwt_event["identity"] == "host/airflow/worker" and jwt_event["object"] == "authn-jwt/airflow"

    dumped = json.dumps(events) + (server.state_dir / "audit.jsonl").read_text()
    tokens = [host["Authorization"], admin["Authorization"]]
    for forbidden in [
        canary,
        ADMIN_PASSWORD,
        ADMIN_KEY,
        HOST_KEY,
        "wrong-password-canary",
        jwt,
        *tokens,
        b64(canary),
    ]:
        assert forbidden not in dumped


# -- robustness ----------------------------------------------------------------------------------


def test_bad_input_never_yields_500(client: DevClient, server: DevServer) -> None:
    host = host_auth(client)
    cases: list[tuple[str, str, dict[str, str], bytes]] = [
        ("GET", "/secrets/demo/variable/%", host, b""),
        ("GET", "/secrets/demo/variable/%zz%", host, b""),
        ("GET", "/secrets/demo/variable/%ff%fe%fd", host, b""),
        ("GET", "/secrets/demo/variable/%00%01%1b", host, b""),
        ("GET", "/secrets/demo/variable/" + "a/" * 2000, host, b""),
        ("GET", "/secrets/demo/variable/..", host, b""),
        ("GET", "/secrets/demo/%ff/x", host, b""),
        ("GET", "/secrets/%ff/variable/x", host, b""),
        ("GET", "/secrets?variable_ids=%ff%fe,%00", host, b""),
        ("GET", "/secrets?variable_ids=" + ",".join(["demo:variable:x"] * 500), host, b""),
        ("GET", "/secrets?variable_ids&variable_ids=%", host, b""),
        ("GET", "/secrets?%ff=%fe", host, b""),
        ("GET", "/secrets/demo/variable/prod/db/password?version=" + "9" * 400, host, b""),
        ("GET", "/resources/demo?limit=" + "9" * 400, host, b""),
        ("GET", "/resources/demo?offset=" + "9" * 400 + "&limit=1", host, b""),
        ("GET", "/resources/%ff/variable", host, b""),
        ("GET", "/resources/demo/variable/%ff?check=true&privilege=read", host, b""),
        ("GET", "/resources/demo/variable/x?check=true&privilege=read&role=%ff", host, b""),
        ("GET", "/resources/demo?acting_as=::::", host, b""),
        (
            "POST",
            "/secrets/demo/variable/prod/rotating/password",
            {**host, "Content-Type": "application/json"},
            b"\xff\xfe\x00",
        ),
        (
            "POST",
            "/secrets/demo/variable/prod/rotating/password",
            {**host, "Content-Type": "multipart/form-data; boundary=x"},
            b"--x--",
        ),
        ("GET", "/authn/demo/login", {"Authorization": "Basic " + "A" * 5000}, b""),
        ("GET", "/authn/demo/login", {"Authorization": "Basic ==="}, b""),
        ("GET", "/authn/demo/login", {"Authorization": f"Basic {b64(bytes([0xC3, 0x28, 0x3A, 0xFF]))}"}, b""),
        ("GET", "/authn/%ff/login", {"Authorization": "Basic " + b64("admin:x")}, b""),
        ("POST", "/authn/demo/%ff/authenticate", {}, b"\xff" * 100),
        (
            "POST",
            f"/authn/demo/{HOST_LOGIN}/authenticate",
            {"Content-Type": "application/json"},
            b'{"api_key": 1}',
        ),
        ("POST", f"/authn/demo/{HOST_LOGIN}/authenticate", {"Accept-Encoding": "\u00ff"}, HOST_KEY.encode()),
        (
            "POST",
            "/authn-jwt/airflow/demo/authenticate",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"jwt=%ff%fe.%00.%",
        ),
        (
            "POST",
            "/authn-jwt/airflow/demo/authenticate",
            {},
            b"jwt=" + b"A" * 100 + b"." + b"B" * 100 + b"." + b"C" * 100,
        ),
        ("POST", "/authn-jwt/airflow/demo/authenticate", {}, b"jwt=e30.e30.e30"),
        ("POST", "/authn-jwt/airflow/demo/authenticate", {}, b"jwt=eyJhbGciOiJSUzI1NiJ9.WzFd.AAAA"),
        ("POST", "/authn-jwt/%ff/demo/authenticate", {}, b"jwt=a.b.c"),
        ("POST", "/authn-jwt/airflow/demo/%ff/authenticate", {}, b"jwt=a.b.c"),
        ("PUT", "/authn/demo/api_key?role=%ff:%ff", host, b""),
        ("PUT", "/authn/demo/api_key?role=host:", host, b""),
        ("GET", "/whoami", {"Authorization": 'Token token="' + "A" * 20000 + '"'}, b""),
        ("GET", "/whoami", {"Authorization": 'Token token="' + b64("{" * 5000) + '"'}, b""),
        ("GET", "/whoami", {"Authorization": 'Token token="' + b64("[" * 40000) + '"'}, b""),
        (
            "POST",
            "/authn-jwt/airflow/demo/authenticate",
            {},
            b"jwt=" + base64.urlsafe_b64encode(b"[" * 40000) + b".e30.e30",
        ),
        (
            "GET",
            "/whoami",
            {
                "Authorization": 'Token token="'
                + b64(json.dumps({"protected": 1, "payload": [], "signature": {}}))
                + '"'
            },
            b"",
        ),
        ("GET", "/whoami", {**host, "X-Request-Id": "\x7f" * 300}, b""),
        ("GET", "/", {"Accept": "\u00ff;;;,,,"}, b""),
    ]
    for method, path, headers, body in cases:
        status, _, _ = raw_http(client, method, path, headers, body)
        assert 200 <= status < 500, (method, path[:80], status)
    assert not [e for e in server.app.audit.events() if e["status"] >= 500]


def test_concurrent_reads_during_rotation(client: DevClient, server: DevServer) -> None:
    headers = host_auth(client)
    failures: list[int] = []

    def reader() -> None:
        session = DevClient(server)
        for _ in range(15):
            response = session.get(batch_query("prod/db/password", "prod/db/username"), headers=headers)
            if response.status_code != 200:
                failures.append(response.status_code)
        session.close()

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        server.app.rotate("conjur:prod/db/password")
    for thread in threads:
        thread.join()
    assert failures == []


# -- seed validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conjur", "where"),
    [
        ([], "conjur"),
        ({"acount": "x"}, "conjur"),
        ({"account": "a b"}, "conjur.account"),
        ({"account": "a:b"}, "conjur.account"),
        ({"users": [{"id": ""}]}, "conjur.users[0].id"),
        ({"users": [{"id": "a"}, {"id": "a"}]}, "conjur.users[1].id"),
        ({"users": [{"id": "a", "api_key": "has space"}]}, "conjur.users[0].api_key"),
        ({"users": [{"id": "a", "admin": "yes"}]}, "conjur.users[0].admin"),
        ({"hosts": [{"id": "h", "password": "p"}]}, "conjur.hosts[0]"),
        ({"hosts": "h"}, "conjur.hosts"),
        ({"variables": [{"id": "v", "value": True}]}, "conjur.variables[0].value"),
        ({"variables": [{"id": "v", "value": 1.5}]}, "conjur.variables[0].value"),
        ({"variables": [{"id": "v", "value": ""}]}, "conjur.variables[0].value"),
        ({"variables": [{"id": "v", "values": ["a", None]}]}, "conjur.variables[0].values[1]"),
        ({"variables": [{"id": "v", "value": "a", "values": ["b"]}]}, "conjur.variables[0]"),
        ({"variables": [{"id": "v", "value_base64": "!!"}]}, "conjur.variables[0].value_base64"),
        ({"variables": [{"id": "v", "mime_type": "json"}]}, "conjur.variables[0].mime_type"),
        ({"variables": [{"id": "v\n"}]}, "conjur.variables[0].id"),
        ({"variables": [{"id": "v", "annotations": {"a": 1}}]}, "conjur.variables[0].annotations"),
        (
            {"permits": [{"role": "host:nobody", "privileges": ["read"], "resources": ["x"]}]},
            "conjur.permits[0].role",
        ),
        (
            {"permits": [{"role": "group:g", "privileges": ["read"], "resources": ["x"]}]},
            "conjur.permits[0].role",
        ),
        (
            {
                "hosts": [{"id": "h"}],
                "permits": [{"role": "host:h", "privileges": ["own"], "resources": ["x"]}],
            },
            "conjur.permits[0].privileges",
        ),
        (
            {
                "hosts": [{"id": "h"}],
                "permits": [{"role": "host:h", "privileges": ["read"], "resources": ["x/*"]}],
            },
            "conjur.permits[0].resources[0]",
        ),
        ({"authn_jwt": [{"service_id": "s"}]}, "conjur.authn_jwt[0].issuer"),
        (
            {"authn_jwt": [{"service_id": "s", "issuer": "i", "public_keys": "not a key"}]},
            "conjur.authn_jwt[0].public_keys",
        ),
        (
            {"authn_jwt": [{"service_id": "s", "issuer": "i", "public_keys": {"keys": [{"kty": "EC"}]}}]},
            "conjur.authn_jwt[0].public_keys",
        ),
        (
            {"authn_jwt": [{"service_id": "s", "issuer": "i", "enabled_hosts": ["ghost"]}]},
            "conjur.authn_jwt[0].enabled_hosts[0]",
        ),
        ({"authn_jwt": [{"service_id": "s", "issuer": "i", "colour": "red"}]}, "conjur.authn_jwt[0]"),
    ],
)
def test_seed_errors_name_the_field(conjur: Any, where: str, tmp_path: Path) -> None:
    with pytest.raises(SeedError) as caught:
        ConjurModel.from_seed(conjur, "conjur", state_dir=tmp_path)
    assert caught.value.where == where


def test_seed_errors_never_quote_a_value(tmp_path: Path) -> None:
    with pytest.raises(SeedError) as caught:
        ConjurModel.from_seed(
            {"variables": [{"id": "v", "values": ["CANARY-seed", 2.5]}]}, "conjur", state_dir=tmp_path
        )
    assert "CANARY" not in str(caught.value) and "2.5" not in str(caught.value)


def test_seed_forms(tmp_path: Path) -> None:
    model = ConjurModel.from_seed(
        {
            "account": "acme",
            "hosts": [{"id": "host/x"}],
            "variables": [
                {"id": "n", "value": 5432},
                {"id": "b", "value_base64": base64.b64encode(b"\x00\xff").decode()},
                {"id": "h", "values": [f"v{n}" for n in range(25)] + ["v24"]},
            ],
        },
        "conjur",
        state_dir=tmp_path,
    )
    assert model.account == "acme"
    assert model.role_for_login("host/x") is not None
    assert model.read("n", None) == (b"5432", None)
    assert model.read("b", None)[0] == b"\x00\xff"
    assert model.versions("h") == list(range(6, 26))
    assert not os.path.exists(tmp_path / "jwt-key.pem"), "the JWT key is created on first use only"


def test_demo_seed_loads(tmp_path: Path) -> None:
    from cyberark_ops.devserver.seed import demo_seed

    model = ConjurModel.from_seed(demo_seed()["conjur"], "conjur", state_dir=tmp_path)
    assert model.account == "demo"
    admin = model.role_for_login("admin")
    assert admin is not None and admin.admin
    assert len(model.resources(admin, "variable", "batch")) == 20
