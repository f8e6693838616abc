"""Authentication strategies, one module per API (as hvac's ``api/auth_methods/``), and what
they share (``core``: the strategy contract, the token cache, the auth flow).

* ``conjur``: ``authn`` (API key), ``authn-jwt`` and a sidecar's access token file;
* ``conjur_cloud``: ``authn-iam``, ``authn-azure``, ``authn-gcp`` (the worker's cloud identity;
  botocore imported only when signing);
* ``pvwa``: the PVWA logon types (a Vault session the client logs off);
* ``privilege_cloud``: Privilege Cloud's Identity platform token.

CCP has no strategy: the AppID's rules (client certificate, address, OS user) authenticate each
request. Every name stays importable from ``cyberark_ops.client.auth``, as before the split.
"""

from __future__ import annotations

from .conjur import (
    CONJUR_FALLBACK_LIFETIME,
    JWT_SHAPE,
    ConjurAccessTokenFileAuth,
    ConjurApiKeyAuth,
    ConjurAuth,
    ConjurJWTAuth,
    conjur_access_token,
    conjur_token_claims,
    lenient_b64decode,
)
from .conjur_cloud import CloudIdentity, ConjurAzureAuth, ConjurCloudAuth, ConjurGCPAuth, ConjurIAMAuth
from .core import (
    PROCESS_TOKEN_CACHE,
    AccessToken,
    AuthContext,
    Authenticator,
    AuthStrategy,
    JSONTokenAuth,
    TokenCache,
    fingerprint,
    renewal_delay,
)
from .privilege_cloud import PlatformTokenAuth
from .pvwa import PVWA_LOGON_TYPES, PVWAAuth, PVWALogonAuth

__all__ = [
    "CONJUR_FALLBACK_LIFETIME",
    "JWT_SHAPE",
    "PROCESS_TOKEN_CACHE",
    "PVWA_LOGON_TYPES",
    "AccessToken",
    "AuthContext",
    "AuthStrategy",
    "Authenticator",
    "CloudIdentity",
    "ConjurAccessTokenFileAuth",
    "ConjurApiKeyAuth",
    "ConjurAuth",
    "ConjurAzureAuth",
    "ConjurCloudAuth",
    "ConjurGCPAuth",
    "ConjurIAMAuth",
    "ConjurJWTAuth",
    "JSONTokenAuth",
    "PVWAAuth",
    "PVWALogonAuth",
    "PlatformTokenAuth",
    "TokenCache",
    "conjur_access_token",
    "conjur_token_claims",
    "fingerprint",
    "lenient_b64decode",
    "renewal_delay",
]
