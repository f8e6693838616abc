"""The one table of CyberArk APIs: for each API its auth methods, each with the builder of its client.

Everything that needs to know which APIs exist reads this table: settings validation, reference
resolution, the fetch core, the connection form (provider info) and the docs. A fourth API is one
``register_api`` call, from inside the package or from outside it.

Import-light on purpose: provider discovery reads the API names in every Airflow process, so the
built-in builders are named as ``"module:function"`` and imported only when a client is built.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Builder = Callable[..., Any]
"""``builder(settings, *, on_event, register) -> client``; ``register`` sees every credential used
to reach CyberArk itself, so that it can be masked."""


def _resolve(target: Any) -> Any:
    return _import(target) if isinstance(target, str) else target


@functools.cache
def _import(target: str) -> Any:
    """``"module:name"``, imported once: specs resolve their types on every fetch."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class AuthMethod:
    name: str
    """The ``auth_method`` extra that selects it."""
    description: str
    builder: str | Builder
    """A callable, or ``"module:function"`` imported when the first client is built."""

    def build(self, settings: Any, *, on_event: Any, register: Callable[[str], None]) -> Any:
        return _resolve(self.builder)(settings, on_event=on_event, register=register)


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
    """The first one is the default; ``"module:NAME"`` when the list lives with the client layer."""
    check: str | Callable[[Any, Any], str]
    """``check(client, settings) -> message``: what the UI's Test button runs (authenticate only)."""
    batch: str | Callable[..., Any] | None = None
    """``batch(client, refs, reason) -> {ref: value}`` for APIs that fetch many values in one call."""
    session_per_fetch: bool = False
    """Open a client (a session) per fetch and close it after, instead of keeping one."""
    extra_fields: tuple[str, ...] = ()
    """Connection extras (and backend kwargs) this API reads beyond the built-in ones."""

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

    def accepts(self, ref: object) -> bool:
        types = _resolve(self.ref_types)
        return isinstance(ref, types)

    def run_check(self, client: Any, settings: Any) -> str:
        return str(_resolve(self.check)(client, settings))

    def batch_fetcher(self) -> Callable[..., Any] | None:
        return None if self.batch is None else _resolve(self.batch)


_APIS: dict[str, ApiSpec] = {}


def register_api(spec: ApiSpec) -> ApiSpec:
    """Adds (or replaces) an API; its name becomes a valid ``api`` extra."""
    _APIS[spec.name] = spec
    return spec


def unregister_api(name: str) -> None:
    _APIS.pop(name, None)


def api_spec(name: str) -> ApiSpec | None:
    return _APIS.get(name)


def api_names() -> tuple[str, ...]:
    """Every registered API name, built-ins first, in registration order."""
    return tuple(_APIS)


def apis() -> Mapping[str, ApiSpec]:
    return dict(_APIS)


_BUILDERS = "cyberark_ops.builders"

register_api(
    ApiSpec(
        name="conjur",
        label="Conjur",
        ref_scheme="conjur",
        ref_types="cyberark_ops.client.refs:ConjurRef",
        auth_methods=(
            AuthMethod("api_key", "a host's or user's API key", f"{_BUILDERS}:conjur_api_key"),
            AuthMethod("jwt", "a workload JWT (authn-jwt)", f"{_BUILDERS}:conjur_jwt"),
            AuthMethod(
                "access_token_file", "an access token a sidecar keeps fresh", f"{_BUILDERS}:conjur_access_token_file"
            ),
        ),
        check=f"{_BUILDERS}:check_conjur",
        batch=f"{_BUILDERS}:conjur_batch",
    )
)
register_api(
    ApiSpec(
        name="ccp",
        label="CCP",
        ref_scheme="ccp",
        ref_types="cyberark_ops.client.refs:CCPRef",
        auth_methods=(AuthMethod("app_id", "the AppID (and its client certificate)", f"{_BUILDERS}:ccp_app_id"),),
        check=f"{_BUILDERS}:check_ccp",
    )
)
register_api(
    ApiSpec(
        name="pvwa",
        label="PVWA",
        ref_scheme="pvwa",
        ref_types="cyberark_ops.client.refs:PVWARef",
        # One method per logon type the auth strategy knows (cyberark, ldap, radius, windows).
        auth_methods=f"{_BUILDERS}:PVWA_AUTH_METHODS",
        check=f"{_BUILDERS}:check_pvwa",
        session_per_fetch=True,
    )
)
register_api(
    ApiSpec(
        name="privileged-cloud",
        label="Privilege Cloud",
        ref_scheme="pvwa",
        ref_types="cyberark_ops.client.refs:PVWARef",
        auth_methods=(AuthMethod("client_credentials", "an Identity OAuth client", f"{_BUILDERS}:privileged_cloud"),),
        check=f"{_BUILDERS}:check_pvwa",
        session_per_fetch=True,
    )
)

BUILTIN_APIS = api_names()

__all__ = [
    "BUILTIN_APIS",
    "ApiSpec",
    "AuthMethod",
    "api_names",
    "api_spec",
    "apis",
    "register_api",
    "unregister_api",
]
