"""Hostile admin input: every number the admin API takes, at its extremes, is a 400 naming the field.

JSON carries NaN, Infinity, 1e308 and 400-digit integers, and Python counts ``true`` as 1; before
these checks several of them silenced the whole server, so each case also proves it still answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.errors import SeedError
from cyberark_ops.devserver.knobs import finite_number
from tests.conftest import DevClient

HUGE_INT = "1" + "0" * 400
NOT_FINITE = ["NaN", "Infinity", "-Infinity"]
NOT_A_NUMBER = ['"5"', "true", "false", "[]", "{}"]
# A JSON number text for each extreme; most of them json.dumps cannot even produce.
EXTREMES = [*NOT_FINITE, "-1", "1e308", HUGE_INT, f"-{HUGE_INT}", *NOT_A_NUMBER]


@pytest.fixture(scope="module")
def hostile() -> Iterator[DevClient]:
    server = DevServer().start()
    client = DevClient(server)
    yield client
    client.close()
    server.stop()


def assert_alive(client: DevClient) -> None:
    health = client.get("/_dev/health", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


def send(client: DevClient, method: str, path: str, body: str) -> Any:
    return client.admin(method, path, data=body.encode(), headers={"Content-Type": "application/json"})


def assert_refused(client: DevClient, method: str, path: str, body: str, field: str) -> None:
    response = send(client, method, path, body)
    assert response.status_code == 400, (body, response.status_code, response.text)
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert_alive(client)


# -- the numeric knobs, one extreme at a time ------------------------------------------------------

CASES: list[tuple[str, str, str, str, list[str]]] = [
    # (method, path, body template with {v}, field, extra bad values)
    ("POST", "/clock", '{{"advance": {v}}}', "advance", ["1e12", "3.2e9"]),
    ("PUT", "/latency", '{{"endpoint": "conjur.*", "seconds": {v}}}', "seconds", ["61"]),
    ("PUT", "/token-ttl", '{{"seconds": {v}}}', "seconds", ["0", "0.5", "4e8"]),
    ("PUT", "/rate-limit", '{{"per_second": {v}}}', "per_second", ["1e-320", "2e6"]),
    ("PUT", "/rate-limit", '{{"per_second": 5, "burst": {v}}}', "burst", ["2e6"]),
    ("POST", "/faults", '{{"status": {v}}}', "fault.status", ["99", "600", "503.5"]),
    ("POST", "/faults", '{{"rate": {v}}}', "fault.rate", ["1.0001"]),
    ("POST", "/faults", '{{"count": {v}}}', "fault.count", ["0", "1.5", "2e9"]),
    ("POST", "/faults", '{{"retry_after": {v}}}', "fault.retry_after", ["2.5", "1e6"]),
    ("POST", "/rotate", '{{"target": "conjur:prod/db/password", "every": {v}}}', "every", ["0", "1e-300", "0.5"]),
    (
        "POST",
        "/rotate",
        '{{"target": "conjur:prod/db/password", "every": 60, "change_window": {v}}}',
        "change_window",
        ["4e8"],
    ),
    ("POST", "/rotate", '{{"target": "vault:2_1", "change_window": {v}}}', "change_window", ["4e8"]),
    ("POST", "/conjur/jwt", '{{"claims": {{"sub": "worker"}}, "ttl": {v}}}', "ttl", ["0", "0.5", "4e8"]),
]


def _params() -> list[Any]:
    params = []
    for method, path, template, field, extra in CASES:
        for value in [*EXTREMES, *extra]:
            params.append(pytest.param(method, path, template.format(v=value), field, id=f"{path}:{field}={value}"))
    return params


@pytest.mark.parametrize(("method", "path", "body", "field"), _params())
def test_numeric_extremes_are_refused(hostile: DevClient, method: str, path: str, body: str, field: str) -> None:
    assert_refused(hostile, method, path, body, field)


def test_refused_values_change_nothing(hostile: DevClient) -> None:
    before = hostile.admin("GET", "/knobs").json()
    offset = hostile.server.app.clock.offset
    for value in EXTREMES:
        send(hostile, "POST", "/clock", f'{{"advance": {value}}}')
        send(hostile, "PUT", "/latency", f'{{"endpoint": "*", "seconds": {value}}}')
        send(hostile, "PUT", "/rate-limit", f'{{"per_second": {value}}}')
        send(hostile, "POST", "/rotate", f'{{"target": "conjur:prod/db/password", "every": {value}}}')
    assert hostile.admin("GET", "/knobs").json() == before
    assert hostile.server.app.clock.offset == offset
    assert hostile.get("/").status_code == 200
    assert_alive(hostile)


def test_in_range_values_still_work(make_server: Any) -> None:
    client = DevClient(make_server())
    assert client.admin("POST", "/clock", json={"advance": 3_000_000_000}).status_code == 200
    assert client.admin("PUT", "/latency", json={"endpoint": "nothing.*", "seconds": 60}).status_code == 200
    assert client.admin("PUT", "/token-ttl", json={"seconds": 1}).status_code == 200
    assert client.admin("PUT", "/rate-limit", json={"per_second": 0}).status_code == 200
    assert client.admin("POST", "/faults", json={"endpoint": "nothing", "status": 599, "count": 1}).status_code == 201
    rotation = {"target": "conjur:prod/db/password", "every": 1}
    assert client.admin("POST", "/rotate", json=rotation).status_code == 201
    # A whole-valued float is a whole number.
    assert client.admin("POST", "/faults", json={"endpoint": "nothing", "retry_after": 7.0}).status_code == 201
    assert_alive(client)
    client.close()


def test_clock_cannot_be_pushed_past_what_timestamps_hold(make_server: Any) -> None:
    client = DevClient(make_server())
    step = 3_000_000_000  # just under the per-call bound of 100 years
    statuses = {client.admin("POST", "/clock", json={"advance": step}).status_code for _ in range(12)}
    assert statuses == {200, 400}
    last = client.admin("POST", "/clock", json={"advance": step})
    assert (last.status_code, last.json()["field"]) == (400, "advance")
    assert client.get("/").status_code == 200
    assert_alive(client)
    client.close()


def test_a_long_clock_jump_with_a_one_second_rotation_stays_quick(make_server: Any) -> None:
    client = DevClient(make_server())
    assert client.admin("POST", "/rotate", json={"target": "conjur:prod/db/password", "every": 1}).status_code == 201
    assert client.admin("POST", "/clock", json={"advance": 3_000_000_000}, timeout=20).status_code == 200
    assert_alive(client)
    client.close()


@pytest.mark.parametrize("since", ["NaN", "-1", "1e5", "1.5", "abc", "9" * 5000, "٣", " 1", "1_0"])
def test_audit_since_must_be_a_plain_integer(hostile: DevClient, since: str) -> None:
    response = hostile.admin("GET", "/audit", params={"since": since})
    assert response.status_code == 400
    assert response.json()["field"] == "since"
    assert_alive(hostile)


def test_audit_since_accepts_a_sequence_number(hostile: DevClient) -> None:
    response = hostile.admin("GET", "/audit", params={"since": "0"})
    assert response.status_code == 200
    assert_alive(hostile)


# -- bodies the JSON parser itself chokes on ----------------------------------------------------


@pytest.mark.parametrize("path", ["/latency", "/token-ttl", "/rate-limit"])
def test_deeply_nested_body_is_a_400(hostile: DevClient, path: str) -> None:
    assert_refused(hostile, "PUT", path, "[" * 100_000, "body")


# -- lone surrogates ---------------------------------------------------------------------------

SURROGATE = '"\\ud800"'


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/latency", f'{{"endpoint": {SURROGATE}, "seconds": 1}}'),
        ("POST", "/faults", f'{{"endpoint": {SURROGATE}, "count": 1}}'),
        ("POST", "/faults", f'{{"kind": {SURROGATE}}}'),
        ("POST", "/rotate", f'{{"target": {SURROGATE}}}'),
        ("POST", "/rotate", '{"target": "conjur:\\udfff"}'),
        ("POST", "/rotate", f'{{"target": "vault:{SURROGATE[1:-1]}", "every": 60}}'),
        ("PUT", "/token-ttl", f"{{{SURROGATE}: 1}}"),
        ("POST", "/conjur/jwt", f'{{"claims": {{"sub": {SURROGATE}, {SURROGATE}: {SURROGATE}}}}}'),
        ("POST", "/conjur/jwt", f'{{"claims": {{}}, "ttl": {SURROGATE}}}'),
    ],
)
def test_lone_surrogates_never_crash(hostile: DevClient, method: str, path: str, body: str) -> None:
    response = send(hostile, method, path, body)
    assert response.status_code < 500, response.text
    assert hostile.admin("GET", "/knobs").status_code == 200
    assert hostile.admin("GET", "/audit").status_code == 200
    assert_alive(hostile)
    hostile.admin("DELETE", "/faults")
    hostile.admin("DELETE", "/rotations")
    hostile.admin("PUT", "/latency", data=f'{{"endpoint": {SURROGATE}, "seconds": 0}}'.encode())


def test_lone_surrogate_rotation_value_is_refused(hostile: DevClient) -> None:
    body = f'{{"target": "conjur:prod/db/password", "value": {SURROGATE}}}'
    assert_refused(hostile, "POST", "/rotate", body, "value")


# -- the helper itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), True, False, None, "1", [1], 10**400, -1, 11, 1e308],
)
def test_finite_number_refuses(value: Any) -> None:
    with pytest.raises(SeedError) as caught:
        finite_number(value, "knob", low=0, high=10)
    assert caught.value.where == "knob"


def test_finite_number_integers() -> None:
    assert finite_number(3.0, "n", low=0, high=10, integer=True) == 3
    assert isinstance(finite_number(3.0, "n", low=0, high=10, integer=True), int)
    assert finite_number(3, "n", low=0, high=10) == 3.0
    with pytest.raises(SeedError):
        finite_number(2.5, "n", low=0, high=10, integer=True)
