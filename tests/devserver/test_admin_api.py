"""The admin API under ``/_dev``: the admin token (and health without it), the clock that only moves
forward, rotations on demand that never return the value."""

from __future__ import annotations

from tests.conftest import DevClient


def test_admin_api_requires_the_admin_token(client: DevClient) -> None:
    assert client.get("/_dev/knobs").status_code == 401
    wrong = client.get("/_dev/knobs", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert client.info["admin_token"] not in wrong.text
    assert client.admin("GET", "/knobs").status_code == 200


def test_health_needs_no_token(client: DevClient) -> None:
    assert client.get("/_dev/health").json() == {"status": "ok"}


def test_clock_only_moves_forward(client: DevClient) -> None:
    backwards = client.admin("POST", "/clock", json={"advance": -5})
    assert backwards.status_code == 400
    assert backwards.json()["field"] == "advance"
    before = client.server.app.clock.offset
    response = client.admin("POST", "/clock", json={"advance": 60})
    assert response.status_code == 200
    assert client.server.app.clock.offset == before + 60


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
