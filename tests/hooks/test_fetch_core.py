"""The fetch core on its own: no Airflow connection, settings from a secrets backend's kwargs."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops.apis import BUILTIN_APIS, api_names, api_spec
from cyberark_ops.client import ConfigurationError, ConjurRef, CyberArkError
from cyberark_ops.fetch import Fetcher
from cyberark_ops.provider_info import CONN_FIELDS
from cyberark_ops.settings import ConnectionSettings
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN
from tests.hooks.conftest import FAST_EXTRAS, Connections


def backend_kwargs(conns: Connections, **extra: Any) -> dict[str, Any]:
    info = conns.info
    return {
        "url": info["url"],
        "login": HOST_LOGIN,
        "account": info["conjur_account"],
        "ca_bundle": info["ca_cert"],
        **FAST_EXTRAS,
        **extra,
    }


def test_a_fetcher_from_backend_kwargs_reads_the_api_key_from_a_file(conns: Connections, tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(HOST_API_KEY + "\n")
    settings = ConnectionSettings.from_backend_kwargs(
        backend_kwargs(conns, api_key_file=str(key_file), connections_path="airflow/{conn_id}"),
        reserved=["connections_path"],
    )
    fetcher = Fetcher(settings, name="the secrets backend")
    try:
        assert fetcher.get_secret("prod/db/password")
        assert fetcher.get_secrets(["prod/db/password", ConjurRef("prod/db/username")]).keys() == {
            "prod/db/password",
            "conjur:prod/db/username",
        }
    finally:
        fetcher.close()
    actions = [event["action"] for event in conns.calls("conjur")]
    assert actions.count("conjur.authenticate") == 1


def test_backend_kwargs_read_the_api_key_from_an_environment_variable(
    conns: Connections, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_CYBERARK_KEY", HOST_API_KEY)
    settings = ConnectionSettings.from_backend_kwargs(backend_kwargs(conns, api_key_env="TEST_CYBERARK_KEY"))
    fetcher = Fetcher(settings, name="the secrets backend")
    assert fetcher.get_secret("conjur:prod/db/password")
    fetcher.close()
    monkeypatch.delenv("TEST_CYBERARK_KEY")
    with pytest.raises(ConfigurationError, match=r"TEST_CYBERARK_KEY.*not set") as raised:
        Fetcher(settings, name="the secrets backend").get_secret("prod/db/password")
    assert raised.value.field == "api_key_env"


@pytest.mark.parametrize("key", ["api_key", "password", "jwt_token", "client_secret", "client_key_password"])
def test_backend_kwargs_refuse_an_inline_secret_without_quoting_it(conns: Connections, key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{key}: a secret may not be written inline") as raised:
        ConnectionSettings.from_backend_kwargs(backend_kwargs(conns, **{key: "s3cr3t-canary-value"}))
    assert "s3cr3t-canary-value" not in str(raised.value)
    assert "backend_kwargs" in str(raised.value)


def test_backend_kwargs_name_the_nearest_setting_for_a_typo(conns: Connections) -> None:
    with pytest.raises(ConfigurationError, match="ca_bundel: not a known setting; did you mean 'ca_bundle'"):
        ConnectionSettings.from_backend_kwargs({**backend_kwargs(conns), "ca_bundel": "x"})


def test_api_kind_is_not_an_alias_of_api(conns: Connections) -> None:
    with pytest.raises(ConfigurationError, match="api_kind: not a known setting"):
        ConnectionSettings.from_backend_kwargs({**backend_kwargs(conns), "api_kind": "conjur"})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api": "conjur"}, "url"),
        ({"url": "https://x", "api": "vaultx"}, "api"),
        ({"url": "https://x", "api": 3}, "api"),
        ({"url": "https://x", "login": ["a"]}, "login"),
        ({"url": "https://x", "rate_limit_per_second": float("nan")}, "rate_limit_per_second"),
        ({"url": "https://x", "deadline": "soon"}, "deadline"),
        ({"url": "https://x", "auth_method": "kerberos"}, "auth_method"),
    ],
)
def test_bad_backend_kwargs_are_a_configuration_error_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ConnectionSettings.from_backend_kwargs(kwargs)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"CyberArk secrets backend: backend_kwargs: {field}: ")


def test_backend_kwargs_must_be_an_object() -> None:
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        ConnectionSettings.from_backend_kwargs(json.loads("[1, 2]"))  # type: ignore[arg-type]


def test_a_fetcher_refuses_pickling(conns: Connections) -> None:
    settings = ConnectionSettings.from_fields(
        host=conns.info["url"], login=HOST_LOGIN, password=HOST_API_KEY, extras={"ca_bundle": conns.info["ca_cert"]}
    )
    fetcher = Fetcher(settings, name="x")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(fetcher)
    assert HOST_API_KEY not in repr(fetcher)


def test_one_table_names_the_apis_everywhere() -> None:
    assert BUILTIN_APIS == ("conjur", "ccp", "pvwa", "privilege-cloud")
    assert api_names()[: len(BUILTIN_APIS)] == BUILTIN_APIS
    assert CONN_FIELDS["api"]["schema"]["enum"] == [*BUILTIN_APIS, None]
    pvwa = api_spec("pvwa")
    assert pvwa is not None
    assert pvwa.auth_names == ("cyberark", "ldap", "radius", "windows")
    with pytest.raises(ConfigurationError, match="'kerberos' is not one of cyberark, ldap, radius, windows for PVWA"):
        ConnectionSettings.from_fields(
            host="https://pvwa", login="u", password="p", extras={"api": "pvwa", "auth_method": "kerberos"}
        )


def test_the_api_table_and_provider_info_import_neither_airflow_nor_requests() -> None:
    """Of the client layer only its package (lazy: no module) and the PVWA logon types' module."""
    code = (
        "import sys, cyberark_ops.apis, cyberark_ops.provider_info; "
        "print(sorted(m for m in sys.modules if m.startswith(('airflow', 'requests', 'cyberark_ops.client'))))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "['cyberark_ops.client', 'cyberark_ops.client.logon_types']"


def test_a_connection_sets_how_long_ccp_waits_out_a_password_change(conns: Connections) -> None:
    """``PasswordChangeInProgress`` tells users to raise password_change_retries: a connection can."""
    from cyberark_ops.client import PasswordChangeInProgress
    from cyberark_ops.hooks.cyberark import CyberArkHook

    conns.server.app.rotate("vault:2_1", None, change_window=3600)
    conn_id = conns.ccp(password_change_retries=2, password_change_wait=0.01)
    with pytest.raises(PasswordChangeInProgress, match=r"after 2 wait\(s\) of 0\.01s.*Raise password_change_retries"):
        CyberArkHook(conn_id).get_secret("ccp:Safe=DB-Prod;Object=pg-prod")
    assert [e["action"] for e in conns.calls("ccp")] == ["ccp.get_password"] * 3
    with pytest.raises(ConfigurationError, match="password_change_wait"):
        CyberArkHook(conns.ccp("bad_ccp", password_change_wait="soon")).get_secret("ccp:Safe=DB-Prod;Object=pg-prod")


@pytest.mark.parametrize("batch", [False, True])
def test_a_failed_logon_names_what_the_task_was_fetching(conns: Connections, batch: bool) -> None:
    """The logon fails before any object is asked for; the message still names the reference."""
    from cyberark_ops.hooks.cyberark import CyberArkHook

    hook = CyberArkHook(conns.conjur(password="not-the-api-key"))
    with pytest.raises(CyberArkError) as raised:
        if batch:
            hook.get_secrets(["prod/db/password", "prod/db/username"])
        else:
            hook.get_secret("prod/db/password")
    message = str(raised.value)
    assert message.startswith("Conjur authenticate for login 'host/airflow/worker'")
    assert "[while fetching conjur:prod/db/password" in message
    assert ("conjur:prod/db/username" in message) is batch
    assert raised.value.args == (message,)


def test_a_settings_problem_is_worded_for_the_backend_without_rewriting_its_text() -> None:
    """One error factory: the problem is kept apart from the connection's wording and reworded as
    it is; only the client layer's ``field: problem`` text is read back."""
    from cyberark_ops.settings import as_backend_error, backend_error, settings_error

    problem = "CyberArk connection: login: is quoted from the form"
    worded = as_backend_error(settings_error("login", problem))
    assert str(worded) == str(backend_error("login", problem))
    assert str(worded) == f"CyberArk secrets backend: backend_kwargs: login: {problem}"
    client_layer = ConfigurationError("token_file: give exactly one", field="token_file")
    expected = "CyberArk secrets backend: backend_kwargs: token_file: give exactly one"
    assert str(as_backend_error(client_layer)) == expected
