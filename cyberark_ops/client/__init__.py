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

import ast
import importlib
from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562), so importing one module of the layer (``client.errors``
# for an exception class) loads that module only; the glue can then import the whole layer lazily,
# when a fetch runs rather than when the dag-processor parses a DAG file. The block below is the one
# list of exports: type checkers read it, and at run time ``_LAZY`` is read from it (the pattern of
# scientific Python's lazy_loader), so a name is never added to one table and forgotten in another.
if TYPE_CHECKING:
    from .auth import PROCESS_TOKEN_CACHE as PROCESS_TOKEN_CACHE
    from .auth import AccessToken as AccessToken
    from .auth import AuthContext as AuthContext
    from .auth import Authenticator as Authenticator
    from .auth import AuthStrategy as AuthStrategy
    from .auth import ConjurAccessTokenFileAuth as ConjurAccessTokenFileAuth
    from .auth import ConjurApiKeyAuth as ConjurApiKeyAuth
    from .auth import ConjurAuth as ConjurAuth
    from .auth import ConjurJWTAuth as ConjurJWTAuth
    from .auth import JSONTokenAuth as JSONTokenAuth
    from .auth import PlatformTokenAuth as PlatformTokenAuth
    from .auth import PVWAAuth as PVWAAuth
    from .auth import PVWALogonAuth as PVWALogonAuth
    from .auth import TokenCache as TokenCache
    from .auth import renewal_delay as renewal_delay
    from .auth.conjur_cloud import CloudIdentity as CloudIdentity
    from .auth.conjur_cloud import ConjurAzureAuth as ConjurAzureAuth
    from .auth.conjur_cloud import ConjurCloudAuth as ConjurCloudAuth
    from .auth.conjur_cloud import ConjurGCPAuth as ConjurGCPAuth
    from .auth.conjur_cloud import ConjurIAMAuth as ConjurIAMAuth
    from .base import AuthenticatedClient as AuthenticatedClient
    from .base import BaseClient as BaseClient
    from .base import CredentialSource as CredentialSource
    from .ccp import CCPClient as CCPClient
    from .config import CCPConfig as CCPConfig
    from .config import ConjurConfig as ConjurConfig
    from .config import PVWAConfig as PVWAConfig
    from .config import TransportConfig as TransportConfig
    from .conjur import ConjurClient as ConjurClient
    from .credential import Credential as Credential
    from .errors import AmbiguousQuery as AmbiguousQuery
    from .errors import AuthenticationFailed as AuthenticationFailed
    from .errors import CheckedOutByAnotherUser as CheckedOutByAnotherUser
    from .errors import ConfigurationError as ConfigurationError
    from .errors import CyberArkError as CyberArkError
    from .errors import Forbidden as Forbidden
    from .errors import InvalidResponse as InvalidResponse
    from .errors import NotFound as NotFound
    from .errors import PasswordChangeInProgress as PasswordChangeInProgress
    from .errors import RateLimited as RateLimited
    from .errors import Unavailable as Unavailable
    from .profile import ApiProfile as ApiProfile
    from .profile import error_body_parser as error_body_parser
    from .profile import nested_error_fields as nested_error_fields
    from .pvwa import PVWAClient as PVWAClient
    from .refs import CCPRef as CCPRef
    from .refs import ConjurRef as ConjurRef
    from .refs import CredentialRef as CredentialRef
    from .refs import PVWARef as PVWARef
    from .refs import parse_ref as parse_ref
    from .transport import Call as Call
    from .transport import EventCallback as EventCallback
    from .transport import Transport as Transport


def _exports(source: str) -> dict[str, str]:
    """Public name -> module, from the ``if TYPE_CHECKING:`` block of this file's ``source``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return {
                alias.name: str(statement.module)
                for statement in node.body
                if isinstance(statement, ast.ImportFrom)
                for alias in statement.names
            }
    raise ImportError(f"{__name__}: no TYPE_CHECKING block of exports in its source")


def _own_source() -> str:
    # (no isinstance check against importlib.abc: importing it costs more than this whole package)
    get_source = getattr(__spec__.loader if __spec__ is not None else None, "get_source", None)
    source: str | None = get_source(__name__) if callable(get_source) else None
    if source is None:
        raise ImportError(f"{__name__} needs its source to list its exports (installed without .py files?)")
    return source


_LAZY = _exports(_own_source())
__all__ = sorted(_LAZY)  # noqa: PLE0605 - the names of the block above


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
