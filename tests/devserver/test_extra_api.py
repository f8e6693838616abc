"""A fourth API registered from outside the dev server package: the toy emulator in ``tests/toyapi``.

Nothing here edits a package file: the API is passed as ``apis={**DEFAULT_APIS, "toy": ToyApi}``,
to ``DevServer`` directly and through the pytest plugin's ``cyberark_devserver_apis`` fixture, and
is exercised over real HTTPS with plain ``requests``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from cyberark_ops.devserver import DEFAULT_APIS, DevApp, DevServer, EmulatedApi, SeedError
from tests.toyapi.emulator import DEFAULT_TOKEN_TTL, ToyApi

TOY_APIS: Mapping[str, EmulatedApi] = {**DEFAULT_APIS, "toy": ToyApi}
TOY_SEED: dict[str, Any] = {
    "toy": {
        "users": {"alice": "alice-key", "bob": "bob-key"},
        "secrets": {"db": {"value": "s3cret", "username": "dbuser"}, "team/api": {"value": "k", "username": "svc"}},
    }
}


class Toy:
    """Plain ``requests`` against one server: the toy API and the admin API."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        info = server.info()
        self.url = info["url"]
        self.admin_token = info["admin_token"]
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = info["ca_cert"]

    def auth(self, user: str = "alice", key: str = "alice-key") -> requests.Response:
        return self.session.post(f"{self.url}/toy/auth", json={"user": user, "key": key}, timeout=10)

    def token(self) -> str:
        response = self.auth()
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def secret(self, name: str, token: str | None) -> requests.Response:
        headers = {"Authorization": f"Toy {token}"} if token is not None else {}
        return self.session.get(f"{self.url}/toy/secrets/{name}", headers=headers, timeout=10)

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return self.session.request(method, f"{self.url}/_dev{path}", headers=headers, timeout=10, **kwargs)


# The pytest plugin's way: override the seed and the APIs for this module.


@pytest.fixture
def cyberark_devserver_seed() -> dict[str, Any]:
    return TOY_SEED


@pytest.fixture
def cyberark_devserver_apis() -> Mapping[str, EmulatedApi]:
    return TOY_APIS


@pytest.fixture
def toy(cyberark_devserver: DevServer) -> Iterator[Toy]:
    client = Toy(cyberark_devserver)
    yield client
    client.session.close()


def assert_toy_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == f"TOY{status}"
    assert isinstance(error["message"], str) and error["message"]


def test_auth_then_fetch(toy: Toy) -> None:
    response = toy.auth()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_in"}
    assert body["expires_in"] == int(DEFAULT_TOKEN_TTL)
    fetched = toy.secret("db", body["token"])
    assert fetched.status_code == 200
    assert fetched.json() == {"name": "db", "value": "s3cret", "username": "dbuser"}


def test_names_are_percent_decoded(toy: Toy) -> None:
    token = toy.token()
    for path in ("team/api", "team%2Fapi"):
        assert toy.secret(path, token).json() == {"name": "team/api", "value": "k", "username": "svc"}


def test_wrong_credentials_and_bad_bodies(toy: Toy) -> None:
    assert_toy_error(toy.auth(key="nope"), 401)
    assert_toy_error(toy.auth(user="mallory"), 401)
    response = toy.session.post(f"{toy.url}/toy/auth", data=b"not json", timeout=10)
    assert_toy_error(response, 400)


