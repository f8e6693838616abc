"""Provider metadata: one malformed dict breaks every ``airflow`` command, so validate it exactly
as Airflow does, against Airflow's own schema, and check the distribution name."""

from __future__ import annotations

import json
from importlib import metadata, resources

import jsonschema

import cyberark_ops


def test_provider_info_matches_airflows_schema() -> None:
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = cyberark_ops.get_provider_info()
    jsonschema.validate(info, schema)


def test_package_name_is_the_distribution_name() -> None:
    info = cyberark_ops.get_provider_info()
    assert metadata.distribution(info["package-name"]).metadata["Name"] == info["package-name"]
    assert info["versions"][0] == metadata.version("cyberark-ops")


def test_entry_point_is_registered() -> None:
    points = metadata.entry_points(group="apache_airflow_provider")
    ours = [p for p in points if p.value == "cyberark_ops:get_provider_info"]
    assert len(ours) == 1
    assert ours[0].load()() == cyberark_ops.get_provider_info()


def test_importing_the_package_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, cyberark_ops; print(sorted(m for m in ('airflow', 'requests') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


API_NAMES = ("Conjur", "CCP", "PVWA", "Privilege Cloud", "All APIs", "Mutual TLS")


def test_the_form_has_one_place_per_secret_and_few_fields() -> None:
    from cyberark_ops.provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR

    # The Password field holds the API key, password or client secret: no extra field repeats it.
    assert "api_key" not in CONN_FIELDS and "jwt_token" not in CONN_FIELDS
    secrets = [name for name, spec in CONN_FIELDS.items() if spec["schema"].get("format") == "password"]
    assert secrets == ["client_key_password"]
    assert len(CONN_FIELDS) <= 17, sorted(CONN_FIELDS)
    password_label = UI_FIELD_BEHAVIOUR["relabeling"]["password"]
    assert all(word in password_label for word in ("Conjur API key", "PVWA password", "Privilege Cloud client secret"))


def test_every_extra_field_says_which_api_uses_it() -> None:
    from cyberark_ops.provider_info import CONN_FIELDS

    untold = {
        name: spec["label"]
        for name, spec in CONN_FIELDS.items()
        if name not in ("api", "auth_method")
        and not any(api in f"{spec['label']} {spec['description']}" for api in API_NAMES)
    }
    assert untold == {}


def test_the_31_form_widgets_are_the_same_fields() -> None:
    from cyberark_ops import CyberArkHook
    from cyberark_ops.provider_info import CONN_FIELDS

    widgets = CyberArkHook.get_connection_form_widgets()
    assert list(widgets) == list(CONN_FIELDS)
    assert CyberArkHook.get_ui_field_behaviour()["relabeling"]["password"].startswith("Secret (")


def test_a_connection_saved_with_the_removed_api_key_field_still_works() -> None:
    from cyberark_ops.settings import ConnectionSettings

    settings = ConnectionSettings.from_fields(
        host="https://conjur.example.com",
        login="host/airflow/worker",
        password=None,
        extras={"api": "conjur", "account": "myorg", "api_key": "an-api-key-saved-by-the-old-form"},
    )
    api_key = settings.credential("api_key_file", "API key", extra_field="api_key", env_field="api_key_env")
    assert api_key == "an-api-key-saved-by-the-old-form"
