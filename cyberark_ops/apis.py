"""The one table of CyberArk APIs: for each API its auth methods, extra fields, reference scheme
and what the doctor checks; for each auth method the fields it reads and how it is built.

Everything that needs to know which APIs or auth methods exist reads this table: settings
validation (the fields each API and method reads), reference resolution, the fetch core, the
connection form (provider info), the doctor and the docs. A fourth API is one ``register_api``
call, another auth method for an API one ``register_auth_method`` call, from inside the package
or from outside it.

Import-light on purpose: provider discovery reads the API and auth method names in every Airflow
process, so everything here is plain data, and the built-in builders are named as
``"module:function"`` and imported only when a client is built.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .client.logon_types import PVWA_LOGON_TYPES

Builder = Callable[..., Any]
"""``builder(settings, *, on_event, register) -> client``; ``register`` sees every credential used
to reach CyberArk itself, so that it can be masked."""
StrategyBuilder = Callable[..., Any]
"""``strategy(settings, *, register) -> AuthStrategy``: only the proof of identity, which the API's
``client`` builder puts in the API's client."""
ClientBuilder = Callable[..., Any]
"""``client(settings, auth, *, on_event) -> client``: an API's client around any of its strategies."""
RefParser = Callable[[str, str], object]
"""``parser(reference, rest)``, ``rest`` being what follows ``<scheme>:``; raises ConfigurationError."""
Listing = Callable[[Any, Sequence[Any]], tuple[set[str], set[str], str]]
"""``listing(client, checked_refs) -> (visible, used, what)`` for the doctor's least-privilege check."""


def _resolve(target: Any) -> Any:
    return _import(target) if isinstance(target, str) else target


@functools.cache
def _import(target: str) -> Any:
    """``"module:name"``, imported once: specs resolve their types on every fetch."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class SecretField:
    """An extra that holds a secret itself: masked by key, refused inline in backend kwargs (with
    a pointer to the file or environment variable that replaces it there)."""

    name: str
    file: str = "password_file"
    """The setting naming a file that holds it instead."""
    env: str = "password_env"
    """The setting naming an environment variable that holds it instead."""


@dataclass(frozen=True)
class AuthMethod:
    """One way of authenticating to an API, selected by the ``auth_method`` extra.

    Built either as a whole client (``builder``) or, when the API has a ``client`` builder, as
    an auth strategy only (``strategy``): then a new method is one strategy and one registration.
    """

    name: str
    """The ``auth_method`` extra that selects it."""
    description: str
    builder: str | Builder | None = None
    """A callable, or ``"module:function"`` imported when the first client is built."""
    strategy: str | StrategyBuilder | None = None
    """Instead of ``builder``: the auth strategy alone, wrapped by the API's ``client`` builder."""
    fields: tuple[str, ...] = ()
    """The extras (and backend kwargs) this method reads: settings accept them for every API."""
    remedy: str | None = None
    """What the doctor advises when authenticating this way fails; None: the API's own advice."""
    secrets: tuple[SecretField, ...] = ()
    """Those of ``fields`` that hold a secret inline."""

    def __post_init__(self) -> None:
        if (self.builder is None) == (self.strategy is None):
            raise ValueError(f"auth method {self.name!r}: give exactly one of builder and strategy")

    def build(self, settings: Any, *, on_event: Any, register: Callable[[str], None]) -> Any:
        """The client, from a method with its own ``builder`` (see ``ApiSpec.build_client``)."""
        if self.builder is None:
            raise TypeError(f"auth method {self.name!r} builds a strategy: build it through its API's spec")
        return _resolve(self.builder)(settings, on_event=on_event, register=register)

    def build_strategy(self, settings: Any, *, register: Callable[[str], None]) -> Any:
        assert self.strategy is not None
        return _resolve(self.strategy)(settings, register=register)


