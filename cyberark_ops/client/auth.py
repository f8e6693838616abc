"""Authentication strategies, one class per method, and the token cache they share.

A strategy knows how to turn its credential into an access token for one API; the
``Authenticator`` binds it to a transport and a ``TokenCache`` and supplies the httpx-style auth
flow: apply the cached token, and on a 401 drop it, authenticate again and resend, exactly once.

Tokens are cached process-wide (keyed by base URL, account, login and a keyed hash of the
credential), because Airflow builds a new secrets backend object per lookup on 3.1: without the
shared cache every lookup would authenticate. PVWA logon sessions are the exception: they are
session objects on the Vault that the client logs off, so each client keeps its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

from .errors import AuthenticationFailed, ConfigurationError
from .transport import Call
from .untrusted import SECRET_FILE_CAP, TOKEN_FILE_CAP, parse_json, read_regular_file, read_text_file
from .validation import require_name, require_secret, validate_base_url

if TYPE_CHECKING:
    import requests

    from .transport import Transport

# Keyed hashing with a per-process salt: cache keys identify a credential without being a
# reusable digest of it.
_PROCESS_SALT = secrets.token_bytes(32)
CONJUR_FALLBACK_LIFETIME = 240.0
"""Used when a Conjur token carries no readable ``iat``/``exp`` (half the server default)."""
JWT_SHAPE = re.compile(r"^[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+$")


def fingerprint(*parts: str | bytes) -> str:
    digest = hmac.new(_PROCESS_SALT, digestmod=hashlib.sha256)
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def renewal_delay(lifetime: float) -> float:
    """Renew at 80 % of the lifetime, or 30 s before expiry when that comes first."""
    if lifetime <= 60:
        return max(0.0, 0.8 * lifetime)
    return min(0.8 * lifetime, lifetime - 30.0)


class AccessToken:
    """A ready-to-send ``Authorization`` value and how long to use it before renewing.

    ``renew_in`` is relative (seconds from receipt), so a server whose clock differs from ours
    cannot make a token look expired or eternal; the cache turns it into ``renew_at``.
    """

    __slots__ = ("header", "lifetime", "renew_at", "renew_in", "subject")

    def __init__(
        self, header: str, *, renew_in: float, lifetime: float | None = None, subject: str | None = None
    ) -> None:
        self.header = header
        self.renew_in = renew_in
        self.renew_at = math.inf
        self.lifetime = lifetime
        self.subject = subject

    def __repr__(self) -> str:
        return f"AccessToken(subject={self.subject!r}, lifetime={self.lifetime!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("AccessToken cannot be pickled: tokens stay in the process that obtained them")


class TokenCache:
    """Thread-safe token store: concurrent callers with one identity authenticate once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[str, AccessToken] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(
        self,
        key: str,
        authenticate: Callable[[], AccessToken],
        on_renewal: Callable[[str], None] | None = None,
    ) -> AccessToken:
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.renew_at > self.clock():
                return token
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                current = self._tokens.get(key)
            if current is not None and current.renew_at > self.clock():
                return current  # another thread renewed it while we waited
            if on_renewal is not None:
                on_renewal("expiring" if current is not None else "initial")
            fresh = authenticate()
            fresh.renew_at = self.clock() + fresh.renew_in
            with self._lock:
                self._tokens[key] = fresh
            return fresh

    def peek(self, key: str) -> AccessToken | None:
        with self._lock:
            return self._tokens.get(key)

    def invalidate(self, key: str, token: AccessToken | None = None) -> None:
        """Drops the entry, but only if it is still ``token`` (another thread may have renewed it)."""
        with self._lock:
            if token is None or self._tokens.get(key) is token:
                self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


PROCESS_TOKEN_CACHE = TokenCache()


class AuthContext:
    """What a strategy needs to authenticate: the transport and the API's path layout."""

    __slots__ = ("account", "prefix", "transport")

    def __init__(self, transport: Transport, *, prefix: str = "", account: str | None = None) -> None:
        self.transport = transport
        self.prefix = prefix
        self.account = account


