"""The provider metadata Airflow validates against its ``provider_info.schema.json``.

Connection form fields are declared here (Airflow 3.2+ reads ``conn-fields`` and
``ui-field-behaviour`` without importing the hook); 3.1 gets the same behaviour from the hook's
``get_ui_field_behaviour``. Every field that can hold a secret has ``"format": "password"``.
"""

from __future__ import annotations

import copy
from typing import Any

from ._version import __version__
from .apis import BUILTIN_APIS, BUILTIN_AUTH_METHODS, api_names, auth_method_names

PACKAGE_NAME = "cyberark-ops"


AUTH_METHOD_NAMES = BUILTIN_AUTH_METHODS
"""Every ``auth_method`` the built-in APIs accept, from the API table (which spells PVWA's logon
types out as plain data, so reading it imports no requests in provider discovery)."""


def _field(label: str, description: str, *, kind: str = "string", secret: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": [kind, "null"]}
    if secret:
        schema["format"] = "password"
    return {"label": label, "description": description, "schema": schema}


CONN_FIELDS: dict[str, dict[str, Any]] = {
    # The form shows every field whatever the API, so each label starts with the API(s) it is for.
    # One place per secret: the Password field (API key, password or client secret) or a file; the
    # rest of the settings (timeouts, retries, pacing, CCP waits, ...) go in the Extra JSON.
    "api": {
        "label": "CyberArk API",
        "description": "conjur: Conjur / Secrets Manager · ccp: Central Credential Provider · pvwa · privilege-cloud",
        # A default, so the form opens on "conjur" rather than on a literal "null".
        "schema": {
            "type": ["string", "null"],
            "enum": [*BUILTIN_APIS, None],
            "default": BUILTIN_APIS[0],
            "values_display": {"null": "(conjur)"},
        },
    },
    "auth_method": {
        "label": "Auth method",
        "description": (
            "Empty: the API's first. Conjur: api_key (the Password field) | jwt | access_token_file | "
            "authn-iam | authn-azure | authn-gcp (the worker's cloud identity; service_id etc. in the Extra JSON). "
            "CCP: app_id. PVWA: cyberark | ldap | radius | windows. Privilege Cloud: client_credentials"
        ),
        # A choice, not free text. Null picks the API's default method; values_display (read by
        # Airflow's form) names that choice instead of showing a literal "null".
        "schema": {
            "type": ["string", "null"],
            "enum": [*AUTH_METHOD_NAMES, None],
            "default": None,
            "values_display": {"null": "(the API's default)"},
        },
    },
    "account": _field("Conjur: account", "Conjur only: the account name (Secrets Manager SaaS: conjur)"),
    "api_key_file": _field(
        "Conjur: API key file",
        "Conjur, auth api_key: a file holding the API key, read when a hook first connects; "
        "instead of the Password field",
    ),
    "jwt_service_id": _field("Conjur JWT: service id", "Conjur, auth jwt: the authn-jwt service (e.g. kubernetes)"),
    "jwt_token_path": _field(
        "Conjur JWT: token file", "Conjur, auth jwt: the workload JWT, e.g. a Kubernetes service account token"
    ),
    "access_token_path": _field(
        "Conjur: access token file",
        "Conjur, auth access_token_file: the token a sidecar keeps fresh, e.g. /run/conjur/access-token",
    ),
    "app_id": _field("CCP: AppID", "CCP only: the application id registered in the Vault"),
    "service_path": _field("CCP: service path", "CCP only: AIMWebService unless your CCP is installed elsewhere"),
    "fail_on_password_change": _field(
        "CCP: fail during password change", "CCP only: FailRequestOnPasswordChange", kind="boolean"
    ),
    "password_file": _field(
        "PVWA / Privilege Cloud: password file",
        "A file holding the PVWA password or the Privilege Cloud client secret; instead of the Password field",
    ),
    "identity_url": _field("Privilege Cloud: Identity URL", "Privilege Cloud only: https://<tenant>.id.cyberark.cloud"),
    "ca_bundle": _field("TLS: CA bundle", "All APIs: PEM file of the CAs to trust (default: the system store)"),
    "client_cert": _field(
        "TLS: client certificate", "Mutual TLS, e.g. a CCP AppID with certificate authentication: PEM certificate"
    ),
    "client_key": _field("TLS: client key", "Mutual TLS: PEM private key of the client certificate"),
    "client_key_password": _field(
        "TLS: client key passphrase", "Mutual TLS: passphrase of an encrypted client key", secret=True
    ),
    "deadline": _field(
        "Deadline (s)", "All APIs: upper bound for one fetch including retries (default 60)", kind="number"
    ),
}
"""The connection form's extra fields. Every other setting (docs/hook.md) is accepted in the
Extra JSON; ``api_key`` and ``jwt_token`` (secrets that belong in the Password field or a file)
are still read there from connections saved before, and deprecated."""

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # Port stays visible: the settings use it, and Airflow 3.3.2's Test button refuses a connection
    # with no stored port (apache/airflow#73298), so the form must be able to store one.
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "Base URL",
        "port": "Port (if not in the URL)",
        "login": "Login (Conjur host or user · PVWA user · Privilege Cloud client id; CCP: none)",
        "password": "Secret (Conjur API key · PVWA password · Privilege Cloud client secret; CCP: none)",
    },
    "placeholders": {
        "host": "https://conjur.example.com",
        "login": "host/airflow/worker",
        "password": "or leave empty and name a file below",
        "api": "conjur",
        "account": "myorg",
        "api_key_file": "/run/secrets/conjur-api-key",
        "jwt_token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "app_id": "AirflowProd",
        "password_file": "/run/secrets/pvwa-password",
        "identity_url": "https://<tenant>.id.cyberark.cloud",
        "ca_bundle": "/etc/ssl/certs/cyberark-ca.pem",
    },
}


def conn_fields() -> dict[str, dict[str, Any]]:
    """``CONN_FIELDS`` with the choices of the API table as it is now: an API or auth method
    registered after import (from outside the package) is offered by the form too."""
    fields = copy.deepcopy(CONN_FIELDS)
    fields["api"]["schema"]["enum"] = [*api_names(), None]
    fields["auth_method"]["schema"]["enum"] = [*auth_method_names(), None]
    return fields


def provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "CyberArk (cyberark-ops)",
        "description": (
            "Just-in-time credentials from CyberArk Conjur / Secrets Manager, the Central Credential "
            "Provider and PVWA / Privilege Cloud, with nothing left behind in Airflow."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "CyberArk",
                "external-doc-url": "https://docs.cyberark.com/",
                "tags": ["security"],
            }
        ],
        "hooks": [{"integration-name": "CyberArk", "python-modules": ["cyberark_ops.hooks.cyberark"]}],
        "operators": [
            {
                "integration-name": "CyberArk",
                "python-modules": ["cyberark_ops.operators.sql", "cyberark_ops.operators.vaulted"],
            }
        ],
        "secrets-backends": ["cyberark_ops.secrets.CyberArkSecretsBackend"],
        "task-decorators": [{"name": "cyberark", "class-name": "cyberark_ops.decorators.cyberark_task"}],
        "connection-types": [
            {
                "connection-type": "cyberark",
                "hook-class-name": "cyberark_ops.hooks.cyberark.CyberArkHook",
                "hook-name": "CyberArk",
                "conn-fields": conn_fields(),
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
