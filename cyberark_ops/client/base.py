"""What every client has: a transport for its API, ``close``/``with``, a ``repr`` without secrets,
and the uniform ``get(ref, *, reason) -> Credential``.

``BaseClient`` is generic in the reference type it reads (and its config type), so a caller holding any client calls
``client.get(ref, reason=...)`` with no isinstance chain; ``CredentialSource`` is the same contract
as a ``Protocol`` for code that only needs to fetch. ``AuthenticatedClient`` adds the token that
``config.auth`` obtains (Conjur, PVWA, or any API with an ``AuthStrategy``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from .auth import AuthContext, Authenticator, AuthStrategy
from .transport import Call, Transport

if TYPE_CHECKING:
    import requests

    from .auth import TokenCache
    from .config import TransportConfig
    from .credential import Credential
    from .profile import ApiProfile
    from .transport import EventCallback

RefT = TypeVar("RefT")
RefT_contra = TypeVar("RefT_contra", contravariant=True)
ConfigT = TypeVar("ConfigT", bound="TransportConfig")
ClientT = TypeVar("ClientT", bound="BaseClient[Any, Any]")


@dataclass(frozen=True)
class TokenFacts:
    """What may be shown of an access token: its subject and lifetime (seconds, when it says)."""

    subject: str | None
    lifetime: float | None
    renew_in: float


class CredentialSource(Protocol[RefT_contra]):
    """Anything that turns a reference into a ``Credential``."""

    def get(self, ref: RefT_contra, *, reason: str | None = None) -> Credential: ...


class BaseClient(ABC, Generic[RefT, ConfigT]):
    """A client of one API (``profile``), thread-safe, built from its validated config (a
    ``TransportConfig``), reading references of type ``RefT``.

    Subclasses set ``profile`` and implement ``get``; ``_repr_fields`` names what ``repr`` shows
    (never a credential). ``close`` releases the connections; a subclass with a server-side
    session ends it first (PVWA logs off).
    """

    profile: ClassVar[ApiProfile]

    def __init__(
        self,
        config: ConfigT,
        *,
        on_event: EventCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._transport = Transport(config, self.profile, on_event=on_event, sleep=sleep)

    @abstractmethod
    def get(self, ref: RefT, *, reason: str | None = None) -> Credential:
        """The credential ``ref`` designates; ``reason`` goes to the server's audit where it can."""

    def check_connection(self) -> str:
        """A TCP + TLS handshake with the server (no HTTP request, nothing audited); a sentence on success."""
        return self._transport.check_connection()

    @property
    def server_clock_offset(self) -> float | None:
        """Seconds the server's clock was ahead of ours at its last dated answer, or None before one."""
        return self._transport.server_clock_offset

    def close(self) -> None:
        self._transport.close()

    def __enter__(self: ClientT) -> ClientT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _repr_fields(self) -> dict[str, object]:
        return {"base_url": self.config.base_url}

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._repr_fields().items())
        return f"{type(self).__name__}({shown})"


class AuthenticatedClient(BaseClient[RefT, ConfigT]):
    """A client whose calls carry a token obtained with ``config.auth`` (an ``AuthStrategy``).

    ``self._auth`` is the strategy bound to this client's transport and ``token_cache`` (the
    process-wide cache by default): pass it to ``Transport.request`` and a 401 renews the token
    once. ``_auth_context`` tells the strategy the API's path layout (prefix, account).
    """

    def __init__(
        self,
        config: ConfigT,
        *,
        on_event: EventCallback | None = None,
        token_cache: TokenCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config, on_event=on_event, sleep=sleep)
        self._auth = Authenticator(self.strategy, self._auth_context(), token_cache)

    @property
    def strategy(self) -> AuthStrategy:
        """The configured ``config.auth``."""
        strategy = getattr(self.config, "auth", None)
        if not isinstance(strategy, AuthStrategy):
            raise TypeError(f"{type(self).__name__} needs a config whose auth is an AuthStrategy")
        return strategy

    @property
    def login(self) -> str:
        return self.strategy.login

    def fresh_token(self) -> TokenFacts:
        """Authenticates anew (bypassing the token cache) and says who for how long, never the
        token itself: checks the credential as it is now, not as it was when a token was cached."""
        token = self._auth.authenticate()
        return TokenFacts(subject=token.subject, lifetime=token.lifetime, renew_in=token.renew_in)

    def _auth_context(self) -> AuthContext:
        return AuthContext(self._transport)

    def _json_answer(self, call: Call, what: str) -> tuple[dict[str, Any], requests.Response]:
        """``call`` with this client's token, its answer a JSON object (else ``InvalidResponse``
        saying the answer was ``what`` that is not an object), and the response for its headers."""
        response = self._transport.request(call, self._auth)
        data = self._transport.json(response, call)
        if not isinstance(data, dict):
            raise self._transport.invalid_response(call, f"{what} that is not an object", response.status_code)
        return data, response

    def _json_object(self, call: Call, what: str) -> dict[str, Any]:
        """:meth:`_json_answer` without the response."""
        return self._json_answer(call, what)[0]


__all__ = ["AuthenticatedClient", "BaseClient", "CredentialSource", "TokenFacts"]
