"""The authentication checks: the cloud identity a cloud authenticator presents, does the identity
log on, and how long its token lives. The advice on a failure is the auth method's or the API's own
(the table's), never written here.
"""

from __future__ import annotations

from typing import Any

from ..client import (
    AuthenticatedClient,
    AuthenticationFailed,
    BaseClient,
    ConfigurationError,
    CyberArkError,
    Forbidden,
)
from ..client.base import TokenFacts
from ..settings import ConnectionSettings
from .report import FAIL, PASS, SKIP, WARN, Check, _error_text

SHORT_TOKEN = 60.0
"""A token living less than this is renewed on almost every fetch."""


def _auth_remedy(settings: ConnectionSettings) -> str:
    """The auth method's own advice, else its API's."""
    method = settings.spec.auth_method(settings.extras.get("auth_method"))
    if method is not None and method.remedy:
        return method.remedy
    return settings.spec.doctor.auth_remedy


def check_cloud_identity(client: BaseClient[Any, Any], settings: ConnectionSettings) -> Check | None:
    """Which cloud identity the worker has and which Conjur host it maps to, asked of the cloud
    (STS, the metadata service) and not of Conjur: what a failed authentication is compared with.
    None for an auth method that is not a cloud authenticator. Never a token: only its claims."""
    identity_of = getattr(client, "cloud_identity", None)
    if not callable(identity_of):
        return None
    name = "cloud identity"
    try:
        identity = identity_of()
    except ConfigurationError as exc:
        return Check(name, FAIL, str(exc), "Fix the setting the detail names")
    except CyberArkError as exc:
        remedy = "Check metadata_url (aws_sts_url for AWS) and that this machine has a cloud identity"
        return Check(name, FAIL, _error_text(exc), remedy)
    if identity is None:
        return None
    facts = ", ".join(f"{key} {value}" for key, value in identity.details.items())
    detail = f"{identity.cloud} identity {identity.identity}" + (f" ({facts})" if facts else "")
    detail += f" -> Conjur host {identity.conjur_host!r}"
    if identity.problem:
        return Check(name, WARN, f"{detail}: {identity.problem}", _auth_remedy(settings))
    return Check(name, PASS, detail)


def check_authentication(client: BaseClient[Any, Any], settings: ConnectionSettings) -> tuple[Check, TokenFacts | None]:
    name = "authentication"
    if not isinstance(client, AuthenticatedClient):
        entry = settings.spec.doctor
        return Check(name, SKIP, entry.no_logon_text(settings), entry.no_logon_remedy), None
    try:
        facts = client.fresh_token()
    except (AuthenticationFailed, Forbidden) as exc:
        return Check(name, FAIL, _error_text(exc), _auth_remedy(settings)), None
    except CyberArkError as exc:
        return Check(name, FAIL, _error_text(exc), "See the detail; the other checks point at the cause"), None
    who = facts.subject or client.login
    return Check(name, PASS, f"authenticated to {settings.spec.label} as {who!r}"), facts


def check_token_ttl(facts: TokenFacts | None, settings: ConnectionSettings) -> Check:
    name = "token TTL"
    if facts is None:
        return Check(name, SKIP, "no token obtained")
    if facts.lifetime is None:
        return Check(
            name,
            SKIP,
            f"the {settings.spec.label} token does not say when it expires (the server ends the session)",
        )
    if facts.lifetime < SHORT_TOKEN:
        return Check(
            name,
            WARN,
            f"tokens live {facts.lifetime:g} s: nearly every fetch re-authenticates",
            "Raise the token TTL on the server (Conjur: the authenticator's token_ttl, default 8 min)",
        )
    return Check(name, PASS, f"tokens live {facts.lifetime:g} s; renewed after {facts.renew_in:g} s")
