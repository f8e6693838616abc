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
import os
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from .apis import ApiSpec, SecretField, api_names, api_spec, apis, secret_fields, table_fields
from .client import ConfigurationError

if TYPE_CHECKING:
    # The client layer loads when a client is built or a reference resolved (a fetch), not when
    # settings are read: the secrets backend reads them in every Airflow process at start-up.
    from .client import BaseClient, CredentialRef, EventCallback

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
# The one extra beyond the auth methods' own secret fields (apis.SecretField) that holds a secret.
_TRANSPORT_SECRET = SecretField("client_key_password")


def sensitive_extras() -> tuple[SecretField, ...]:
    """Extras that may hold a secret (names on Airflow's sensitive list, redacted by key): the
    TLS key's passphrase and what the registered auth methods declare."""
    return (*secret_fields(), _TRANSPORT_SECRET)


# Secret-looking extras that Airflow would show in clear; refused with a pointer to the right field.
_MISPLACED_SECRETS = ("password", "client_secret", "jwt", "secret", "token", "apikey", "private_key", "access_token")


_CONNECTION_WORDING = "CyberArk connection: "
_BACKEND_WORDING = "CyberArk secrets backend: backend_kwargs: "


class SettingsError(ConfigurationError):
    """A setting a connection or ``backend_kwargs`` got wrong. The problem is kept apart from the
    wording, so the same problem is worded for the other source without rewriting its text."""

    def __init__(self, wording: str, field: str, problem: str) -> None:
        super().__init__(f"{wording}{field}: {problem}", field=field)
        self.problem = problem


def settings_error(field: str, problem: str) -> ConfigurationError:
    """A problem with a ``cyberark`` connection's ``field``, worded for the connection."""
    return SettingsError(_CONNECTION_WORDING, field, problem)


