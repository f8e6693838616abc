"""Checks shared by configs, references and auth strategies, so each rule is written once.

Every value that reaches a URL, a header or a message passes through here first: a lone
surrogate or a 100 KB id must become a ``ConfigurationError`` naming the field, never a raw
``UnicodeEncodeError`` from ``quote`` or a 414 with a 200 KB message.
"""

from __future__ import annotations

import re

from .errors import ConfigurationError

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
CCP_FORBIDDEN = re.compile(r"[+&%;]")
"""Characters CCP cannot carry in a query value (its own parser splits or decodes on them)."""
MAX_ID_LENGTH = 2048
"""Longer than any real Conjur id, safe name or CCP query, and well below 8 KB request lines."""
SHOWN_LENGTH = 80


def shown(value: str) -> str:
    """``repr`` of a value for a message, cut to a short prefix so a huge id cannot flood logs."""
    if len(value) <= SHOWN_LENGTH:
        return repr(value)
    return f"{value[:SHOWN_LENGTH]!r}... ({len(value)} characters)"


def _is_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_name(value: object, field: str) -> str:
    """A non-empty name (account, login, AppID ...) that can go into a URL or header as it is."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{field}: must be a non-empty string", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise ConfigurationError(f"{field}: at most {MAX_ID_LENGTH} characters are accepted", field=field)
    if not _is_unicode(value):
        raise ConfigurationError(f"{field}: is not valid Unicode (lone surrogate)", field=field)
    if CONTROL_CHARS.search(value):
        raise ConfigurationError(f"{field}: must not contain control characters", field=field)
    return value


def require_secret(value: object, field: str) -> str:
    """Like ``require_name`` for a credential: the message names the field and never the value."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{field}: must be a non-empty string", field=field)
    if not _is_unicode(value):
        raise ConfigurationError(f"{field}: is not valid Unicode (lone surrogate)", field=field)
    if CONTROL_CHARS.search(value.strip()):
        raise ConfigurationError(f"{field}: contains control characters", field=field)
    return value


def check_text(value: str, field: str, *, what: str = "value") -> str:
    """Refuses lone surrogates, control characters (CR/LF included), surrounding whitespace and
    oversized values, naming ``field``; quoting at most a short prefix of ``value``."""
    if len(value) > MAX_ID_LENGTH:
        raise ConfigurationError(
            f"{field}: {what} is {len(value)} characters long; at most {MAX_ID_LENGTH} are accepted", field=field
        )
    if not _is_unicode(value):
        raise ConfigurationError(f"{field}: {what} {shown(value)} is not valid Unicode (lone surrogate)", field=field)
    if CONTROL_CHARS.search(value):
        raise ConfigurationError(f"{field}: {what} {shown(value)} contains control characters", field=field)
    if value != value.strip():
        raise ConfigurationError(
            f"{field}: {what} {shown(value)} has leading or trailing whitespace; remove it", field=field
        )
    return value


__all__ = ["CCP_FORBIDDEN", "CONTROL_CHARS", "MAX_ID_LENGTH", "check_text", "require_name", "require_secret", "shown"]
