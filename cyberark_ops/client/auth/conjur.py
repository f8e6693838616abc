"""Conjur's authentication strategies (``authn``, ``authn-jwt``, a sidecar's access token file)
and the reading of the Conjur access token they all end with."""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..errors import ConfigurationError
from ..transport import Call
from ..untrusted import SECRET_FILE_CAP, TOKEN_FILE_CAP, parse_json, read_regular_file, read_text_file
from ..validation import require_name, require_secret
from .core import AccessToken, AuthContext, AuthStrategy, fingerprint, renewal_delay

if TYPE_CHECKING:
    import requests

    from ..transport import Transport

CONJUR_FALLBACK_LIFETIME = 240.0
"""Used when a Conjur token carries no readable ``iat``/``exp`` (half the server default)."""
JWT_SHAPE = re.compile(r"^[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+$")


class ConjurAuth(AuthStrategy):
    """Conjur's authenticators all answer with a (base64) Conjur access token."""

    api = "conjur"

    def read_token(self, ctx: AuthContext, call: Call, response: requests.Response) -> AccessToken:
        return conjur_access_token(response, ctx.transport, call)


# -- Conjur -------------------------------------------------------------------------------------


def lenient_b64decode(text: str | bytes) -> bytes:
    """Standard base64 that also takes url-safe characters and missing padding (Conjur tokens)."""
    raw = text.decode("ascii") if isinstance(text, bytes) else text
    cleaned = re.sub(r"\s+", "", raw).replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))