def as_bool(value: Any, field: str) -> bool:
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
    raise settings_error(field, "must be true or false")


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
        raise settings_error("extra", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise settings_error("extra", f"must be a JSON object, not {_JSON_KINDS.get(type(data), 'another value')}")
    return data


def convert(value: Any, kind: type, field: str) -> Any:
    if value is None or value == "":
        return None
    if kind in (int, float) and isinstance(value, bool):
        raise settings_error(field, "must be a number, got bool")
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
    except (TypeError, ValueError, OverflowError):
        raise settings_error(field, f"must be a finite number, got {type(value).__name__}") from None
    if not isinstance(value, str):
        raise settings_error(field, "must be a string")
    return value


def _read_secret_file(path: str, field: str) -> str:
    """Read when a client is built (a hook's first fetch), so the next task sees a rotated file."""
    from .client.untrusted import SECRET_FILE_CAP, read_text_file

    try:
        return read_text_file(path, field, cap=SECRET_FILE_CAP).strip()
    except ConfigurationError as exc:
        raise settings_error(field, exc.message.removeprefix(f"{field}: ")) from None


class ConnectionSettings:
    """What a ``cyberark`` connection (or a secrets backend's kwargs) says, validated once.

    ``build_client`` turns it into a client through the API table in ``apis``. Not a dataclass,
    and it refuses pickling: it holds the credential for reaching CyberArk (and extras that may
    hold one), which ``asdict``, ``pickle`` or a ``repr`` would otherwise copy.
    """

    __slots__ = (
        "_deadline",
        "api",
        "base_url",
        "extras",
        "for_backend",
        "login",
        "rate_limit_per_second",
        "secret",
        "spec",
    )

    def __init__(
        self,
        *,
        api: str,
        base_url: str,
        login: str | None,
        secret: str | None,
        extras: Mapping[str, Any],
        for_backend: bool = False,
    ) -> None:
        self.for_backend = for_backend
        """Errors then name ``backend_kwargs`` instead of a connection."""
        spec = api_spec(api)
        if spec is None:
            raise settings_error("api", f"{api!r} is not one of {', '.join(api_names())}")
        self.spec: ApiSpec = spec
        self.api = api
        self.base_url = base_url
        self.login = login
        self.secret = secret
        self.extras: Mapping[str, Any] = MappingProxyType(dict(extras))
        if spec.auth_method(self.extras.get("auth_method")) is None:
            method = str(self.extras.get("auth_method"))
            raise settings_error(
                "auth_method", f"{method.lower()!r} is not one of {', '.join(spec.auth_names)} for {spec.label}"
            )
        self.rate_limit_per_second = _rate_limit(self.extras.get("rate_limit_per_second"))
        deadline = convert(self.extras.get("deadline"), float, "deadline")
        self._deadline: float | None = None if deadline is None or not math.isfinite(deadline) else deadline

    @property
    def deadline(self) -> float:
        """The per-fetch deadline the client will use (validated again by its config)."""
        if self._deadline is not None:
            return self._deadline
        from .client.config import TransportConfig

        return float(TransportConfig.deadline)

    def __repr__(self) -> str:
        return f"ConnectionSettings(api={self.api!r}, base_url={self.base_url!r}, login={self.login!r})"

    def resolve(self, ref: str | CredentialRef, *, source: str) -> CredentialRef:
        """A typed reference; a bare string means an object of this API. ``source`` names the
        connection (or backend) in the error when ``ref`` belongs to another API."""
        from .client.refs import has_scheme, parse_ref

        if not isinstance(ref, str) and not any(spec.accepts(ref) for spec in apis().values()):
            # A templated reference that rendered to 123, None or a list: its type, never its value.
            raise ConfigurationError(
                f"reference: must be a string such as prod/db/password (or a reference object), "
                f"got {type(ref).__name__}",
                field="reference",
            )
        if isinstance(ref, str):
            # Never stripped: a pasted "id\n" is refused by parse_ref, not silently fetched.
            resolved = parse_ref(ref if has_scheme(ref) else f"{self.spec.ref_scheme}:{ref}")
        else:
            resolved = ref
        if not self.spec.accepts(resolved):
            raise ConfigurationError(
                f"reference {str(resolved)!r} is not for {self.api}: {source} reaches {self.api}, "
                f"so use a {self.api}: reference or another connection",
                field="reference",
            )
        return resolved

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("ConnectionSettings holds a credential and cannot be pickled; pass the conn id instead")

    @classmethod
    def from_connection(cls, conn: Any, conn_id: str) -> ConnectionSettings:
        """From an Airflow ``Connection`` (any object with its fields), which must be of type ``cyberark``."""
        if conn.conn_type and conn.conn_type != "cyberark":
            raise ConfigurationError(
                f"connection {conn_id!r} has type {conn.conn_type!r}, not 'cyberark'", field="conn_type"
            )
        return cls.from_fields(
            host=conn.host,
            port=conn.port,
            schema=conn.schema,
            login=conn.login,
            password=conn.password,
            extras=parse_extras(conn.extra),
        )

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
        """From an Airflow connection's fields."""
        if not isinstance(extras, Mapping):
            raise settings_error("extra", f"must be a JSON object, not {type(extras).__name__}")
        extras = _form_extras(extras)
        misplaced = [key for key in _MISPLACED_SECRETS if extras.get(key)]
        if misplaced:
            raise settings_error(
                misplaced[0],
                "this secret does not belong in extras; put it in the password field or in a file "
                "named by password_file",
            )
        _refuse_unknown(extras, connection_fields(), settings_error)
        if extras.get("api_key") and password:
            raise settings_error(
                "api_key", "both the password field and the api_key extra hold an API key; keep one of them"
            )
        api = _api_name(extras.get("api"))
        if not host:
            raise settings_error("host", "the CyberArk base URL is required, e.g. https://conjur.example.com")
        base_url = _with_port(host.strip(), port)
        if schema and schema.strip("/"):
            base_url = base_url.rstrip("/") + "/" + schema.strip("/")
        return cls(api=api, base_url=base_url, login=login or None, secret=password or None, extras=dict(extras))

    @classmethod
    def from_backend_kwargs(cls, kwargs: Mapping[str, Any], *, reserved: Iterable[str] = ()) -> ConnectionSettings:
        """From a secrets backend's ``backend_kwargs``; keys in ``reserved`` belong to the backend.

        The credential for reaching CyberArk must come from a file (``api_key_file``,
        ``password_file``), an environment variable (``api_key_env``, ``password_env``) or a JWT
        file (``jwt_token_path``): backend kwargs live in airflow.cfg or the environment, where
        ``airflow config list`` and every process started by Airflow can read them.
        """
        if not isinstance(kwargs, Mapping):
            raise backend_error("backend_kwargs", f"must be a JSON object, not {type(kwargs).__name__}")
        skipped = set(reserved)
        own = {key: value for key, value in kwargs.items() if key not in skipped}
        refused = (*sensitive_extras(), *map(SecretField, _MISPLACED_SECRETS))
        inline = [secret for secret in refused if own.get(secret.name)]
        if inline:
            raise backend_error(
                inline[0].name,
                "a secret may not be written inline in backend_kwargs (airflow config list shows it); "
                f"name a file ({inline[0].file}) or an environment variable ({inline[0].env}) instead",
            )
        _refuse_unknown(own, backend_fields(), backend_error, also_known=skipped)
        url = own.get("url")
        if not isinstance(url, str) or not url.strip():
            raise backend_error("url", "the CyberArk base URL is required, e.g. https://conjur.example.com")
        login = own.get("login")
        if login is not None and not isinstance(login, str):
            raise backend_error("login", "must be a string")
        extras = {key: value for key, value in own.items() if key not in ("url", "login")}
        try:
            return cls(
                api=_api_name(own.get("api")),
                base_url=url.strip(),
                login=login or None,
                secret=None,
                extras=extras,
                for_backend=True,
            )
        except ConfigurationError as exc:
            raise as_backend_error(exc) from None

    # -- what builders read -------------------------------------------------------------------------

    def transport_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"base_url": self.base_url}
        for field, kind in _TRANSPORT_FIELDS.items():
            value = convert(self.extras.get(field), kind, field)
            if value is not None:
                kwargs[field] = value
        if self.extras.get("client_key_password"):
            kwargs["client_key_password"] = str(self.extras["client_key_password"])
        if "verify" in self.extras:
            kwargs["verify"] = as_bool(self.extras["verify"], "verify")
        if "allow_insecure_http" in self.extras:
            kwargs["allow_insecure_http"] = as_bool(self.extras["allow_insecure_http"], "allow_insecure_http")
        return kwargs

    def credential(
        self, file_field: str, what: str, *, extra_field: str | None = None, env_field: str | None = None
    ) -> str:
        """The secret for reaching CyberArk: from a file, an environment variable, a sensitive
        extra or the password field, in that order. Read when a client is built, so the next
        task sees a rotated file."""
        path = self.extras.get(file_field)
        variable = self.extras.get(env_field) if env_field else None
        if path:
            return _read_secret_file(str(path), file_field)
        if variable:
            return _read_secret_env(str(variable), str(env_field))
        if extra_field and self.extras.get(extra_field):
            return str(self.extras[extra_field])
        if self.secret:
            return self.secret
        sources = " or ".join(name for name in (file_field, env_field) if name)
        if self.for_backend:
            raise backend_error(file_field, f"the {what} is required: set {sources}")
        raise settings_error("password", f"the {what} is required: set the password field or {sources}")

    def require_login(self, what: str) -> str:
        if not self.login:
            raise settings_error("login", f"{what} is required")
        return self.login

    def build_client(
        self, on_event: EventCallback | None = None, register_secret: Callable[[str], None] | None = None
    ) -> BaseClient[Any, Any]:
        """The client for this connection, from the (api, auth method) builder table.

        ``register_secret`` sees every credential used to reach CyberArk itself (API key,
        password, client secret, inline JWT), e.g. to mask it, before it is used.
        """
        register = register_secret or (lambda _value: None)
        for secret in sensitive_extras():
            if self.extras.get(secret.name):
                register(str(self.extras[secret.name]))
        method = self.spec.auth_method(self.extras.get("auth_method"))
        assert method is not None  # checked in __init__
        try:
            client: BaseClient[Any, Any] = self.spec.build_client(method, self, on_event=on_event, register=register)
            return client
        except ConfigurationError as exc:
            if self.for_backend:
                raise as_backend_error(exc) from None
            raise


