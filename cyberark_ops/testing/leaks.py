"""The forms a leaked secret takes, for searches that must find it whatever encoded it."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus


def leak_forms(value: str) -> dict[str, str]:
    """Raw, URL-quoted (``Connection.get_uri``, form bodies), JSON- and repr-escaped, and base64."""
    raw = value.encode()
    return {
        "raw": value,
        "quote": quote(value, safe=""),
        "quote_plus": quote_plus(value),
        "json": json.dumps(value)[1:-1],
        "repr": repr(value)[1:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
