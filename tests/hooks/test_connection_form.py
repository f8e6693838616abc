"""What the connection form shows: Airflow 3.2+ reads ``conn-fields``; 3.1 calls the hook methods."""

from __future__ import annotations

import warnings

from wtforms import PasswordField

from cyberark_ops import CyberArkHook
from cyberark_ops.provider_info import CONN_FIELDS

# One place per secret: the Password field or a file; the client key's passphrase has no other.
SECRET_FIELDS = {"client_key_password"}


def test_the_ui_metadata_airflow_serves_marks_secrets_as_passwords() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning: the declarative fields are used
        (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "cyberark"]
    assert meta.hook_class_name == "cyberark_ops.hooks.cyberark.CyberArkHook"
    assert meta.standard_fields.host.title == "Base URL"
    assert not meta.standard_fields.port.hidden, "the Test button needs a stored port on 3.3.2"
    extra = meta.extra_fields
    assert set(extra) == set(CONN_FIELDS)
    passwords = {name for name, field in extra.items() if field["schema"].get("format") == "password"}
    assert passwords == SECRET_FIELDS


def test_airflow_3_1_form_methods_match_the_declarations() -> None:
    behaviour = CyberArkHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema"]
    assert behaviour["relabeling"]["host"] == "Base URL"
    widgets = CyberArkHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    assert {name for name, w in widgets.items() if w.field_class is PasswordField} == SECRET_FIELDS
    assert widgets["fail_on_password_change"].field_class.__name__ == "BooleanField"


def test_the_form_offers_the_common_extras_and_the_rest_go_in_the_extra_json() -> None:
    from cyberark_ops.settings import connection_fields

    assert set(CONN_FIELDS) <= set(connection_fields())
    # Read from the Extra JSON as before (docs/hook.md lists them); api_key and jwt_token:
    # deprecated, read from connections saved by the former form.
    assert set(connection_fields()) - set(CONN_FIELDS) == {
        "allow_insecure_http",
        "api_key",
        "api_key_env",
        "aws_profile",
        "aws_region",
        "aws_sts_url",
        "azure_client_id",
        "backoff_base",
        "backoff_max",
        "check_in",
        "cloud",
        "connect_timeout",
        "connection_timeout",
        "jwt_token",
        "max_retries",
        "metadata_url",
        "password_change_retries",
        "password_change_wait",
        "password_env",
        "rate_limit_per_second",
        "service_id",
        "read_timeout",
        "ticket_id",
        "ticketing_system",
        "verify",
    }
    assert CONN_FIELDS["api"]["schema"]["default"] == "conjur"
