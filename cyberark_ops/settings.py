"""From an Airflow connection (or backend kwargs) to a configured CyberArk client.

Airflow-free on purpose: the hook feeds it a Connection's fields and the secrets backend will
feed it ``backend_kwargs``, so both read the same keys with the same validation and errors.
Secrets (API key, password, client secret) come from the connection's password field, from a
file named in the extras, or from the few extras whose names Airflow treats as sensitive
(``api_key``, ``jwt_token``): Airflow redacts those by key in the UI, the API and logs, while any
other extra would be shown in clear.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, Union

from .client import (
    CCPClient,
    CCPConfig,
    ConfigurationError,
    ConjurApiKeyAuth,
    ConjurClient,
    ConjurConfig,
    ConjurJWTAuth,
    EventCallback,
    PlatformTokenAuth,
    PVWAClient,
    PVWAConfig,
    PVWALogonAuth,
    TransportConfig,
)
from .client.auth import PVWA_AUTH_TYPES

API_KINDS = ("conjur", "ccp", "pvwa", "privileged-cloud")
CONJUR_AUTH = ("api_key", "jwt")
PVWA_AUTH = tuple(PVWA_AUTH_TYPES)  # one list, kept by the auth strategy that sends it

Client = Union[ConjurClient, CCPClient, PVWAClient]  # noqa: UP007 - runtime alias on 3.10

# Extras that hold transport settings, with the type each must have.
_TRANSPORT_FIELDS: dict[str, type] = {
    "ca_bundle": str,
    "client_cert": str,
    "client_key": str,
    "connect_timeout": float,
    "read_timeout": float,
    "max_retries": int,
    "deadline": float,
    "backoff_base": float,
    "backoff_max": float,
}
# Extras that may hold a secret: names on Airflow's sensitive list, redacted by key.
SENSITIVE_EXTRAS = ("api_key", "jwt_token", "client_key_password")
# Secret-looking extras that Airflow would show in clear; refused with a pointer to the right field.
_MISPLACED_SECRETS = ("password", "client_secret", "jwt", "secret")


def _fail(field: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"CyberArk connection: {field}: {problem}", field=field)


def _as_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "1",
        "yes",
        "on",
        "false",
        "0",
        "no",
        "off",
        "",
    ):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise _fail(field, "must be true or false")


RATE_LIMIT_RANGE = (0.01, 100_000.0)
"""Requests per second a client-side budget may be set to: below 0.01 a fetch would wait minutes."""


_JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def parse_extras(text: str | None) -> dict[str, Any]:
    """A connection's extra field, which must be a JSON object; Airflow's ``extra_dejson`` would
    log a traceback and return ``{}`` (or a list), leaving an unrelated error for later."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _fail("extra", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise _fail("extra", f"must be a JSON object, not {_JSON_KINDS.get(type(data), 'another value')}")
    return data


def _convert(value: Any, kind: type, field: str) -> Any:
    if value is None or value == "":
        return None
    if kind in (int, float) and isinstance(value, bool):
        raise _fail(field, "must be a number, got bool")
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
    except (TypeError, ValueError, OverflowError):
        raise _fail(field, f"must be a finite number, got {type(value).__name__}") from None
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    return value


