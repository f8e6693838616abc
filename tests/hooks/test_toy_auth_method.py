"""A toy auth method for the built-in Conjur API, registered from the test tree through the API
table (``tests/toyapi/auth_method.py``: one strategy, one registration), is offered by the
connection form, checked by the doctor, and fetches through ``CyberArkHook`` and the secrets
backend against the real dev server, with no package file naming it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyberark_ops import doctor, scrub
from cyberark_ops.apis import api_spec
from cyberark_ops.client import ConfigurationError
from cyberark_ops.hooks.cyberark import CyberArkHook
from cyberark_ops.provider_info import AUTH_METHOD_NAMES, provider_info
from cyberark_ops.secrets import CyberArkSecretsBackend
from cyberark_ops.settings import ConnectionSettings
from tests.hooks.conftest import FAST_EXTRAS, Connections
from tests.toyapi.auth_method import METHOD, REMEDY, register_toy_password, unregister_toy_password

ROOT = Path(__file__).resolve().parents[2]
ADMIN_USER = "admin"
ADMIN_PASSWORD = "Demo-Admin-Passw0rd!"  # the default seed's Conjur admin user
DB_PASSWORD = "Demo-PG-Passw0rd!"


@pytest.fixture
def toy_password(conns: Connections) -> Iterator[Connections]:
    register_toy_password()
    yield conns
    unregister_toy_password()


def _form_choices() -> list[str | None]:
    (conn_type,) = provider_info()["connection-types"]
    choices: list[str | None] = conn_type["conn-fields"]["auth_method"]["schema"]["enum"]
    return choices


def _settings(conns: Connections, password: str) -> ConnectionSettings:
    return ConnectionSettings.from_fields(
        host=conns.info["url"],
        login=ADMIN_USER,
        password=password,
        extras={
            "api": "conjur",
            "account": conns.info["conjur_account"],
            "auth_method": METHOD,
            "ca_bundle": conns.info["ca_cert"],
            **FAST_EXTRAS,
        },
    )


def test_the_connection_form_offers_the_registered_method(toy_password: Connections) -> None:
    choices = _form_choices()
    assert METHOD in choices and choices[-1] is None
    assert METHOD not in AUTH_METHOD_NAMES  # the built-in list stays what the package ships
    unregister_toy_password()
    assert METHOD not in _form_choices()


def test_the_doctor_reports_and_advises_on_the_method(toy_password: Connections) -> None:
    report = doctor.run(lambda: _settings(toy_password, ADMIN_PASSWORD), source="test", paths=["prod/db/password"])
    checks = {check.name: check for check in report.checks}
    assert checks["configuration"].detail.endswith(f"auth {METHOD}")
    assert checks["authentication"].status == doctor.PASS
    assert checks["authentication"].detail == f"authenticated to Conjur as {ADMIN_USER!r}"
    assert checks["read prod/db/password"].status == doctor.PASS
    assert DB_PASSWORD not in doctor.render_json(report) and ADMIN_PASSWORD not in doctor.render_json(report)

    failed = doctor.run(lambda: _settings(toy_password, "Wrong-Passw0rd!"), source="test")
    authentication = {check.name: check for check in failed.checks}["authentication"]
    assert authentication.status == doctor.FAIL
    assert authentication.remedy == REMEDY  # the method's own advice, not Conjur's API-key advice


def test_the_hook_fetches_with_the_method(toy_password: Connections) -> None:
    conn_id = toy_password.conjur(
        "cyberark_toy_password", login=ADMIN_USER, password=ADMIN_PASSWORD, auth_method=METHOD
    )
    hook = CyberArkHook(conn_id, reason="toy auth method")
    assert hook.get_secret("prod/db/password") == DB_PASSWORD
    assert hook.test_connection() == (True, f"Authenticated to Conjur as {ADMIN_USER!r}.")
    hook.close()
    actions = [event["action"] for event in toy_password.calls("conjur")]
    assert actions[:2] == ["conjur.login", "conjur.authenticate"]  # password -> API key -> token


def test_the_secrets_backend_fetches_with_the_method(toy_password: Connections, tmp_path: Path) -> None:
    password_file = tmp_path / "conjur-password"
    password_file.write_text(ADMIN_PASSWORD)
    backend = CyberArkSecretsBackend(
        url=toy_password.info["url"],
        ca_bundle=toy_password.info["ca_cert"],
        account=toy_password.info["conjur_account"],
        login=ADMIN_USER,
        auth_method=METHOD,
        toy_password_file=str(password_file),  # the method's own field: known to the kwargs check
        variables_path="prod/db/{variable}",
    )
    assert backend.get_variable("password") == DB_PASSWORD
    assert backend.get_variable("missing") is None


def test_the_methods_secret_field_is_masked_and_refused_inline_in_backend_kwargs(toy_password: Connections) -> None:
    conn_id = toy_password.conjur(
        "cyberark_toy_inline", login=ADMIN_USER, password=None, auth_method=METHOD, toy_password=ADMIN_PASSWORD
    )
    hook = CyberArkHook(conn_id)
    assert hook.get_secret("prod/db/password") == DB_PASSWORD
    assert scrub.scrub(f"logged {ADMIN_PASSWORD}") == "logged ***", "the declared secret field was not masked"
    with pytest.raises(ConfigurationError, match=r"toy_password: .*name a file \(toy_password_file\)") as raised:
        ConnectionSettings.from_backend_kwargs(
            {"url": toy_password.info["url"], "login": ADMIN_USER, "auth_method": METHOD, "toy_password": "x" * 12}
        )
    assert "x" * 12 not in str(raised.value)


def test_without_the_registration_the_method_and_its_field_are_refused(toy_password: Connections) -> None:
    unregister_toy_password()
    spec = api_spec("conjur")
    assert spec is not None and METHOD not in spec.auth_names
    with pytest.raises(ConfigurationError, match="toy_password_file: not a known setting"):
        ConnectionSettings.from_fields(
            host="https://conjur.example.com", login="u", password="p", extras={"toy_password_file": "/x"}
        )


def test_no_package_file_names_the_toy_auth_method() -> None:
    tracked = subprocess.run(
        ["git", "grep", "-il", "toy_password\\|ConjurPasswordAuth", "--", "cyberark_ops"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tracked.stdout == ""
