"""Encodings shared by the emulated APIs' token formats: base64url and compact JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeGuard


def b64url_nopad(data: bytes) -> str:
    """base64url without padding, as JWTs write their parts."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes | None:
    """Decodes base64url with or without padding; None on garbage."""
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def json_object(data: bytes | None) -> dict[str, Any] | None:
    """``data`` parsed as a JSON object; None when it is absent, not UTF-8, not JSON or not an object."""
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def is_number(value: Any) -> TypeGuard[int | float]:
    """A JSON number (``true`` is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
