"""The authentication checks: does the identity log on, and how long its token lives. The advice
on a failure is the auth method's or the API's own (the table's), never written here.
"""

from __future__ import annotations

from typing import Any

from ..client import AuthenticatedClient, AuthenticationFailed, BaseClient, CyberArkError, Forbidden
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