class AuthStrategy(ABC):
    """One way of proving identity to one API. Holds the credential; never shows it."""

    api: ClassVar[str]
    per_client: ClassVar[bool] = False
    """True for session logons that a client must log off (never shared between clients)."""

    @property
    @abstractmethod
    def login(self) -> str:
        """The identity as shown in messages and used in cache keys (not a secret)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A keyed hash of the credential, so different credentials never share a cached token."""

    @abstractmethod
    def token_call(self, ctx: AuthContext) -> Call:
        """The request that exchanges the credential for a token (sent without an auth flow)."""

    @abstractmethod
    def read_token(self, ctx: AuthContext, call: Call, response: requests.Response) -> AccessToken:
        """The token in the (2xx) answer to ``token_call``; ``InvalidResponse`` if there is none."""

    def authenticate(self, ctx: AuthContext) -> AccessToken:
        """Sends ``token_call`` through the transport (retries, deadline, typed errors) and reads the token."""
        call = self.token_call(ctx)
        return self.read_token(ctx, call, ctx.transport.request(call))

    def logoff(self, ctx: AuthContext, token: AccessToken) -> None:  # noqa: B027 - optional hook
        """Ends a server-side session; most token types simply expire."""

    def cache_key(self, ctx: AuthContext) -> str:
        return "\x00".join((self.api, ctx.transport.config.base_url, ctx.account or "", self.login, self.fingerprint()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(login={self.login!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{type(self).__name__} holds a credential and cannot be pickled")

    def __copy__(self) -> AuthStrategy:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AuthStrategy:
        return self


class JSONTokenAuth(AuthStrategy):
    """A strategy whose token answer is a JSON document: subclasses pick the token out of it."""

    empty_answer: ClassVar[str] = "an answer without a token"
    """What ``InvalidResponse`` says arrived when ``token_from_json`` finds no token."""

    @abstractmethod
    def token_from_json(self, data: Any) -> AccessToken | None:
        """The token in the decoded answer, or None if it holds none."""

    def read_token(self, ctx: AuthContext, call: Call, response: requests.Response) -> AccessToken:
        token = self.token_from_json(ctx.transport.json(response, call))
        if token is None:
            raise ctx.transport.invalid_response(call, self.empty_answer, response.status_code)
        return token


class ConjurAuth(AuthStrategy):
    """Conjur's authenticators all answer with a (base64) Conjur access token."""

    api = "conjur"

    def read_token(self, ctx: AuthContext, call: Call, response: requests.Response) -> AccessToken:
        return conjur_access_token(response, ctx.transport, call)


class PVWAAuth(JSONTokenAuth):
    api = "pvwa"


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


# -- PVWA / Privilege Cloud ---------------------------------------------------------------------

PVWA_AUTH_TYPES = {"cyberark": "CyberArk", "ldap": "LDAP", "radius": "RADIUS", "windows": "Windows"}


class PVWALogonAuth(PVWAAuth):
    """``POST /API/auth/<type>/Logon``: a Vault session that the client logs off when done."""

    per_client = True
    empty_answer = "a logon answer without a session token"
    __slots__ = ("_auth_type", "_password", "_username")

    def __init__(self, username: str, password: str, auth_type: str = "CyberArk") -> None:
        self._username = require_name(username, "username")
        self._password = require_secret(password, "password")
        canonical = PVWA_AUTH_TYPES.get(str(auth_type).lower())
        if canonical is None:
            raise ConfigurationError(
                f"auth_type: {auth_type!r} is not one of {', '.join(PVWA_AUTH_TYPES.values())}",
                field="auth_type",
            )
        self._auth_type = canonical

    @property
    def login(self) -> str:
        return self._username

    @property
    def auth_type(self) -> str:
        return self._auth_type

    def fingerprint(self) -> str:
        return fingerprint("pvwa-logon", self._auth_type, self._username, self._password)

    def token_call(self, ctx: AuthContext) -> Call:
        return Call(
            "POST",
            f"{ctx.prefix}/API/auth/{self._auth_type}/Logon",
            action="logon",
            target=f"as {self._username!r} ({self._auth_type})",
            headers={"Content-Type": "application/json"},
            body=json.dumps(
                {"username": self._username, "password": self._password, "concurrentSession": True}
            ).encode(),
            hints={
                401: f"Check the username, password and auth_type ({self._auth_type}).",
                403: f"Check the username, password and auth_type ({self._auth_type}); the user may be suspended.",
            },
            status_errors={403: AuthenticationFailed},
        )

    def token_from_json(self, data: Any) -> AccessToken | None:
        if isinstance(data, dict):  # Gen1-style answer
            data = data.get("CyberArkLogonResult")
        if not isinstance(data, str) or not data:
            return None
        return AccessToken(data, renew_in=math.inf, subject=self._username)

    def logoff(self, ctx: AuthContext, token: AccessToken) -> None:
        call = Call(
            "POST",
            f"{ctx.prefix}/API/Auth/Logoff",
            action="logoff",
            target=f"session of {self._username!r}",
            headers={"Content-Type": "application/json", "Authorization": token.header},
            body=b"{}",
        )
        ctx.transport.request(call)


class PlatformTokenAuth(PVWAAuth):
    """Privilege Cloud: an Identity OAuth confidential client (``/oauth2/platformtoken``)."""

    empty_answer = "a token answer without access_token"
    __slots__ = ("_client_id", "_client_secret", "_identity_url")

    def __init__(self, identity_url: str, client_id: str, client_secret: str) -> None:
        # http:// is checked against the transport's allow_insecure_http when it is used.
        self._identity_url = validate_base_url(identity_url, "identity_url", allow_insecure_http=True)
        self._client_id = require_name(client_id, "client_id")
        self._client_secret = require_secret(client_secret, "client_secret")

    @property
    def login(self) -> str:
        return self._client_id

    def fingerprint(self) -> str:
        return fingerprint("platformtoken", self._identity_url, self._client_id, self._client_secret)

    def token_call(self, ctx: AuthContext) -> Call:
        return Call(
            "POST",
            "/oauth2/platformtoken",
            base=self._identity_url,
            action="platform_token",
            target=f"for client {self._client_id!r} at {self._identity_url}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                }
            ).encode(),
            hints={
                400: "Check client_id / client_secret and that the service user is an OAuth confidential client.",
                401: "Check client_id / client_secret and that the service user is an OAuth confidential client.",
            },
            status_errors={400: AuthenticationFailed, 403: AuthenticationFailed},
        )

    def token_from_json(self, data: Any) -> AccessToken | None:
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return None
        try:
            lifetime = float(data.get("expires_in"))
        except (TypeError, ValueError):
            lifetime = 900.0
        return AccessToken(
            f"Bearer {token}", renew_in=renewal_delay(lifetime), lifetime=lifetime, subject=self._client_id
        )


# -- binding a strategy to a transport ------------------------------------------------------------


class Authenticator:
    """A strategy bound to one transport and token cache; supplies the transport's auth flow."""

    def __init__(self, strategy: AuthStrategy, ctx: AuthContext, cache: TokenCache | None = None) -> None:
        self.strategy = strategy
        self.ctx = ctx
        if strategy.per_client:
            self.cache = TokenCache()
        else:
            self.cache = cache if cache is not None else PROCESS_TOKEN_CACHE
        self.key = strategy.cache_key(ctx)

    def _on_renewal(self, reason: str) -> None:
        self.ctx.transport.emit("token_renewal", {"reason": reason, "action": "authenticate"})

    def _authenticate(self) -> AccessToken:
        return self.strategy.authenticate(self.ctx)

    def token(self) -> AccessToken:
        return self.cache.get(self.key, self._authenticate, self._on_renewal)

    def authenticate(self) -> AccessToken:
        """Forces a new token (e.g. to check credentials), replacing the cached one."""
        self.cache.invalidate(self.key)
        return self.token()

    def auth_flow(self, call: Call) -> Generator[Call, requests.Response, None]:
        token = self.token()
        call.headers["Authorization"] = token.header
        response = yield call
        if response.status_code == 401:
            self.cache.invalidate(self.key, token)
            self._on_renewal("unauthorized")
            token = self.cache.get(self.key, self._authenticate)
            call.headers["Authorization"] = token.header
            response = yield call
            if response.status_code == 401:
                # Rejected twice: keep no token the server refuses, so the next call authenticates.
                self.cache.invalidate(self.key, token)

    def logoff(self) -> bool:
        """Ends this client's session if there is one; True if a logoff was sent.

        Shared (process-wide) tokens are left alone: other clients may be using them.
        """
        if not self.strategy.per_client:
            return False
        token = self.cache.peek(self.key)
        if token is None:
            return False
        self.cache.invalidate(self.key, token)
        self.strategy.logoff(self.ctx, token)
        return True


__all__ = [
    "PROCESS_TOKEN_CACHE",
    "AccessToken",
    "AuthContext",
    "AuthStrategy",
    "Authenticator",
    "ConjurApiKeyAuth",
    "ConjurAuth",
    "ConjurJWTAuth",
    "JSONTokenAuth",
    "PVWAAuth",
    "PVWALogonAuth",
    "PlatformTokenAuth",
    "TokenCache",
    "renewal_delay",
]
