"""The dev server's shared machinery: admin API, knobs, audit log, TLS, robustness, concurrency."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from cyberark_ops.devserver import DevServer, SeedError
from tests.conftest import DevClient

# The Conjur status page is the cheapest unauthenticated endpoint to aim knobs at.
STATUS_PATH = "/"


def test_admin_api_requires_the_admin_token(client: DevClient) -> None:
    assert client.get("/_dev/knobs").status_code == 401
    wrong = client.get("/_dev/knobs", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert client.info["admin_token"] not in wrong.text
    assert client.admin("GET", "/knobs").status_code == 200


def test_health_needs_no_token(client: DevClient) -> None:
    assert client.get("/_dev/health").json() == {"status": "ok"}


def test_unknown_path_is_404_and_wrong_method_is_405(client: DevClient) -> None:
    assert client.get("/no/such/thing").status_code == 404
    assert client.request("DELETE", "/_dev/health").status_code == 405


def test_status_fault_with_count_removes_itself(client: DevClient) -> None:
    added = client.admin("POST", "/faults", json={"endpoint": "conjur.*", "status": 503, "count": 2})
    assert added.status_code == 201
    statuses = [client.get(STATUS_PATH).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    events = client.server.app.audit.events(fault="status")
    assert len(events) == 2


def test_fault_with_retry_after_sets_the_header(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "*", "status": 429, "retry_after": 7, "count": 1})
    response = client.get(STATUS_PATH)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_fault_rate_zero_never_fires(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "*", "status": 500, "rate": 0.0})
    assert all(client.get(STATUS_PATH).status_code == 200 for _ in range(5))


def test_drop_fault_closes_the_connection(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "conjur.*", "kind": "drop", "count": 1})
    with pytest.raises(requests.ConnectionError):
        client.get(STATUS_PATH)
    assert client.get(STATUS_PATH).status_code == 200


def test_malformed_and_content_type_faults(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "conjur.*", "kind": "malformed", "count": 1})
    malformed = client.get(STATUS_PATH, headers={"Accept": "application/json"})
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    client.admin("POST", "/faults", json={"endpoint": "conjur.*", "kind": "content_type", "count": 1})
    html = client.get(STATUS_PATH, headers={"Accept": "application/json"})
    assert html.headers["Content-Type"].startswith("text/html")


def test_bad_fault_definitions_are_rejected_with_the_field(client: DevClient) -> None:
    response = client.admin("POST", "/faults", json={"kind": "explode"})
    assert response.status_code == 400
    assert response.json()["field"] == "fault.kind"
    broken = client.admin("POST", "/faults", data=b"{nope")
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["error"]


def test_latency_knob_delays_answers(client: DevClient) -> None:
    client.admin("PUT", "/latency", json={"endpoint": "conjur.*", "seconds": 1.5})
    with pytest.raises(requests.ReadTimeout):
        client.get(STATUS_PATH, timeout=(5, 0.3))
    client.admin("PUT", "/latency", json={"endpoint": "conjur.*", "seconds": 0})
    assert client.get(STATUS_PATH, timeout=(5, 0.3)).status_code == 200


def test_rate_limit_answers_429_with_retry_after(client: DevClient) -> None:
    client.admin("PUT", "/rate-limit", json={"per_second": 2, "burst": 3})
    statuses = [client.get(STATUS_PATH) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert len([r for r in statuses if r.status_code == 200]) >= 3
    assert limited, "eight requests in a burst of three at 2/s must hit the limit"
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert client.server.app.audit.events(fault="rate_limit")
    # The admin API is never rate limited, so a test can always lift the limit.
    assert client.admin("PUT", "/rate-limit", json={"per_second": None}).status_code == 200
    assert client.get(STATUS_PATH).status_code == 200


def test_rate_limit_refills_with_the_clock(client: DevClient) -> None:
    client.admin("PUT", "/rate-limit", json={"per_second": 1, "burst": 1})
    assert client.get(STATUS_PATH).status_code == 200
    assert client.get(STATUS_PATH).status_code == 429
    client.admin("POST", "/clock", json={"advance": 1.5})
    assert client.get(STATUS_PATH).status_code == 200


def test_clock_only_moves_forward(client: DevClient) -> None:
    backwards = client.admin("POST", "/clock", json={"advance": -5})
    assert backwards.status_code == 400
    assert backwards.json()["field"] == "advance"
    before = client.server.app.clock.offset
    response = client.admin("POST", "/clock", json={"advance": 60})
    assert response.status_code == 200
    assert client.server.app.clock.offset == before + 60


def test_audit_log_is_served_and_written_as_json_lines(client: DevClient) -> None:
    client.get(STATUS_PATH, headers={"X-Request-Id": "audit-probe-1"})
    client.get("/no/such/thing")
    served = client.admin("GET", "/audit").json()
    actions = [e["action"] for e in served["events"]]
    assert "unknown" in actions
    assert served["last_seq"] >= 2
    since = client.admin("GET", f"/audit?since={served['last_seq']}").json()["events"]
    assert [e["action"] for e in since] == ["dev.audit"]
    lines = Path(client.info["audit_log"]).read_text().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert {"seq", "time", "api", "action", "identity", "object", "reason", "status", "outcome"} <= set(parsed[0])
    assert client.admin("DELETE", "/audit").status_code == 200
    # Clearing keeps the sequence going, so "since" cursors held by tests stay valid.
    assert [e["action"] for e in client.server.app.audit.events()] == ["dev.audit_clear"]
    assert client.admin("GET", "/audit").json()["last_seq"] > served["last_seq"]


def test_admin_token_never_reaches_the_audit_log(client: DevClient) -> None:
    client.admin("GET", "/knobs")
    client.get("/_dev/knobs", headers={"Authorization": "Bearer guessed-token-123"})
    text = Path(client.info["audit_log"]).read_text()
    assert client.info["admin_token"] not in text
    assert "guessed-token-123" not in text


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


def test_tls_is_verified_with_the_dev_ca_and_client_certs_are_optional(client: DevClient) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(client.url + STATUS_PATH, verify=True, timeout=5)
    assert client.get(STATUS_PATH).status_code == 200
    assert client.with_client_cert().get(STATUS_PATH).status_code == 200


def test_certificates_are_reused_across_restarts(tmp_path: Path, make_server: Callable[..., DevServer]) -> None:
    first = make_server(state_dir=tmp_path)
    ca = Path(first.info()["ca_cert"]).read_bytes()
    first.stop()
    second = make_server(state_dir=tmp_path)
    assert Path(second.info()["ca_cert"]).read_bytes() == ca


def test_plain_http_mode(make_server: Callable[..., DevServer]) -> None:
    server = make_server(tls=False)
    assert server.url.startswith("http://")
    assert server.info()["ca_cert"] is None
    assert requests.get(server.url + STATUS_PATH, timeout=5).status_code == 200


def test_non_loopback_host_is_refused() -> None:
    with pytest.raises(SeedError, match="loopback"):
        DevServer(host="0.0.0.0")


def test_seed_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="unknown top-level key"):
        DevServer({"conjurr": {}})
    broken = tmp_path / "seed.yaml"
    broken.write_text("conjur:\n  account: [unclosed\n")
    with pytest.raises(SeedError, match=r"seed\.yaml:\d+"):
        DevServer(broken)
    with pytest.raises(SeedError, match="cannot read seed file"):
        DevServer(tmp_path / "missing.yaml")


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


def test_scheduled_rotation_from_the_seed_follows_the_clock(make_server: Callable[..., DevServer]) -> None:
    seed = {
        "conjur": {
            "account": "acme",
            "hosts": [{"id": "etl", "api_key": "etl-api-key-000000000000000000000000000000000000000"}],
            "variables": [{"id": "db/password", "value": "first-value"}],
            "permits": [{"role": "host:etl", "privileges": ["read", "execute"], "resources": ["db/password"]}],
        },
        "devserver": {"rotations": [{"target": "conjur:db/password", "every": 3600}]},
    }
    server = make_server(seed)
    dev = DevClient(server)

    def auth() -> dict[str, str]:
        # Jumping the clock by hours also expires every 8-minute token: authenticate each time.
        token = dev.post("/authn/acme/host%2Fetl/authenticate", data=seed["conjur"]["hosts"][0]["api_key"])
        assert token.status_code == 200
        return {"Authorization": 'Token token="' + base64.b64encode(token.content).decode() + '"'}

    def current(query: str = "") -> requests.Response:
        return dev.get("/secrets/acme/variable/db%2Fpassword" + query, headers=auth())

    assert current().text == "first-value"
    server.app.clock.advance(3599)
    assert current().text == "first-value"
    server.app.clock.advance(2)
    rotated = current().text
    assert rotated != "first-value"
    # Two more periods pass at once: both rotations happen, the old versions stay readable.
    server.app.clock.advance(7200)
    assert current().text not in ("first-value", rotated)
    assert current("?version=1").text == "first-value"
    assert current("?version=2").text == rotated
    assert current("?version=5").status_code == 404
    knobs = dev.admin("GET", "/knobs").json()
    assert knobs["rotations"][0]["target"] == "conjur:db/password"
    assert dev.admin("DELETE", "/rotations").json() == {"rotations": []}
    dev.close()


def test_admin_rotation_never_returns_the_value(client: DevClient) -> None:
    response = client.admin(
        "POST", "/rotate", json={"target": "conjur:prod/rotating/password", "value": "n3w-v4lue-xyz"}
    )
    assert response.status_code == 200
    assert "n3w-v4lue-xyz" not in response.text
    assert client.admin("POST", "/rotate", json={"target": "conjur:no/such/var"}).status_code == 404
    bad = client.admin("POST", "/rotate", json={"target": "nowhere:x"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "target"