_FORM_PREFIX = "extra__cyberark__"


def _form_extras(extras: Mapping[str, Any]) -> dict[str, Any]:
    """Extras as the connection form leaves them: every declared field, empty ones as null or "",
    and (older forms) names prefixed ``extra__cyberark__``. An empty field is an unset one, so an
    empty ``verify`` never turns TLS verification off."""
    cleaned: dict[str, Any] = {}
    for key, value in extras.items():
        name = str(key).removeprefix(_FORM_PREFIX)
        if value is None or value == "":
            continue
        cleaned[name] = value
    return cleaned


def _with_port(host: str, port: int | None) -> str:
    """The base URL with the connection's Port field in it (a full URL used to drop it silently)."""
    if "://" not in host:
        return f"https://{host}" + (f":{port}" if port else "")
    if not port:
        return host
    try:
        parts = urlsplit(host)
        present = parts.port
    except ValueError:
        raise settings_error("host", "is not a valid URL (check the port in it)") from None
    if present is None:
        return urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))
    if present != port:
        raise settings_error("port", f"{port} contradicts the port in the base URL ({present}); keep one of them")
    return host


def _api_name(value: Any) -> str:
    if value is None or value == "":
        return "conjur"
    name = value.strip().lower() if isinstance(value, str) else None
    if name is None or api_spec(name) is None:
        raise settings_error("api", f"{name or value!r} is not one of {', '.join(api_names())}")
    return name