@dataclass(frozen=True)
class DoctorChecks:
    """What ``cyberark-ops doctor`` checks and advises that depends on the API."""

    auth_remedy: str = (
        "Check the user name, the password (or client secret) and the auth method; a locked user needs an admin"
    )
    """When authentication fails (an auth method's own ``remedy`` comes first)."""
    path_remedy: str = "Check safe and account name; the user needs List + Retrieve (and Use) accounts on the safe"
    """When a ``--path`` cannot be read."""
    forbidden_path_remedy: str | None = None
    """When a ``--path`` is refused (403), if that needs other advice than ``path_remedy``."""
    no_logon: str | Callable[[Any], str] | None = None
    """``no_logon(settings) -> detail`` for an API whose client has no separate logon (the
    authentication check is skipped); None: a generic detail."""
    no_logon_remedy: str = ""
    """What to do about it."""
    no_client_cert: tuple[str, str] | None = None
    """``(detail, remedy)`` of a warning when no client certificate is set; None: none is needed."""
    listing: str | Listing | None = None
    """What the identity can see, for the least-privilege check; None: the API cannot list."""

    def no_logon_text(self, settings: Any) -> str:
        if self.no_logon is None:
            return f"{settings.spec.label} has no separate logon: the credentials are checked on each fetch"
        return str(_resolve(self.no_logon)(settings))

    def lister(self) -> Listing | None:
        return None if self.listing is None else _resolve(self.listing)


@dataclass(frozen=True)
class ApiSpec:
    """One CyberArk API as the fetch core sees it."""

    name: str
    """The connection's ``api`` extra."""
    label: str
    """For messages and the connection form."""
    ref_scheme: str
    """A bare reference ``x`` on this API's connection means ``<ref_scheme>:x``."""
    ref_types: str | type | tuple[type, ...]
    """The reference class(es) this API serves, or ``"module:Class"``."""
    auth_methods: tuple[AuthMethod, ...] | str
    """The first one is the default; ``"module:NAME"`` when the list lives elsewhere."""
    check: str | Callable[[Any, Any], str]
    """``check(client, settings) -> message``: what the UI's Test button runs (authenticate only)."""
    batch: str | Callable[..., Any] | None = None
    """``batch(client, refs, reason) -> {ref: value}`` for APIs that fetch many values in one call."""
    session_per_fetch: bool = False
    """Open a client (a session) per fetch and close it after, instead of keeping one."""
    extra_fields: tuple[str, ...] = ()
    """Connection extras (and backend kwargs) this API reads whatever the auth method."""
    client: str | ClientBuilder | None = None
    """Builds this API's client around the strategy of an auth method that gives one."""
    ref_parser: str | RefParser | None = None
    """Parses ``<ref_scheme>:`` references; registered with the client layer's scheme registry by
    ``register_api``. None for the built-in APIs, whose schemes the client layer parses itself."""
    doctor: DoctorChecks = DoctorChecks()

    @property
    def methods(self) -> tuple[AuthMethod, ...]:
        return tuple(_resolve(self.auth_methods))

    def auth_method(self, name: str | None) -> AuthMethod | None:
        methods = self.methods
        if not name:
            return methods[0]
        wanted = name.lower()
        return next((method for method in methods if method.name == wanted), None)

    @property
    def auth_names(self) -> tuple[str, ...]:
        return tuple(method.name for method in self.methods)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every extra this API reads: its own and those of its auth methods."""
        return tuple(dict.fromkeys([*self.extra_fields, *(f for method in self.methods for f in method.fields)]))

    def build_client(self, method: AuthMethod, settings: Any, *, on_event: Any, register: Callable[[str], None]) -> Any:
        if method.strategy is None:
            return method.build(settings, on_event=on_event, register=register)
        if self.client is None:
            raise TypeError(f"API {self.name!r} has no client builder for the strategy of auth method {method.name!r}")
        auth = method.build_strategy(settings, register=register)
        return _resolve(self.client)(settings, auth, on_event=on_event)

    def accepts(self, ref: object) -> bool:
        types = _resolve(self.ref_types)
        return isinstance(ref, types)

    def run_check(self, client: Any, settings: Any) -> str:
        return str(_resolve(self.check)(client, settings))

    def batch_fetcher(self) -> Callable[..., Any] | None:
        return None if self.batch is None else _resolve(self.batch)


_APIS: dict[str, ApiSpec] = {}


def register_api(spec: ApiSpec) -> ApiSpec:
    """Adds (or replaces) an API; its name becomes a valid ``api`` extra, and its ``ref_parser``
    (if any) the parser of its reference scheme."""
    if spec.ref_parser is not None:
        from .client.refs import register_scheme  # the client layer only when an API brings a parser

        register_scheme(spec.ref_scheme, _resolve(spec.ref_parser))
    _APIS[spec.name] = spec
    return spec


def unregister_api(name: str) -> None:
    spec = _APIS.pop(name, None)
    if spec is not None and spec.ref_parser is not None:
        from .client.refs import unregister_scheme

        unregister_scheme(spec.ref_scheme)


def register_auth_method(api: str, method: AuthMethod) -> AuthMethod:
    """Adds (or replaces) an auth method of a registered API; the API's default stays first."""
    spec = _APIS.get(api)
    if spec is None:
        raise KeyError(f"no API {api!r} is registered (known: {', '.join(_APIS)})")
    kept = tuple(m for m in spec.methods if m.name != method.name)
    _APIS[api] = dataclasses.replace(spec, auth_methods=(*kept, method))
    return method


