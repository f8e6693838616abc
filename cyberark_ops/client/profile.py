"""What the transport needs to know about one API, and nothing else: ``ApiProfile``.

The transport is API-agnostic. Each client hands its ``Transport`` a profile naming the API (for
events and messages), the table of error codes whose meaning is more precise than the HTTP
status, and the parser that reads ``(code, server message)`` from that API's error bodies. The
Conjur, CCP and PVWA profiles live in ``conjur.py``, ``ccp.py`` and ``pvwa.py``; another API
builds its own the same way, outside this package (``tests/client/test_fourth_api.py``)::

    ACME = ApiProfile(
        name="acme",
        display_name="Acme Vault",
        code_table={"E404": (NotFound, False, "Check the secret's name.")},
        parse_error_body=error_body_parser(lambda data: nested_error_fields(data, "code", "message")),
    )
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import requests

from .errors import CyberArkError
from .untrusted import parse_json

SERVER_MESSAGE_MAX = 600
"""At most this much of a server's own error message is quoted in an exception message."""
ERROR_BODY_READ = 4096

CodeTable = Mapping[str, tuple[type[CyberArkError], bool, str]]
"""Error code -> (exception class, whether a 5xx with this code may be retried, hint)."""
ErrorBodyParser = Callable[[requests.Response], tuple[str | None, str | None]]
"""Reads ``(error code, server message)`` from an error response; either may be None."""
ErrorFields = Callable[[dict[str, Any]], tuple[str | None, str | None]]
"""Picks ``(error code, server message)`` out of a decoded JSON error object."""

DEFAULT_NOT_RETRIED_HINT = (
    "Not retried, as the request may have taken effect; retry the task once the server is healthy."
)


@dataclass(frozen=True, eq=False)
class ApiProfile:
    """One API as the transport sees it. Frozen and shared by every client of that API."""

    name: str
    """Short lowercase name: the ``api`` of errors and events (``conjur``, ``ccp``, ``pvwa``)."""
    display_name: str
    """How messages name the API (``Conjur``, ``CCP``, ``PVWA``)."""
    code_table: CodeTable
    parse_error_body: ErrorBodyParser
    not_retried_hint: str = DEFAULT_NOT_RETRIED_HINT
    """The hint of a 5xx answer to a non-idempotent call (which is never resent)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "code_table", MappingProxyType(dict(self.code_table)))

    def code_entry(self, code: str | None) -> tuple[type[CyberArkError], bool, str] | None:
        """The table entry for ``code``, or None when the code is absent or unknown."""
        return self.code_table.get(code) if code is not None else None


def str_or_none(value: object) -> str | None:
    """A scalar JSON value as text; None for null, objects and arrays."""
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def clean_server_message(message: str | None) -> str | None:
    """A server message fit for one log line: no control characters, at most ``SERVER_MESSAGE_MAX``."""
    if message is None:
        return None
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", message).strip()
    if len(text) > SERVER_MESSAGE_MAX:
        # Cut at a word, visibly: a sentence cut mid-word reads as if a word had been redacted.
        text = text[:SERVER_MESSAGE_MAX].rsplit(" ", 1)[0].rstrip() + "…"
    return text or None


def error_body_parser(fields: ErrorFields) -> ErrorBodyParser:
    """A parser for an API whose errors are JSON objects read by ``fields``.

    Shared rules: only the first 4 KB are read; a body that is not a JSON object yields no code;
    a ``text/plain`` body is the server message as it is (rack-style ``Unauthorized: ...``).
    """

    def parse(response: requests.Response) -> tuple[str | None, str | None]:
        text = response.text[:ERROR_BODY_READ] if response.content else ""
        code: str | None = None
        message: str | None = None
        content_type = response.headers.get("Content-Type", "")
        if "json" in content_type or text.startswith("{"):
            try:
                data = parse_json(text)
            except ValueError:
                data = None
            if isinstance(data, dict):
                code, message = fields(data)
        elif "text/plain" in content_type and text:
            message = text
        return code, clean_server_message(message)

    return parse


def nested_error_fields(data: dict[str, Any], code_key: str, message_key: str) -> tuple[str | None, str | None]:
    """``{"error": {code_key: ..., message_key: ...}}`` (Conjur's shape, and a common one)."""
    inner = data.get("error")
    if not isinstance(inner, dict):
        return None, None
    return str_or_none(inner.get(code_key)), str_or_none(inner.get(message_key))


__all__ = [
    "DEFAULT_NOT_RETRIED_HINT",
    "SERVER_MESSAGE_MAX",
    "ApiProfile",
    "CodeTable",
    "ErrorBodyParser",
    "ErrorFields",
    "clean_server_message",
    "error_body_parser",
    "nested_error_fields",
    "str_or_none",
]