def test_bad_token_is_401(toy: Toy) -> None:
    assert_toy_error(toy.secret("db", "not-a-token"), 401)
    assert_toy_error(toy.secret("db", None), 401)
    token = toy.token()
    response = toy.session.get(f"{toy.url}/toy/secrets/db", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert_toy_error(response, 401)


def test_unknown_secret_is_404(toy: Toy) -> None:
    assert_toy_error(toy.secret("missing", toy.token()), 404)


def test_audit_log_names_the_toy_calls(toy: Toy) -> None:
    token = toy.token()
    toy.secret("db", token)
    toy.secret("missing", token)
    events = toy.admin("GET", "/audit", params={"api": "toy"}).json()["events"]
    summary = [(e["action"], e["identity"], e["object"], e["status"], e["outcome"]) for e in events]
    assert summary == [
        ("toy.auth", "alice", None, 200, "success"),
        ("toy.get_secret", "alice", "db", 200, "success"),
        ("toy.get_secret", "alice", "missing", 404, "failure"),
    ]
    assert all("s3cret" not in str(e) and token not in str(e) for e in events)


def test_revocation_through_the_admin_api(toy: Toy) -> None:
    token = toy.token()
    assert toy.secret("db", token).status_code == 200
    revoked = toy.admin("POST", "/tokens/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] >= 1
    assert_toy_error(toy.secret("db", token), 401)
    assert toy.secret("db", toy.token()).status_code == 200


def test_token_ttl_and_expiry(toy: Toy) -> None:
    assert toy.admin("PUT", "/token-ttl", json={"seconds": 60}).status_code == 200
    response = toy.auth()
    assert response.json()["expires_in"] == 60
    token = response.json()["token"]
    assert toy.admin("POST", "/clock", json={"advance": 59}).status_code == 200
    assert toy.secret("db", token).status_code == 200
    assert toy.admin("POST", "/clock", json={"advance": 2}).status_code == 200
    assert_toy_error(toy.secret("db", token), 401)


def test_rotation_through_the_admin_api(toy: Toy) -> None:
    token = toy.token()
    rotated = toy.admin("POST", "/rotate", json={"target": "toy:db", "value": "n3w"})
    assert rotated.status_code == 200
    assert rotated.json() == {"target": "toy:db"}
    assert toy.secret("db", token).json() == {"name": "db", "value": "n3w", "username": "dbuser"}
    assert toy.admin("POST", "/rotate", json={"target": "toy:db"}).status_code == 200
    assert toy.secret("db", token).json()["value"] not in ("n3w", "s3cret")
    missing = toy.admin("POST", "/rotate", json={"target": "toy:nope"})
    assert missing.status_code == 404


def test_scheduled_rotation(toy: Toy) -> None:
    token = toy.token()
    scheduled = toy.admin("POST", "/rotate", json={"target": "toy:db", "every": 30})
    assert scheduled.status_code == 201
    toy.admin("POST", "/clock", json={"advance": 31})
    assert toy.secret("db", token).json()["value"] != "s3cret"


def test_knobs_apply_to_the_new_api(toy: Toy) -> None:
    added = toy.admin("POST", "/faults", json={"endpoint": "toy.get_secret", "status": 503, "count": 1})
    assert added.status_code == 201, added.text
    token = toy.token()
    assert toy.secret("db", token).status_code == 503
    assert toy.secret("db", token).status_code == 200


def test_the_built_in_apis_still_answer(toy: Toy) -> None:
    assert toy.session.get(f"{toy.url}/", headers={"Accept": "application/json"}, timeout=10).status_code == 200
    assert toy.server.info()["conjur_account"] == "conjur"


# Without the fixtures: DevServer and DevApp take the same ``apis`` mapping.


def test_devserver_takes_apis_directly() -> None:
    with DevServer(TOY_SEED, apis=TOY_APIS) as server:
        client = Toy(server)
        assert client.secret("db", client.token()).json()["value"] == "s3cret"
        assert server.app.model("toy", ToyApi).revoke_tokens() == 1
        client.session.close()


def test_devapp_in_process(tmp_path: Path) -> None:
    app = DevApp(TOY_SEED, state_dir=tmp_path, apis=TOY_APIS)
    try:
        assert app.rotate("toy:db", "v2") == {"target": "toy:db"}
        assert app.model("toy", ToyApi).secret("db") is not None
        with pytest.raises(SeedError, match="unknown API 'toi'; use conjur or vault or cloud or toy"):
            app.rotate("toi:db")
    finally:
        app.close()


def test_an_api_only_its_own_registration_knows(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="unknown top-level key"):
        DevApp(TOY_SEED, state_dir=tmp_path)
    app = DevApp(TOY_SEED, state_dir=tmp_path, apis={"toy": ToyApi})
    try:
        assert list(app.models) == ["toy"]
        with pytest.raises(SeedError, match="use toy"):
            app.rotate("conjur:prod/db/password")
    finally:
        app.close()


def test_the_demo_seed_skips_apis_without_one() -> None:
    with DevServer(apis=TOY_APIS) as server:
        client = Toy(server)
        assert_toy_error(client.auth(), 401)
        assert server.info()["conjur_account"] is not None
        client.session.close()