def unregister_auth_method(api: str, name: str) -> None:
    spec = _APIS.get(api)
    if spec is not None:
        _APIS[api] = dataclasses.replace(spec, auth_methods=tuple(m for m in spec.methods if m.name != name))


def api_spec(name: str) -> ApiSpec | None:
    return _APIS.get(name)


def api_names() -> tuple[str, ...]:
    """Every registered API name, built-ins first, in registration order."""
    return tuple(_APIS)


def apis() -> Mapping[str, ApiSpec]:
    return dict(_APIS)


def auth_method_names(names: Iterable[str] | None = None) -> tuple[str, ...]:
    """Every auth method name of the given APIs (all registered ones by default), each once, in
    table order: the connection form's choices."""
    specs = [_APIS[name] for name in (api_names() if names is None else names) if name in _APIS]
    return tuple(dict.fromkeys(method.name for spec in specs for method in spec.methods))


def secret_fields() -> tuple[SecretField, ...]:
    """Every extra of a registered auth method that holds a secret inline, each once."""
    found: dict[str, SecretField] = {}
    for spec in _APIS.values():
        for method in spec.methods:
            for secret in method.secrets:
                found.setdefault(secret.name, secret)
    return tuple(found.values())


def table_fields() -> tuple[str, ...]:
    """Every extra that some registered API or auth method reads."""
    return tuple(dict.fromkeys(field for spec in _APIS.values() for field in spec.fields))


_BUILDERS = "cyberark_ops.builders"
_PASSWORD = ("password_file", "password_env")
"""Where a PVWA password or a Privilege Cloud client secret may come from besides the Password field."""

PVWA_RETRIEVE_FIELDS = ("check_in", "ticketing_system", "ticket_id")
"""PVWA / Privilege Cloud: check exclusive accounts in after use; the ticket every retrieve carries."""


