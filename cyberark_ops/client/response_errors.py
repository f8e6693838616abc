"""From an HTTP answer to a typed error with its message: the one place statuses become exceptions.

``Transport`` sends and retries; what it raises is built here, from the API's ``ApiProfile`` (its
error-code table and error-body parser), the call's own hints and status classes, and the tables
below. Every message has one shape, ``compose_message``'s, so an operator reads the same line
whichever API and whichever failure.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

import requests

from .errors import (
    AuthenticationFailed,
    ConfigurationError,
    CyberArkError,
    Forbidden,
    InvalidResponse,
    NotFound,
    RateLimited,
    Unavailable,
)
from .profile import ApiProfile

E = TypeVar("E", bound=CyberArkError)

STATUS_ERRORS: dict[int, type[CyberArkError]] = {
    400: ConfigurationError,
    401: AuthenticationFailed,
    403: Forbidden,
    404: NotFound,
    406: InvalidResponse,
    422: ConfigurationError,
    413: ConfigurationError,
    414: ConfigurationError,
    429: RateLimited,
}
"""The class of an error answer whose body names no code the API's table knows."""

STATUS_HINTS: dict[int, str] = {
    401: "Check the credentials configured for this API.",
    403: "Check the identity's privileges on this object.",
    404: "Check the id / name, and that the identity may see the object.",
    429: "The server is rate limiting; lower concurrency or raise the limit.",
}
"""The hint of an error answer when neither the call, the caller nor the error code brings one."""

PATH_SHOWN = 200


class DescribedCall(Protocol):
    """What an error needs of a ``transport.Call``: how to name it, and its own error policy
    (a protocol, so this module sits below the transport instead of importing it back)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def target(self) -> str: ...

    @property
    def hints(self) -> Mapping[int, str]: ...

    @property
    def status_errors(self) -> Mapping[int, type[CyberArkError]]: ...

    @property
    def idempotent(self) -> bool: ...


def _request_line(call: DescribedCall) -> str:
    """Method and path for a message, the path cut so that a long id cannot flood a log line."""
    path = call.path if len(call.path) <= PATH_SHOWN else f"{call.path[:PATH_SHOWN]}...({len(call.path)} chars)"
    return f"{call.method} {path}"


def compose_message(api_name: str, call: DescribedCall, problem: str, hint: str = "") -> str:
    """The one shape of every message: ``<API> <action> <target>: <problem>. <Hint>. (<METHOD path>)``."""
    text = f"{api_name} {call.action} {call.target}".rstrip() + f": {problem.rstrip('.')}"
    if hint:
        text += f". {hint[0].upper()}{hint[1:].rstrip('.')}"
    return f"{text}. ({_request_line(call)})"


def error_about(
    profile: ApiProfile, error_class: type[E], call: DescribedCall, problem: str, hint: str = "", **fields: Any
) -> E:
    """An ``error_class`` about ``call`` with the API's message, name, action and path."""
    message = compose_message(profile.display_name, call, problem, hint)
    return error_class(message, api=profile.name, action=call.action, path=call.path, **fields)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,12}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_for_response(
    profile: ApiProfile,
    response: requests.Response,
    call: DescribedCall,
    elapsed: float,
    fallback_hints: Mapping[int, str] | None = None,
) -> CyberArkError:
    """The typed error for an error answer to ``call``, after ``elapsed`` seconds of trying.

    The class comes from the API's code table, else the call's ``status_errors``, else the status;
    the hint from the call, else ``fallback_hints``, else the code table, else the status.
    """
    status = response.status_code
    code, server_message = profile.parse_error_body(response)
    error_class: type[CyberArkError]
    hint = call.hints.get(status) or (fallback_hints or {}).get(status)
    entry = profile.code_entry(code)
    if entry is not None:
        error_class, _, code_hint = entry
        hint = hint or code_hint
    elif status in call.status_errors:
        error_class = call.status_errors[status]
    elif status in STATUS_ERRORS:
        error_class = STATUS_ERRORS[status]
    elif status >= 500:
        error_class = Unavailable
    else:
        error_class = CyberArkError
    if hint is None:
        if status >= 500:
            hint = (
                f"The server kept failing for {elapsed:.1f}s; retry later or check the server's health."
                if call.idempotent
                else profile.not_retried_hint
            )
        else:
            hint = STATUS_HINTS.get(status, "")
    problem = f"HTTP {status} {response.reason or ''}".rstrip()
    if code:
        problem += f" [{code}]"
    if server_message:
        problem += f": {server_message.rstrip('.')}"
    fields: dict[str, Any] = {"status": status, "code": code}
    if error_class is RateLimited:
        fields["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
    return error_about(profile, error_class, call, problem, hint, **fields)
