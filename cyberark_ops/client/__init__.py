"""The Airflow-free CyberArk client layer: Conjur, CCP and PVWA / Privilege Cloud.

Nothing here imports Airflow, so the secrets backend, the hook and command-line tools share it,
and it can be used (and tested) on its own. Only ``requests`` and the standard library are used.

The generic pieces are public, so a client for another API needs no change in this package:

* ``ApiProfile`` (``profile.py``): the API's name, display name, error code table and error-body
  parser (``error_body_parser`` / ``nested_error_fields`` build one from a JSON field picker);
* ``Transport`` and ``Call`` (``transport.py``): the request path, with TLS (``tls.py``), retries,
  pacing, the deadline, events and typed errors; ``Transport.error`` / ``message`` build messages;
* ``AuthStrategy`` / ``JSONTokenAuth``, ``AuthContext``, ``Authenticator``, ``AccessToken``,
  ``TokenCache``, ``renewal_delay`` (``auth/core.py``; the strategies in ``auth/``, one module per
  API): a credential exchanged for a token, cached, and renewed once after a 401;
* ``BaseClient`` / ``AuthenticatedClient`` / ``CredentialSource`` (``base.py``): transport,
  ``close``, ``with``, ``repr``, the token of ``config.auth``, and the uniform
  ``get(ref, *, reason) -> Credential``; ``Credential`` (``credential.py``).

``tests/client/test_fourth_api.py`` is such a client, written entirely outside the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562), so importing one module of the layer (``client.errors``
# for an exception class) loads that module only; the glue can then import the whole layer lazily,
# when a fetch runs rather than when the dag-processor parses a DAG file.
_MODULES: dict[str, tuple[str, ...]] = {
    "auth": (
        "PROCESS_TOKEN_CACHE",
        "AccessToken",
        "AuthContext",
        "AuthStrategy",
        "Authenticator",
        "ConjurAccessTokenFileAuth",
        "ConjurApiKeyAuth",
        "ConjurAuth",
        "ConjurJWTAuth",
        "JSONTokenAuth",
        "PVWAAuth",
        "PVWALogonAuth",
        "PlatformTokenAuth",
        "TokenCache",
        "renewal_delay",
    ),
    "base": ("AuthenticatedClient", "BaseClient", "CredentialSource"),
    "ccp": ("CCPClient",),
    "config": ("CCPConfig", "ConjurConfig", "PVWAConfig", "TransportConfig"),
    "conjur": ("ConjurClient",),
    "credential": ("Credential",),
    "errors": (
        "AmbiguousQuery",
        "AuthenticationFailed",
        "ConfigurationError",
        "CyberArkError",
        "Forbidden",
        "InvalidResponse",
        "NotFound",
        "PasswordChangeInProgress",
        "RateLimited",
        "Unavailable",
    ),
    "profile": ("ApiProfile", "error_body_parser", "nested_error_fields"),
    "pvwa": ("PVWAClient",),
    "refs": ("CCPRef", "ConjurRef", "CredentialRef", "PVWARef", "parse_ref"),
    "transport": ("Call", "EventCallback", "Transport"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

if TYPE_CHECKING:
    from .auth import (
        PROCESS_TOKEN_CACHE,
        AccessToken,
        AuthContext,
        Authenticator,
        AuthStrategy,
        ConjurAccessTokenFileAuth,
        ConjurApiKeyAuth,
        ConjurAuth,
        ConjurJWTAuth,
        JSONTokenAuth,
        PlatformTokenAuth,
        PVWAAuth,
        PVWALogonAuth,
        TokenCache,
        renewal_delay,
    )
    from .base import AuthenticatedClient, BaseClient, CredentialSource
    from .ccp import CCPClient
    from .config import CCPConfig, ConjurConfig, PVWAConfig, TransportConfig
    from .conjur import ConjurClient
    from .credential import Credential
    from .errors import (
        AmbiguousQuery,
        AuthenticationFailed,
        ConfigurationError,
        CyberArkError,
        Forbidden,
        InvalidResponse,
        NotFound,
        PasswordChangeInProgress,
        RateLimited,
        Unavailable,
    )
    from .profile import ApiProfile, error_body_parser, nested_error_fields
    from .pvwa import PVWAClient
    from .refs import CCPRef, ConjurRef, CredentialRef, PVWARef, parse_ref
    from .transport import Call, EventCallback, Transport


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "PROCESS_TOKEN_CACHE",
    "AccessToken",
    "AmbiguousQuery",
    "ApiProfile",
    "AuthContext",
    "AuthStrategy",
    "AuthenticatedClient",
    "AuthenticationFailed",
    "Authenticator",
    "BaseClient",
    "CCPClient",
    "CCPConfig",
    "CCPRef",
    "Call",
    "ConfigurationError",
    "ConjurAccessTokenFileAuth",
    "ConjurApiKeyAuth",
    "ConjurAuth",
    "ConjurClient",
    "ConjurConfig",
    "ConjurJWTAuth",
    "ConjurRef",
    "Credential",
    "CredentialRef",
    "CredentialSource",
    "CyberArkError",
    "EventCallback",
    "Forbidden",
    "InvalidResponse",
    "JSONTokenAuth",
    "NotFound",
    "PVWAAuth",
    "PVWAClient",
    "PVWAConfig",
    "PVWALogonAuth",
    "PVWARef",
    "PasswordChangeInProgress",
    "PlatformTokenAuth",
    "RateLimited",
    "TokenCache",
    "Transport",
    "TransportConfig",
    "Unavailable",
    "error_body_parser",
    "nested_error_fields",
    "parse_ref",
    "renewal_delay",
]
