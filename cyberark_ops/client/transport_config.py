"""How to reach one CyberArk endpoint, whatever the API: URL, TLS, timeouts and the retry budget.

Apart from the per-API configs (``config.py``) so that the transport and TLS read it without
importing any auth strategy: auth strategies send their calls through the transport, and the
per-API configs hold a strategy, so the imports run one way (config -> auth -> transport ->
transport_config).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from .pacing import MACHINE_WIDE, Pacing
from .validation import field_error, validate_base_url

MAX_SECONDS = 86_400.0
"""No timeout, wait or deadline may exceed a day: a larger one is a typo, and NaN never expires."""
MAX_RETRIES = 100


def check_positive(value: object, field_name: str, *, allow_zero: bool = False, high: float = MAX_SECONDS) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise field_error(field_name, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise field_error(field_name, "must be a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise field_error(field_name, "must be positive" if not allow_zero else "must not be negative")
    if value > high:
        raise field_error(field_name, f"must be at most {high:g}")


def check_bounded_int(value: object, field_name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise field_error(field_name, f"must be an integer between {low} and {high}")


def _existing_path(value: str | None, field_name: str, *, directory_ok: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise field_error(field_name, "must be a file path")
    if os.path.isfile(value) or (directory_ok and os.path.isdir(value)):
        return
    raise field_error(field_name, f"{value!r} does not exist or is not a readable file")


@dataclass(frozen=True, kw_only=True)
class TransportConfig:
    """How to reach one CyberArk endpoint: URL, TLS, timeouts and the retry budget.

    ``deadline`` bounds a whole call including retries and re-authentication, so a task never
    hangs longer than that on the vault whatever the server does.
    """

    base_url: str
    ca_bundle: str | None = None
    """PEM file (or OpenSSL hashed directory) of the CAs to trust; None means the system store."""
    verify: bool = True
    client_cert: str | None = None
    client_key: str | None = None
    client_key_password: str | None = field(default=None, repr=False)
    """Passphrase of an encrypted client key; never shown in ``repr``."""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 3
    """Retries of a failed attempt (5xx, a dropped connection); 429 answers are retried until the
    deadline instead, with jitter added to their ``Retry-After``."""
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    deadline: float = 60.0
    allow_insecure_http: bool = False
    pool_maxsize: int = 16
    """Keep-alive connections kept per host; size it to the threads sharing one client."""
    use_env_proxy: bool = True
    """Honour HTTPS_PROXY / NO_PROXY. CA settings from the environment are never used."""
    pacing: Pacing = field(default=MACHINE_WIDE, compare=False)
    """Which pacer each request takes its slot from: by default adaptive and shared by every
    process of this user (``Pacing.machine_wide``); ``Pacing.local()`` keeps it to one object,
    ``Pacing.fixed(n)`` holds a known limit."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "base_url",
            validate_base_url(self.base_url, "base_url", allow_insecure_http=self.allow_insecure_http),
        )
        _existing_path(self.ca_bundle, "ca_bundle", directory_ok=True)
        if not isinstance(self.verify, bool):
            raise field_error("verify", "must be True or False; put a CA file path in ca_bundle")
        if self.ca_bundle is not None and not self.verify:
            raise field_error("verify", "is False but ca_bundle is set; drop one of them")
        if self.client_key is not None and self.client_cert is None:
            raise field_error("client_key", "is set without client_cert")
        _existing_path(self.client_cert, "client_cert")
        _existing_path(self.client_key, "client_key")
        if self.client_key_password is not None and self.client_cert is None:
            raise field_error("client_key_password", "is set without client_cert")
        check_positive(self.connect_timeout, "connect_timeout")
        check_positive(self.read_timeout, "read_timeout")
        check_positive(self.deadline, "deadline")
        check_positive(self.backoff_base, "backoff_base", allow_zero=True)
        check_positive(self.backoff_max, "backoff_max", allow_zero=True)
        if self.backoff_max < self.backoff_base:
            raise field_error("backoff_max", "must not be smaller than backoff_base")
        check_bounded_int(self.max_retries, "max_retries", 0, MAX_RETRIES)
        check_bounded_int(self.pool_maxsize, "pool_maxsize", 1, 1024)
        if not isinstance(self.pacing, Pacing):
            raise field_error("pacing", "must be a Pacing (Pacing.machine_wide(), .local() or .fixed(n))")


__all__ = ["MAX_RETRIES", "MAX_SECONDS", "TransportConfig", "check_bounded_int", "check_positive"]