def conjur_token_claims(token_b64: str) -> dict[str, Any] | None:
    """The payload claims of a base64-encoded Conjur token, or None if it is not one."""
    try:
        token = parse_json(lenient_b64decode(token_b64))
        if not isinstance(token, dict) or not isinstance(token.get("payload"), str):
            return None
        claims = parse_json(lenient_b64decode(token["payload"]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def conjur_access_token(response: requests.Response, transport: Transport, call: Call) -> AccessToken:
    if "base64" in response.headers.get("Content-Encoding", "").lower() or response.content[:1] != b"{":
        token_b64 = response.content.decode("ascii", "replace").strip()
    else:  # a server that ignored Accept-Encoding: base64 sends the token JSON itself
        token_b64 = base64.b64encode(response.content.strip()).decode("ascii")
    claims = conjur_token_claims(token_b64)
    if claims is None:
        raise transport.invalid_response(call, "something that is not a Conjur access token", response.status_code)
    lifetime: float | None = None
    iat, exp = claims.get("iat"), claims.get("exp")
    if isinstance(iat, (int, float)) and isinstance(exp, (int, float)) and exp > iat:
        lifetime = float(exp - iat)  # server clock differences cancel out
    delay = renewal_delay(lifetime) if lifetime is not None else CONJUR_FALLBACK_LIFETIME
    subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    return AccessToken(f'Token token="{token_b64}"', renew_in=delay, lifetime=lifetime, subject=subject)


class ConjurApiKeyAuth(ConjurAuth):
    """``authn``: a host (``host/<policy>/<id>``) or user login and its API key."""

    __slots__ = ("_api_key", "_login")

    def __init__(self, login: str, api_key: str) -> None:
        self._login = require_name(login, "login")
        self._api_key = require_secret(api_key, "api_key").strip()

    @property
    def login(self) -> str:
        return self._login

    def fingerprint(self) -> str:
        return fingerprint("authn", self._login, self._api_key)

    def token_call(self, ctx: AuthContext) -> Call:
        account = ctx.account or ""
        return Call(
            "POST",
            f"{ctx.prefix}/authn/{quote(account, safe='')}/{quote(self._login, safe='')}/authenticate",
            action="authenticate",
            target=f"for login {self._login!r}",
            headers={"Accept-Encoding": "base64", "Content-Type": "text/plain"},
            body=self._api_key.encode(),
            hints={
                401: f"Check the login (hosts look like host/<policy>/<id>), the account {account!r} and the "
                "API key (it changes when rotated).",
                403: "The role may not authenticate here (e.g. restricted_to a network that excludes this worker).",
            },
        )


class ConjurJWTAuth(ConjurAuth):
    """``authn-jwt``: a workload JWT (e.g. a rotating Kubernetes service account token).

    The file is read again on every authentication, so a rotated token is picked up without
    rebuilding the client. With ``login`` the host id goes in the URL; without it Conjur derives
    the identity from a claim (``token-app-property``).
    """

    __slots__ = ("_instance", "_login", "_service_id", "_token_file", "_token_provider")

    def __init__(
        self,
        service_id: str,
        *,
        token_file: str | os.PathLike[str] | None = None,
        token_provider: Callable[[], str] | None = None,
        login: str | None = None,
    ) -> None:
        self._service_id = require_name(service_id, "service_id")
        if (token_file is None) == (token_provider is None):
            raise ConfigurationError("token_file / token_provider: give exactly one of them", field="token_file")
        if token_provider is not None and not callable(token_provider):
            raise ConfigurationError("token_provider: must be a callable returning the JWT", field="token_provider")
        self._token_file = os.fspath(token_file) if token_file is not None else None
        self._token_provider = token_provider
        self._login = require_name(login, "login") if login is not None else None
        # A provider callable has no stable identity to share a cached token by; give each
        # strategy object its own entry.
        self._instance = secrets.token_hex(8)

    @property
    def login(self) -> str:
        return self._login or f"<claim of authn-jwt/{self._service_id}>"

    def fingerprint(self) -> str:
        source = os.path.realpath(self._token_file) if self._token_file else self._instance
        return fingerprint("authn-jwt", self._service_id, source)

    def _read_jwt(self) -> str:
        if self._token_file is not None:
            jwt = read_text_file(self._token_file, "token_file", cap=SECRET_FILE_CAP, what="the JWT").strip()
            where = f"token_file {self._token_file!r}"
        else:
            assert self._token_provider is not None
            jwt = self._token_provider()
            if not isinstance(jwt, str):
                raise ConfigurationError(
                    "token_provider: returned something that is not a string", field="token_provider"
                )
            jwt = jwt.strip()
            where = "token_provider"
        if not JWT_SHAPE.match(jwt):
            raise ConfigurationError(
                f"{where}: does not hold a compact JWT (three base64url parts separated by dots)",
                field="token_file" if self._token_file else "token_provider",
            )
        return jwt

    def token_call(self, ctx: AuthContext) -> Call:
        jwt = self._read_jwt()
        account = ctx.account or ""
        path = f"{ctx.prefix}/authn-jwt/{quote(self._service_id, safe='')}/{quote(account, safe='')}"
        if self._login is not None:
            path += f"/{quote(self._login, safe='')}"
        return Call(
            "POST",
            path + "/authenticate",
            action="authenticate",
            target=f"with authn-jwt/{self._service_id} as {self.login!r}",
            headers={"Accept-Encoding": "base64", "Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode({"jwt": jwt}).encode(),
            hints={
                401: f"Check that the JWT is current and that authn-jwt/{self._service_id} accepts "
                f"its issuer, "
                "audience and claims (and the host id it maps to exists).",
                403: f"The host may not use authn-jwt/{self._service_id}: permit it 'authenticate' on the webservice.",
            },
        )


class ConjurAccessTokenFileAuth(ConjurAuth):
    """An access token that another process keeps fresh in a file (CyberArk's Kubernetes
    authenticator sidecar writes one to e.g. ``/run/conjur/access-token``): no API key at all.

    Sends no request to authenticate: the file is read again when the token nears its expiry
    (from its ``exp`` claim) and after a 401, so the sidecar's refreshes are picked up.
    """

    __slots__ = ("_path",)

    def __init__(self, token_file: str | os.PathLike[str]) -> None:
        path = os.fspath(token_file)
        self._path = require_name(path, "access_token_path")

    @property
    def login(self) -> str:
        return f"<access token in {self._path}>"

    def fingerprint(self) -> str:
        return fingerprint("access-token-file", os.path.realpath(self._path))

    def authenticate(self, ctx: AuthContext) -> AccessToken:
        content = read_regular_file(
            self._path, "access_token_path", cap=TOKEN_FILE_CAP, what="the Conjur access token"
        ).strip()
        # The sidecar writes the token's JSON; a base64 form is accepted too.
        token_b64 = base64.b64encode(content).decode("ascii") if content[:1] == b"{" else content.decode("latin-1")
        claims = conjur_token_claims(token_b64)
        if claims is None:
            raise ConfigurationError(
                f"access_token_path: {self._path!r} does not hold a Conjur access token", field="access_token_path"
            )
        exp = claims.get("exp")
        remaining = float(exp) - time.time() if isinstance(exp, (int, float)) and math.isfinite(exp) else None
        delay = CONJUR_FALLBACK_LIFETIME if remaining is None else max(0.0, renewal_delay(remaining))
        subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        return AccessToken(f'Token token="{token_b64}"', renew_in=delay, lifetime=remaining, subject=subject)

    def token_call(self, ctx: AuthContext) -> Call:
        raise TypeError("an access token file is read, not requested")

    def read_token(self, ctx: AuthContext, call: Call, response: requests.Response) -> AccessToken:
        raise TypeError("an access token file is read, not requested")


__all__ = [
    "CONJUR_FALLBACK_LIFETIME",
    "JWT_SHAPE",
    "ConjurAccessTokenFileAuth",
    "ConjurApiKeyAuth",
    "ConjurAuth",
    "ConjurJWTAuth",
    "conjur_access_token",
    "conjur_token_claims",
    "lenient_b64decode",
]
