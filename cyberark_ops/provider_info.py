"""The provider metadata Airflow validates against its ``provider_info.schema.json``.

Connection form fields are declared here (Airflow 3.2+ reads ``conn-fields`` and
``ui-field-behaviour`` without importing the hook); 3.1 gets the same behaviour from the hook's
``get_ui_field_behaviour``. Every field that can hold a secret has ``"format": "password"``.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from .apis import BUILTIN_APIS

PACKAGE_NAME = "cyberark-ops"


AUTH_METHOD_NAMES = (
    "api_key",
    "jwt",
    "access_token_file",
    "app_id",
    "cyberark",
    "ldap",
    "radius",
    "windows",
    "client_credentials",
)
"""Every ``auth_method`` the built-in APIs accept, spelled out: PVWA's list lives with the client
layer, and resolving it here would import requests into every process that discovers providers.
A test checks it against the API table."""


def _field(label: str, description: str, *, kind: str = "string", secret: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": [kind, "null"]}
    if secret:
        schema["format"] = "password"
    return {"label": label, "description": description, "schema": schema}


CONN_FIELDS: dict[str, dict[str, Any]] = {
    "api": {
        "label": "CyberArk API",
        "description": ", ".join(BUILTIN_APIS),
        # A default, so the form opens on "conjur" rather than on a literal "null".
        "schema": {
            "type": ["string", "null"],
            "enum": [*BUILTIN_APIS, None],
            "default": BUILTIN_APIS[0],
            "values_display": {"null": "(conjur)"},
        },
    },
    "account": _field("Conjur account", "Conjur account name (SaaS: conjur)"),
    "auth_method": {
        "label": "Auth method",
        "description": (
            "Empty: the API's first. Conjur: api_key | jwt | access_token_file. CCP: app_id. "
            "PVWA: cyberark | ldap | radius | windows. Privilege Cloud: client_credentials"
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
    "api_key": _field("Conjur API key", "The host's or user's API key (or use the Password field)", secret=True),
    "api_key_file": _field(
        "API key file", "Path to a file holding the Conjur API key, read when a hook first connects"
    ),
    "password_file": _field("Password file", "Path to a file holding the PVWA password or OAuth client secret"),
    "jwt_service_id": _field("authn-jwt service id", "Conjur authn-jwt service (e.g. kubernetes)"),
    "jwt_token_path": _field("JWT file", "Path to the workload JWT, e.g. a Kubernetes service account token"),
    "access_token_path": _field(
        "Access token file", "Conjur access token kept fresh by a sidecar, e.g. /run/conjur/access-token"
    ),
    "jwt_token": _field("JWT", "A JWT given inline (prefer a file path: tokens rotate)", secret=True),
    "app_id": _field("CCP AppID", "The application id registered in the Vault"),
    "service_path": _field("CCP service path", "AIMWebService unless your CCP is installed elsewhere"),
    "fail_on_password_change": _field("Fail during password change", "CCP FailRequestOnPasswordChange", kind="boolean"),
    "password_change_retries": _field(
        "Password change waits", "CCP: times to wait out a CPM password change (default 3)", kind="integer"
    ),
    "password_change_wait": _field("Password change wait (s)", "CCP: seconds per wait (default 5)", kind="number"),
    "identity_url": _field("Identity URL", "Privilege Cloud: https://<tenant>.id.cyberark.cloud"),
    "ca_bundle": _field("CA bundle", "PEM file of the CAs to trust (default: the system store)"),
    "client_cert": _field("Client certificate", "PEM client certificate for mutual TLS (CCP)"),
    "client_key": _field("Client key", "PEM private key of the client certificate"),
    "client_key_password": _field("Client key passphrase", "Passphrase of an encrypted client key", secret=True),
    "connect_timeout": _field("Connect timeout (s)", "Default 5", kind="number"),
    "read_timeout": _field("Read timeout (s)", "Default 30", kind="number"),
    "max_retries": _field("Retries", "Retries on connection errors, 429 and 5xx (default 3)", kind="integer"),
    "deadline": _field("Deadline (s)", "Upper bound for one fetch including retries (default 60)", kind="number"),
    "cloud": _field("Secrets Manager SaaS", "Conjur Cloud (default: detected from the host name)", kind="boolean"),
    "backoff_base": _field("Backoff base (s)", "First retry delay, doubled per retry (default 0.5)", kind="number"),
    "backoff_max": _field("Backoff max (s)", "Longest retry delay (default 8)", kind="number"),
    "verify": _field(
        "Verify TLS", "Verify the server's certificate (default true; false only for a throwaway lab)", kind="boolean"
    ),
    "allow_insecure_http": _field(
        "Allow plain http",
        "Accept an http:// base URL (default false: credentials would cross in clear)",
        kind="boolean",
    ),
    "connection_timeout": _field(
        "CCP ConnectionTimeout (s)",
        "How long CCP waits for the Vault (default 2/3 of the read timeout)",
        kind="integer",
    ),
    "api_key_env": _field("API key variable", "Name of an environment variable holding the Conjur API key"),
    "password_env": _field("Password variable", "Name of an environment variable holding the PVWA password / secret"),
    "rate_limit_per_second": _field(
        "Rate-limit budget (req/s)", "Client-side budget per connection and worker process", kind="number"
    ),
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # Port stays visible: the settings use it, and Airflow 3.3.2's Test button refuses a connection
    # with no stored port (apache/airflow#73298), so the form must be able to store one.
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "Base URL",
        "port": "Port (if not in the URL)",
        "login": "Login / client id",
        "password": "API key / password / secret",
    },
    "placeholders": {
        "host": "https://conjur.example.com",
        "login": "host/airflow/worker",
        "api": "conjur",
        "account": "myorg",
        "app_id": "AirflowProd",
    },
}


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
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