def _read_secret_file(path: str, field: str) -> str:
    """Read when a client is built (a hook's first fetch), so the next task sees a rotated file."""
    file = Path(path).expanduser()
    try:
        return file.read_text("utf-8").strip()
    except OSError as exc:
        raise _fail(field, f"cannot read {str(file)!r} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise _fail(field, f"{str(file)!r} is not UTF-8 text") from None


class ConnectionSettings:
    """What a ``cyberark`` connection says, validated; ``build_client`` turns it into a client.

    Not a dataclass, and it refuses pickling: it holds the credential for reaching CyberArk (and
    extras that may hold one), which ``asdict``, ``pickle`` or a ``repr`` would otherwise copy.
    """

    __slots__ = ("api", "base_url", "extras", "login", "secret")

    def __init__(
        self, *, api: str, base_url: str, login: str | None, secret: str | None, extras: Mapping[str, Any]
    ) -> None:
        self.api = api
        self.base_url = base_url
        self.login = login
        self.secret = secret
        self.extras: Mapping[str, Any] = MappingProxyType(dict(extras))

    def __repr__(self) -> str:
        return f"ConnectionSettings(api={self.api!r}, base_url={self.base_url!r}, login={self.login!r})"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("ConnectionSettings holds a credential and cannot be pickled; pass the conn id instead")

    @classmethod
    def from_fields(
        cls,
        *,
        host: str | None,
        port: int | None = None,
        schema: str | None = None,
        login: str | None,
        password: str | None,
        extras: Mapping[str, Any],
    ) -> ConnectionSettings:
        if not isinstance(extras, Mapping):
            raise _fail("extra", f"must be a JSON object, not {type(extras).__name__}")
        misplaced = [key for key in _MISPLACED_SECRETS if extras.get(key)]
        if misplaced:
            raise _fail(
                misplaced[0],
                "this secret does not belong in extras; put it in the password field or in a file "
                "named by password_file",
            )
        api = str(extras.get("api") or extras.get("api_kind") or "conjur").strip().lower()
        if api not in API_KINDS:
            raise _fail("api", f"{api!r} is not one of {', '.join(API_KINDS)}")
        if not host:
            raise _fail("host", "the CyberArk base URL is required, e.g. https://conjur.example.com")
        base_url = host.strip()
        if "://" not in base_url:
            base_url = f"https://{base_url}"
            if port:
                base_url += f":{port}"
        if schema and schema.strip("/"):
            base_url = base_url.rstrip("/") + "/" + schema.strip("/")
        return cls(api=api, base_url=base_url, login=login or None, secret=password or None, extras=dict(extras))

    @property
    def rate_limit_per_second(self) -> float | None:
        """The client-side request budget (``rate_limit_per_second``), validated like every extra."""
        budget: float | None = _convert(self.extras.get("rate_limit_per_second"), float, "rate_limit_per_second")
        low, high = RATE_LIMIT_RANGE
        if budget is not None and not (math.isfinite(budget) and low <= budget <= high):
            raise _fail("rate_limit_per_second", f"must be a number between {low:g} and {high:g}")
        return budget

    @property
    def deadline(self) -> float:
        """The per-fetch deadline the client will use (validated again by its config)."""
        value = _convert(self.extras.get("deadline"), float, "deadline")
        return float(TransportConfig.deadline) if value is None or not math.isfinite(value) else value

    def _transport_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"base_url": self.base_url}
        for field, kind in _TRANSPORT_FIELDS.items():
            value = _convert(self.extras.get(field), kind, field)
            if value is not None:
                kwargs[field] = value
        if self.extras.get("client_key_password"):
            kwargs["client_key_password"] = str(self.extras["client_key_password"])
        if "verify" in self.extras:
            kwargs["verify"] = _as_bool(self.extras["verify"], "verify")
        if "allow_insecure_http" in self.extras:
            kwargs["allow_insecure_http"] = _as_bool(self.extras["allow_insecure_http"], "allow_insecure_http")
        return kwargs

    def _secret(self, file_field: str, what: str, extra_field: str | None = None) -> str:
        path = self.extras.get(file_field)
        if path:
            value = _read_secret_file(str(path), file_field)
        elif extra_field and self.extras.get(extra_field):
            value = str(self.extras[extra_field])
        elif self.secret:
            value = self.secret
        else:
            raise _fail("password", f"the {what} is required: set the password field or {file_field}")
        return value

    def _require_login(self, what: str) -> str:
        if not self.login:
            raise _fail("login", f"{what} is required")
        return self.login

    def build_client(
        self, on_event: EventCallback | None = None, register_secret: Callable[[str], None] | None = None
    ) -> Client:
        """The client for this connection; ``register_secret`` sees every credential used to reach
        CyberArk itself (API key, password, client secret, inline JWT), e.g. to mask it."""
        register = register_secret or (lambda _value: None)
        for name in SENSITIVE_EXTRAS:
            if self.extras.get(name):
                register(str(self.extras[name]))

        def secret(file_field: str, what: str, extra_field: str | None = None) -> str:
            value = self._secret(file_field, what, extra_field)
            register(value)
            return value

        kwargs = self._transport_kwargs()
        if self.api == "conjur":
            method = str(self.extras.get("auth_method") or "api_key").lower()
            if method not in CONJUR_AUTH:
                raise _fail("auth_method", f"{method!r} is not one of {', '.join(CONJUR_AUTH)} for Conjur")
            if method == "jwt":
                service_id = self.extras.get("jwt_service_id")
                token_path = self.extras.get("jwt_token_path")
                inline_jwt = self.extras.get("jwt_token")
                if not service_id:
                    raise _fail("jwt_service_id", "JWT auth needs the authn-jwt service id")
                if bool(token_path) == bool(inline_jwt):
                    raise _fail("jwt_token_path", "JWT auth needs exactly one of jwt_token_path and jwt_token")
                conjur_auth: ConjurApiKeyAuth | ConjurJWTAuth = (
                    ConjurJWTAuth(str(service_id), token_file=str(token_path), login=self.login)
                    if token_path
                    else ConjurJWTAuth(str(service_id), token_provider=lambda: str(inline_jwt), login=self.login)
                )
                if inline_jwt:
                    register(str(inline_jwt))
            else:
                login = self._require_login("the Conjur login (host/<id> or a user)")
                conjur_auth = ConjurApiKeyAuth(login, secret("api_key_file", "API key", "api_key"))
            cloud = self.extras.get("cloud")
            config = ConjurConfig(
                account=self.extras.get("account") or None,
                auth=conjur_auth,
                cloud=None if cloud in (None, "") else _as_bool(cloud, "cloud"),
                **kwargs,
            )
            return ConjurClient(config, on_event=on_event)
        if self.api == "ccp":
            app_id = self.extras.get("app_id")
            if not app_id:
                raise _fail("app_id", "the CCP application id (AppID) is required")
            ccp_kwargs: dict[str, Any] = {}
            if self.extras.get("service_path"):
                ccp_kwargs["service_path"] = str(self.extras["service_path"])
            if "fail_on_password_change" in self.extras:
                ccp_kwargs["fail_on_password_change"] = _as_bool(
                    self.extras["fail_on_password_change"], "fail_on_password_change"
                )
            timeout = _convert(self.extras.get("connection_timeout"), int, "connection_timeout")
            if timeout is None and "read_timeout" in kwargs:
                # CCP must give up on the Vault before we give up on CCP.
                timeout = max(1, int(kwargs["read_timeout"] * 2 / 3))
            if timeout is not None:
                ccp_kwargs["connection_timeout"] = timeout
            return CCPClient(CCPConfig(app_id=str(app_id), **ccp_kwargs, **kwargs), on_event=on_event)
        if self.api == "privileged-cloud":
            identity_url = self.extras.get("identity_url")
            if not identity_url:
                raise _fail("identity_url", "the Identity tenant URL (https://<tenant>.id.cyberark.cloud) is required")
            pvwa_auth: PlatformTokenAuth | PVWALogonAuth = PlatformTokenAuth(
                str(identity_url),
                self._require_login("the OAuth client id"),
                secret("password_file", "client secret"),
            )
        else:
            method = str(self.extras.get("auth_method") or "cyberark").lower()
            if method not in PVWA_AUTH:
                raise _fail("auth_method", f"{method!r} is not one of {', '.join(PVWA_AUTH)} for PVWA")
            pvwa_auth = PVWALogonAuth(
                self._require_login("the PVWA user name"), secret("password_file", "password"), method
            )
        return PVWAClient(PVWAConfig(auth=pvwa_auth, **kwargs), on_event=on_event)
