"""The Airflow-free CyberArk client layer: Conjur, CCP and PVWA / Privilege Cloud.

Nothing here imports Airflow, so the secrets backend, the hook and command-line tools share it,
and it can be used (and tested) on its own. Only ``requests`` and the standard library are used.
"""

from __future__ import annotations

from .auth import (
    PROCESS_TOKEN_CACHE,
    AccessToken,
    AuthStrategy,
    ConjurApiKeyAuth,
    ConjurAuth,
    ConjurJWTAuth,
    PlatformTokenAuth,
    PVWAAuth,
    PVWALogonAuth,
    TokenCache,
)
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
from .pvwa import PVWAClient
from .refs import CCPRef, ConjurRef, CredentialRef, PVWARef, parse_ref
from .transport import EventCallback, Transport

__all__ = [
    "PROCESS_TOKEN_CACHE",
    "AccessToken",
    "AmbiguousQuery",
    "AuthStrategy",
    "AuthenticationFailed",
    "CCPClient",
    "CCPConfig",
    "CCPRef",
    "ConfigurationError",
    "ConjurApiKeyAuth",
    "ConjurAuth",
    "ConjurClient",
    "ConjurConfig",
    "ConjurJWTAuth",
    "ConjurRef",
    "Credential",
    "CredentialRef",
    "CyberArkError",
    "EventCallback",
    "Forbidden",
    "InvalidResponse",
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
    "parse_ref",
]
