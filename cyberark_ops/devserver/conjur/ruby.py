"""Ruby's encodings as Conjur writes and reads them: Base64 (strict, lenient, MIME) and times."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re

_NOT_STD_B64 = re.compile(r"[^A-Za-z0-9+/]")


def b64url(data: bytes) -> str:
    """URL-safe base64 *with* padding, as Ruby's ``urlsafe_encode64`` writes token parts."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def lenient_b64decode(text: str) -> bytes | None:
    """Ruby's ``Base64.decode64``: skips foreign characters, stops at padding, tolerates no padding."""
    cleaned = _NOT_STD_B64.sub("", text.split("=", 1)[0])
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return None


def mime_base64(data: bytes) -> str:
    """Ruby's ``Base64.encode64``: 60 characters a line, each line ending in a newline."""
    encoded = base64.b64encode(data).decode("ascii")
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def iso_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="milliseconds")
