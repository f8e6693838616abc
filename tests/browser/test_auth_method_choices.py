"""The form's auth-method choices are spelled out in provider_info (resolving PVWA's list there
would import requests at provider discovery); they must stay the API table's names."""

from __future__ import annotations

from cyberark_ops.apis import BUILTIN_APIS, api_spec
from cyberark_ops.provider_info import AUTH_METHOD_NAMES, CONN_FIELDS


def test_the_choices_are_every_auth_method_of_the_builtin_apis() -> None:
    table = []
    for name in BUILTIN_APIS:
        spec = api_spec(name)
        assert spec is not None
        table += [method for method in spec.auth_names if method not in table]
    assert list(AUTH_METHOD_NAMES) == table


def test_the_select_defaults_to_the_apis_own_method_under_a_readable_name() -> None:
    schema = CONN_FIELDS["auth_method"]["schema"]
    assert schema["enum"] == [*AUTH_METHOD_NAMES, None]
    assert schema["default"] is None
    assert schema["values_display"]["null"] == "(the API's default)"
