"""Checks shared by configs, references and auth strategies, so each rule is written once.

Every value that reaches a URL, a header or a message passes through here first: a lone
surrogate or a 100 KB id must become a ``ConfigurationError`` naming the field, never a raw
``UnicodeEncodeError`` from ``quote`` or a 414 with a 200 KB message.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import ConfigurationError

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
CCP_FORBIDDEN = re.compile(r"[+&%;]")
"""Characters CCP cannot carry in a query value (its own parser splits or decodes on them)."""
MAX_ID_LENGTH = 2048
"""Longer than any real Conjur id, safe name or CCP query, and well below 8 KB request lines."""
SHOWN_LENGTH = 80


def field_error(field: str, problem: str) -> ConfigurationError:
    """``ConfigurationError("<field>: <problem>")`` naming ``field``."""
    return ConfigurationError(f"{field}: {problem}", field=field)


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


def validate_base_url(url: object, field: str, *, allow_insecure_http: bool) -> str:
    """The URL without a trailing slash; refuses credentials, queries and plain http."""
    if not isinstance(url, str) or not url:
        raise field_error(field, "must be a URL such as https://conjur.example.com")
    try:
        parts = urlsplit(url)
        _ = parts.hostname, parts.port  # each raises ValueError on an unreadable host or port
    except ValueError:
        # Not quoted either: what cannot be parsed may still hold user:password@.
        raise field_error(field, "is not a URL: its host or port cannot be read") from None
    if parts.username is not None or parts.password is not None:
        # Do not quote the URL: it carries credentials.
        raise field_error(field, "must not contain user:password@; configure credentials through auth")
    if CONTROL_CHARS.search(url) or " " in url:
        raise field_error(field, "must not contain spaces or control characters")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise field_error(field, f"{url!r} is not an https:// URL with a host name")
    if parts.scheme == "http" and not allow_insecure_http:
        raise field_error(
            field,
            f"{url!r} uses plain http://, which would send credentials unencrypted; use https:// "
            "(allow_insecure_http=True exists for local development only)",
        )
    if parts.query or parts.fragment:
        raise field_error(field, f"{url!r} must not carry a query string or fragment")
    return url.rstrip("/")


__all__ = [
    "CCP_FORBIDDEN",
    "CONTROL_CHARS",
    "MAX_ID_LENGTH",
    "check_text",
    "field_error",
    "require_name",
    "require_secret",
    "shown",
    "validate_base_url",
]