def _rate_limit(value: Any) -> float | None:
    """The client-side request budget (``rate_limit_per_second``), validated like every extra."""
    budget: float | None = convert(value, float, "rate_limit_per_second")
    low, high = RATE_LIMIT_RANGE
    if budget is not None and not (math.isfinite(budget) and low <= budget <= high):
        raise settings_error("rate_limit_per_second", f"must be a number between {low:g} and {high:g}")
    return budget


def _read_secret_env(variable: str, field: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise settings_error(field, f"environment variable {variable!r} is not set or empty")
    return value.strip()


def backend_error(field: str, problem: str) -> ConfigurationError:
    """A problem with the secrets backend's ``field``, worded for ``backend_kwargs``."""
    return SettingsError(_BACKEND_WORDING, field, problem)


def as_backend_error(exc: ConfigurationError) -> ConfigurationError:
    """The same problem, worded for ``backend_kwargs``: settings and client checks run the same
    for both sources and word their problems for a connection (or, in the client layer, as
    ``field: problem``)."""
    if isinstance(exc, SettingsError):
        return backend_error(exc.field or "backend_kwargs", exc.problem)
    field = exc.field or "backend_kwargs"
    return backend_error(field, exc.message.removeprefix(f"{field}: "))


def _refuse_unknown(
    settings: Iterable[Any],
    known: Iterable[str],
    error: Callable[[str, str], ConfigurationError],
    *,
    also_known: Iterable[str] = (),
) -> None:
    """Refuses the first setting not in ``known``, naming the nearest known one (a typo such as
    ``ca_bundel`` would otherwise be ignored without a word)."""
    names = set(known)
    for key in settings:
        if not isinstance(key, str) or key not in names:
            import difflib  # only for the message: not on the path of every valid connection

            nearest = difflib.get_close_matches(str(key), [*names, *also_known], n=1)
            hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
            raise error(str(key), f"not a known setting{hint}")


# The settings every connection (or backend) may carry whatever its API and auth method; the
# fields each API and auth method reads come from the API table.
_COMMON_FIELDS = (
    "api",
    "auth_method",
    "client_key_password",
    "verify",
    "allow_insecure_http",
    "rate_limit_per_second",
)


def connection_fields() -> tuple[str, ...]:
    """The extras a ``cyberark`` connection may carry: built-in ones and those of registered APIs."""
    return tuple(f for f in backend_fields() if f not in ("url", "login"))


def backend_fields() -> tuple[str, ...]:
    """The settings backend kwargs may carry: the common ones and those each registered API and
    auth method reads (``ApiSpec.extra_fields``, ``AuthMethod.fields``)."""
    return tuple(dict.fromkeys(["url", "login", *_TRANSPORT_FIELDS, *_COMMON_FIELDS, *table_fields()]))


def secret_extras(extras: Mapping[str, Any]) -> dict[str, str]:
    """The secret-holding extras that are set, by key (their values only go to the masker)."""
    return {
        secret.name: value
        for secret in sensitive_extras()
        if isinstance(value := extras.get(secret.name), str) and value
    }
