"""Typed errors of the CyberArk client layer.

Callers (the Airflow hook, the secrets backend, operators) branch on the class, not on message
text: ``NotFound`` may become a negative cache entry, ``Forbidden`` an access-denied error,
``Unavailable`` an Airflow retry. Messages are written for the person reading a task log: they
name the API, the object or URL path and what to check, and never a secret value, API key,
password or token (nothing in this package ever passes one to these constructors).
"""

from __future__ import annotations

from typing import Any


class CyberArkError(Exception):
    """Base class; ``api`` is ``conjur``, ``ccp`` or ``pvwa`` (or None before any call)."""

    def __init__(
        self,
        message: str,
        *,
        api: str | None = None,
        action: str | None = None,
        path: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.api = api
        self.action = action
        self.path = path
        self.status = status
        self.code = code
        self.reported = False
        """Set by the transport once it has emitted the ``error`` event, so nesting counts it once."""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def _state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "message"}

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default exception pickling, and
        # executors / multiprocessing pickle exceptions raised in workers.
        return (_rebuild, (type(self), self.message, self._state()))


def _rebuild(cls: type[CyberArkError], message: str, state: dict[str, Any]) -> CyberArkError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.message = message
    error.__dict__.update(state)
    return error


class NotFound(CyberArkError):
    """The object does not exist, or the identity may not see it (CyberArk does not say which)."""


class Forbidden(CyberArkError):
    """The identity is known but lacks the privilege (Conjur ``execute``, CCP AppID checks, safe rights)."""


class AuthenticationFailed(CyberArkError):
    """Logging in failed, or a fresh token was rejected again right after re-authenticating."""


class RateLimited(CyberArkError):
    """The server kept answering 429 until the retry budget or the deadline ran out."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Unavailable(CyberArkError):
    """Transient trouble: connection refused, timeout, TLS handshake failure, 5xx after retries."""


class CheckedOutByAnotherUser(Unavailable):
    """An exclusive PVWA account is checked out (locked) by another user: retryable once that user
    checks it in, or once the CPM releases it after the platform's MinValidityPeriod."""

    def __init__(self, message: str, *, account_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.account_id = account_id


class InvalidResponse(CyberArkError):
    """The server answered, but not in the shape the API documents (e.g. a proxy's HTML page)."""


class ConfigurationError(CyberArkError, ValueError):
    """A setting, reference or id is wrong; ``field`` names it. Retrying cannot help."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class AmbiguousQuery(ConfigurationError):
    """A CCP query or PVWA search matched several accounts where exactly one was expected."""


class PasswordChangeInProgress(CyberArkError):
    """The CPM was still changing the password after the configured number of waits."""


__all__ = [
    "AmbiguousQuery",
    "AuthenticationFailed",
    "CheckedOutByAnotherUser",
    "ConfigurationError",
    "CyberArkError",
    "Forbidden",
    "InvalidResponse",
    "NotFound",
    "PasswordChangeInProgress",
    "RateLimited",
    "Unavailable",
]
