"""The seed's server settings: errors that name the offending field, and rotations scheduled from the
seed that follow the dev clock."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from cyberark_ops.devserver import DevServer, SeedError
from tests.conftest import DevClient


def test_seed_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="unknown top-level key"):
        DevServer({"conjurr": {}})
    broken = tmp_path / "seed.yaml"
    broken.write_text("conjur:\n  account: [unclosed\n")
    with pytest.raises(SeedError, match=r"seed\.yaml:\d+"):
        DevServer(broken)
    with pytest.raises(SeedError, match="cannot read seed file"):
        DevServer(tmp_path / "missing.yaml")


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
