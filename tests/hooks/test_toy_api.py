"""A fourth API end to end: a toy client and emulator from the test tree, fetched through
``CyberArkHook`` and the secrets backend, registered only through the package's tables."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cyberark_ops.apis import api_names
from cyberark_ops.client import NotFound
from cyberark_ops.devserver import DEFAULT_APIS, DevServer
from cyberark_ops.hooks.cyberark import CyberArkHook
from cyberark_ops.secrets import CyberArkSecretsBackend
from tests.hooks.conftest import Connections
from tests.toyapi.client import ToyRef
from tests.toyapi.emulator import ToyApi
from tests.toyapi.registration import register_toy, unregister_toy

ROOT = Path(__file__).resolve().parents[2]
SEED = {
    "toy": {
        "users": {"etl": "toy-key-0123456789"},
        "secrets": {"warehouse": {"value": "Toy-W4rehouse-Secret", "username": "wh_user"}},
    }
}


@pytest.fixture
def toy(make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    register_toy()
    server = make_server(SEED, apis={**DEFAULT_APIS, "toy": ToyApi})
    yield Connections(server, monkeypatch)
    unregister_toy()


def test_the_hook_fetches_from_a_registered_fourth_api(toy: Connections) -> None:
    assert "toy" in api_names()
    conn_id = toy.add("cyberark_toy", login="etl", password="toy-key-0123456789", api="toy")
    hook = CyberArkHook(conn_id, reason="toy run")
    assert hook.get_secret("warehouse") == "Toy-W4rehouse-Secret"
    credential = hook.get_credential("toy:warehouse")
    assert (credential.username, credential.secret) == ("wh_user", "Toy-W4rehouse-Secret")
    assert hook.get_secret(ToyRef("warehouse")) == "Toy-W4rehouse-Secret"  # a typed reference too
    assert hook.test_connection() == (True, "Authenticated to Toy as 'etl'.")
    with pytest.raises(NotFound, match="Check the secret's name"):
        hook.get_secret("missing")
    actions = [event["action"] for event in toy.calls("toy")]
    assert actions.count("toy.auth") == 1  # the Test button's client reuses the process token cache
    assert actions.count("toy.get_secret") == 4
    hook.close()


def test_the_secrets_backend_serves_the_fourth_api_too(toy: Connections, tmp_path: Path) -> None:
    key_file = tmp_path / "toy-key"
    key_file.write_text("toy-key-0123456789")
    backend = CyberArkSecretsBackend(
        url=toy.info["url"],
        ca_bundle=toy.info["ca_cert"],
        api="toy",
        login="etl",
        password_file=str(key_file),
        variables_path="toy:{variable}",
        toy_realm="main",  # an extra of the registered API: known to the backend's kwargs check
    )
    assert backend.get_variable("warehouse") == "Toy-W4rehouse-Secret"
    assert backend.get_variable("unknown") is None


def test_an_unregistered_api_is_refused_with_the_registered_names(conns: Connections) -> None:
    conn_id = conns.add("cyberark_toy", login="etl", password="k" * 10, api="toy")
    ok, message = CyberArkHook(conn_id).test_connection()
    assert not ok
    assert "'toy' is not one of conjur, ccp, pvwa, privilege-cloud" in message


def test_no_package_file_names_the_toy_api() -> None:
    tracked = subprocess.run(
        ["git", "grep", "-il", "toy", "--", "cyberark_ops"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert tracked.stdout == ""
