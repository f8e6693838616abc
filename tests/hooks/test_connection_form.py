"""What the connection form shows: Airflow 3.2+ reads ``conn-fields``; 3.1 calls the hook methods."""

from __future__ import annotations

import warnings

from wtforms import PasswordField

from cyberark_ops import CyberArkHook
from cyberark_ops.provider_info import CONN_FIELDS

SECRET_FIELDS = {"api_key", "jwt_token", "client_key_password"}


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
    assert widgets["max_retries"].field_class.__name__ == "IntegerField"
    assert widgets["fail_on_password_change"].field_class.__name__ == "BooleanField"


def test_the_form_offers_every_extra_the_settings_accept_and_opens_on_conjur() -> None:
    from cyberark_ops.settings import connection_fields

    assert set(connection_fields()) - set(CONN_FIELDS) == {"api_kind"}  # api_kind: a legacy alias of api
    assert CONN_FIELDS["api"]["schema"]["default"] == "conjur"