register_api(
    ApiSpec(
        name="conjur",
        label="Conjur",
        ref_scheme="conjur",
        ref_types="cyberark_ops.client.refs:ConjurRef",
        auth_methods=(
            AuthMethod(
                "api_key",
                "a host's or user's API key",
                strategy=f"{_BUILDERS}:conjur_api_key",
                fields=("api_key", "api_key_file", "api_key_env"),
                secrets=(SecretField("api_key", file="api_key_file", env="api_key_env"),),
            ),
            AuthMethod(
                "jwt",
                "a workload JWT (authn-jwt)",
                strategy=f"{_BUILDERS}:conjur_jwt",
                fields=("jwt_service_id", "jwt_token_path", "jwt_token"),
                secrets=(SecretField("jwt_token", file="jwt_token_path"),),
            ),
            AuthMethod(
                "access_token_file",
                "an access token a sidecar keeps fresh",
                strategy=f"{_BUILDERS}:conjur_access_token_file",
                fields=("access_token_path",),
            ),
            AuthMethod(
                "authn-iam",
                "the worker's AWS identity (authn-iam; botocore: extra aws)",
                strategy=f"{_BUILDERS}:conjur_iam",
                fields=("service_id", "aws_region", "aws_profile", "aws_sts_url"),
                remedy=(
                    "The host id must end with <aws account id>/<iam role name> of the identity shown under "
                    "'cloud identity'; check service_id (authn-iam/<service_id> enabled, the host permitted "
                    "'authenticate' on it) and aws_region ('global' or the STS endpoint's region)"
                ),
            ),
            AuthMethod(
                "authn-azure",
                "the VM's Azure managed identity (authn-azure)",
                strategy=f"{_BUILDERS}:conjur_azure",
                fields=("service_id", "azure_client_id", "metadata_url"),
                remedy=(
                    "Give the host the annotations listed under 'cloud identity' (authn-azure/subscription-id, "
                    "resource-group, and user-assigned-identity or system-assigned-identity); check service_id "
                    "(its provider-uri is https://sts.windows.net/<tenant id>/) and azure_client_id"
                ),
            ),
            AuthMethod(
                "authn-gcp",
                "the instance's Google Cloud identity (authn-gcp)",
                strategy=f"{_BUILDERS}:conjur_gcp",
                fields=("metadata_url",),
                remedy=(
                    "Give the host (the login) at least one of the annotations authn-gcp/project-id, "
                    "service-account-id, service-account-email with the values under 'cloud identity', and "
                    "permit it 'authenticate' on conjur/authn-gcp"
                ),
            ),
        ),
        check=f"{_BUILDERS}:check_conjur",
        batch=f"{_BUILDERS}:conjur_batch",
        extra_fields=("account", "cloud"),
        client=f"{_BUILDERS}:conjur_client",
        doctor=DoctorChecks(
            auth_remedy=(
                "Check the login (host/<policy>/<id>), the account and the API key (rotated keys change); "
                "for JWT, the service id and the token's claims"
            ),
            path_remedy="Check the variable id; permit read + execute on it to this identity",
            forbidden_path_remedy="Permit execute on the variable to this identity in Conjur policy",
            listing=f"{_BUILDERS}:list_conjur",
        ),
    )
)
register_api(
    ApiSpec(
        name="ccp",
        label="CCP",
        ref_scheme="ccp",
        ref_types="cyberark_ops.client.refs:CCPRef",
        auth_methods=(
            AuthMethod(
                "app_id", "the AppID (and its client certificate)", f"{_BUILDERS}:ccp_app_id", fields=("app_id",)
            ),
        ),
        check=f"{_BUILDERS}:check_ccp",
        extra_fields=(
            "service_path",
            "fail_on_password_change",
            "password_change_retries",
            "password_change_wait",
            "connection_timeout",
        ),
        doctor=DoctorChecks(
            path_remedy=(
                "Check the Safe/Object; the AppID needs Retrieve + List on the safe, and its authentication rules"
            ),
            no_logon=f"{_BUILDERS}:ccp_no_logon",
            no_logon_remedy="Give --path so that a real fetch checks the AppID",
            no_client_cert=(
                "no client_cert: CCP identifies this machine by address and OS user only",
                "If the AppID requires a certificate, set client_cert and client_key (PEM)",
            ),
        ),
    )
)
register_api(
    ApiSpec(
        name="pvwa",
        label="PVWA",
        ref_scheme="pvwa",
        ref_types="cyberark_ops.client.refs:PVWARef",
        auth_methods=tuple(
            AuthMethod(kind, f"{label} logon", strategy=f"{_BUILDERS}:pvwa_logon", fields=_PASSWORD)
            for kind, label in PVWA_LOGON_TYPES.items()
        ),
        check=f"{_BUILDERS}:check_pvwa",
        session_per_fetch=True,
        extra_fields=PVWA_RETRIEVE_FIELDS,
        client=f"{_BUILDERS}:pvwa_client",
        doctor=DoctorChecks(listing=f"{_BUILDERS}:list_pvwa"),
    )
)
register_api(
    ApiSpec(
        name="privilege-cloud",
        label="Privilege Cloud",
        ref_scheme="pvwa",
        ref_types="cyberark_ops.client.refs:PVWARef",
        auth_methods=(
            AuthMethod(
                "client_credentials",
                "an Identity OAuth client",
                strategy=f"{_BUILDERS}:platform_token",
                fields=("identity_url", *_PASSWORD),
            ),
        ),
        check=f"{_BUILDERS}:check_pvwa",
        session_per_fetch=True,
        extra_fields=PVWA_RETRIEVE_FIELDS,
        client=f"{_BUILDERS}:pvwa_client",
        doctor=DoctorChecks(listing=f"{_BUILDERS}:list_pvwa"),
    )
)

BUILTIN_APIS = api_names()
BUILTIN_AUTH_METHODS = auth_method_names()
"""The auth methods of the built-in APIs as the package ships them (before any registration)."""

__all__ = [
    "BUILTIN_APIS",
    "BUILTIN_AUTH_METHODS",
    "PVWA_LOGON_TYPES",
    "PVWA_RETRIEVE_FIELDS",
    "ApiSpec",
    "AuthMethod",
    "DoctorChecks",
    "SecretField",
    "api_names",
    "api_spec",
    "apis",
    "auth_method_names",
    "register_api",
    "register_auth_method",
    "secret_fields",
    "table_fields",
    "unregister_api",
    "unregister_auth_method",
]
