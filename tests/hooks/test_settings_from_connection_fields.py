"""Connection fields a new user fills in, read into ``ConnectionSettings``: the port with a full URL,
extras that look like secrets or are misspelt, empty form fields, an API key given twice."""

from __future__ import annotations

from typing import Any

import pytest

from cyberark_ops.client import ConfigurationError
from cyberark_ops.settings import ConnectionSettings


def settings(host: str = "https://conjur.example.com", port: int | None = None, **extras: Any) -> ConnectionSettings:
    return ConnectionSettings.from_fields(host=host, port=port, login="host/x", password="k" * 12, extras=extras)


def test_the_port_field_is_used_with_a_full_url() -> None:
    assert settings("https://127.0.0.1", 8443).base_url == "https://127.0.0.1:8443"
    assert settings("https://127.0.0.1:8443/", 8443).base_url == "https://127.0.0.1:8443/"
    assert settings("127.0.0.1", 8443).base_url == "https://127.0.0.1:8443"


def test_a_port_that_contradicts_the_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="port: 9443 contradicts the port in the base URL") as raised:
        settings("https://127.0.0.1:8443", 9443)
    assert raised.value.field == "port"


@pytest.mark.parametrize("key", ["token", "apikey", "private_key", "client_secret", "access_token"])
def test_secret_looking_extras_are_refused_without_quoting_them(key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{key}: this secret does not belong in extras") as raised:
        settings(**{key: "s3cr3t-in-extras"})
    assert "s3cr3t-in-extras" not in str(raised.value)


def test_a_misspelt_extra_names_the_nearest_known_field() -> None:
    with pytest.raises(ConfigurationError, match="ca_bundel: not a known setting; did you mean 'ca_bundle'"):
        settings(ca_bundel="/etc/ssl/ca.pem")


def test_empty_form_fields_and_airflow_prefixed_names_are_accepted() -> None:
    # Airflow's form sends every declared field, empty ones as null or "".
    assert settings(api=None, account="", app_id=None).api == "conjur"
    assert settings(**{"extra__cyberark__account": "myorg"}).extras["account"] == "myorg"


def test_api_key_in_extras_and_the_password_field_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="api_key: both the password field and the api_key extra"):
        settings(api_key="another-key-value")
