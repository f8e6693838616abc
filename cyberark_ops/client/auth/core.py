"""What every authentication strategy shares: the strategy contract, the token cache and the
binding of a strategy to a transport (the httpx-style auth flow).

A strategy knows how to turn its credential into an access token for one API; the
``Authenticator`` binds it to a transport and a ``TokenCache`` and supplies the auth flow: apply
the cached token, and on a 401 drop it, authenticate again and resend, exactly once.

Tokens are cached process-wide (keyed by base URL, account, login and a keyed hash of the
credential), because Airflow builds a new secrets backend object per lookup on 3.1: without the
shared cache every lookup would authenticate. PVWA logon sessions are the exception: they are
session objects on the Vault that the client logs off, so each client keeps its own.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar

from ..transport import Call

if TYPE_CHECKING:
    import requests

    from ..transport import Transport

# Keyed hashing with a per-process salt: cache keys identify a credential without being a
# reusable digest of it.
_PROCESS_SALT = secrets.token_bytes(32)


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
    "JSONTokenAuth",
    "TokenCache",
    "fingerprint",
    "renewal_delay",
]
