"""The API table is the one place that knows APIs and auth methods: what reads it sees what it says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cyberark_ops.apis import (
    BUILTIN_APIS,
    PVWA_LOGON_TYPES,
    ApiSpec,
    AuthMethod,
    api_spec,
    register_api,
    unregister_api,
)
from cyberark_ops.client import ConfigurationError
from cyberark_ops.client.refs import has_scheme, parse_ref
from cyberark_ops.settings import backend_fields, connection_fields

# Every setting the connection and the backend accepted when settings listed them by hand.
FORMER_FIELDS = {
    "api", "auth_method", "account", "cloud", "api_key", "api_key_file", "api_key_env",
    "password_file", "password_env", "jwt_service_id", "jwt_token_path", "jwt_token", "access_token_path",
    "app_id", "service_path", "fail_on_password_change", "password_change_retries", "password_change_wait",
    "connection_timeout", "identity_url", "client_key_password", "verify", "allow_insecure_http",
    "rate_limit_per_second", "ca_bundle", "client_cert", "client_key", "connect_timeout", "read_timeout",
    "max_retries", "deadline", "backoff_base", "backoff_max",
}  # fmt: skip
# Conjur's cloud authenticators (authn-iam, authn-azure, authn-gcp) added these.
CLOUD_FIELDS = {"service_id", "aws_region", "aws_profile", "aws_sts_url", "azure_client_id", "metadata_url"}
# PVWA / Privilege Cloud extra_fields: exclusive accounts' check-in and tickets.
RETRIEVE_FIELDS = {"check_in", "ticketing_system", "ticket_id"}


def test_the_fields_the_table_declares_are_the_fields_settings_accept() -> None:
    assert set(backend_fields()) == FORMER_FIELDS | CLOUD_FIELDS | RETRIEVE_FIELDS | {"url", "login"}
    assert set(connection_fields()) == FORMER_FIELDS | CLOUD_FIELDS | RETRIEVE_FIELDS


def test_each_auth_method_declares_the_extras_it_reads() -> None:
    conjur, pvwa, cloud = api_spec("conjur"), api_spec("pvwa"), api_spec("privilege-cloud")
    assert conjur is not None and pvwa is not None and cloud is not None
    jwt = conjur.auth_method("jwt")
    assert jwt is not None and jwt.fields == ("jwt_service_id", "jwt_token_path", "jwt_token")
    assert "identity_url" in cloud.fields and "identity_url" not in pvwa.fields
    assert conjur.extra_fields == ("account", "cloud")


def test_pvwas_logon_types_are_one_auth_method_each() -> None:
    spec = api_spec("pvwa")
    assert spec is not None and spec.auth_names == tuple(PVWA_LOGON_TYPES)


def test_reading_the_auth_method_names_imports_no_client_layer() -> None:
    code = (
        "import sys; from cyberark_ops.provider_info import provider_info; provider_info();"
        "names = ('requests', 'cyberark_ops.client.auth', 'cyberark_ops.builders');"
        "print(sorted(m for m in names if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_apis_reference_parser_comes_and_goes_with_its_registration() -> None:
    def parse_memo(reference: str, rest: str) -> object:
        return ("memo", rest)

    spec = ApiSpec(
        name="memo",
        label="Memo",
        ref_scheme="memo",
        ref_types=tuple,
        auth_methods=(AuthMethod("none", "nothing", lambda settings, **_: None),),
        check=lambda client, settings: "ok",
        ref_parser=parse_memo,
    )
    register_api(spec)
    try:
        assert has_scheme("memo:x") and parse_ref("memo:x") == ("memo", "x")
        with pytest.raises(ConfigurationError, match=r"use conjur, ccp, pvwa, privilege-cloud or memo$"):
            parse_ref("other:x")  # a refusal names the registered schemes too
    finally:
        unregister_api("memo")
    assert not has_scheme("memo:x")
    with pytest.raises(ConfigurationError, match="unknown scheme 'memo'"):
        parse_ref("memo:x")


def test_builtin_schemes_cannot_be_taken_or_dropped() -> None:
    from cyberark_ops.client.refs import register_scheme, unregister_scheme

    with pytest.raises(ConfigurationError, match="taken"):
        register_scheme("conjur", lambda reference, rest: None)
    unregister_scheme("pvwa")
    assert str(parse_ref("pvwa:Safe/acct")) == "pvwa:Safe/acct"
    assert BUILTIN_APIS == ("conjur", "ccp", "pvwa", "privilege-cloud")


def test_an_auth_method_is_a_builder_or_a_strategy() -> None:
    with pytest.raises(ValueError, match="exactly one of builder and strategy"):
        AuthMethod("both", "neither", None)
