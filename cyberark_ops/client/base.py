"""What every client has: a transport for its API, ``close``/``with``, a ``repr`` without secrets,
and the uniform ``get(ref, *, reason) -> Credential``.

``BaseClient`` is generic in the reference type it reads, so a caller holding any client calls
``client.get(ref, reason=...)`` with no isinstance chain; ``CredentialSource`` is the same contract
as a ``Protocol`` for code that only needs to fetch.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from .auth import AuthContext, Authenticator
from .transport import Transport

if TYPE_CHECKING:
    from .auth import AuthStrategy, TokenCache
    from .config import TransportConfig
    from .credential import Credential
    from .profile import ApiProfile
    from .transport import EventCallback

RefT = TypeVar("RefT")
RefT_contra = TypeVar("RefT_contra", contravariant=True)
ClientT = TypeVar("ClientT", bound="BaseClient[Any]")


class CredentialSource(Protocol[RefT_contra]):
    """Anything that turns a reference into a ``Credential``."""

    def get(self, ref: RefT_contra, *, reason: str | None = None) -> Credential: ...


class BaseClient(ABC, Generic[RefT]):
    """A client of one API (``profile``), thread-safe, built from a validated ``TransportConfig``.

    Subclasses set ``profile`` and implement ``get``; ``_repr_fields`` names what ``repr`` shows
    (never a credential). ``close`` releases the connections; a subclass with a server-side
    session ends it first (PVWA logs off).
    """

    profile: ClassVar[ApiProfile]

    def __init__(
        self,
        config: TransportConfig,
        *,
        on_event: EventCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._transport = Transport(config, self.profile, on_event=on_event, sleep=sleep)

    def _authenticator(
        self,
        strategy: AuthStrategy,
        token_cache: TokenCache | None = None,
        *,
        prefix: str = "",
        account: str | None = None,
    ) -> Authenticator:
        """``strategy`` bound to this client's transport: pass it to ``Transport.request``."""
        return Authenticator(strategy, AuthContext(self._transport, prefix=prefix, account=account), token_cache)

    @abstractmethod
    def get(self, ref: RefT, *, reason: str | None = None) -> Credential:
        """The credential ``ref`` designates; ``reason`` goes to the server's audit where it can."""

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


__all__ = ["BaseClient", "CredentialSource"]
