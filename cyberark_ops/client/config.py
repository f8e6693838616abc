"""One frozen, validated settings object per API.

A config is checked once, when it is built, and every problem is reported as a
``ConfigurationError`` whose ``field`` names the setting; clients can then trust it. Transport
settings are shared through inheritance (``ConjurConfig`` *is a* ``TransportConfig``), so a
config reads flat: ``ConjurConfig(base_url=..., account=..., auth=..., ca_bundle=...)``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .auth import ConjurAuth, PVWAAuth
from .pacing import MACHINE_WIDE, Pacing
from .validation import CCP_FORBIDDEN, field_error, require_name, validate_base_url

CONJUR_CLOUD_HOST = re.compile(r"(\.secretsmgr|-secretsmanager)\.cyberark\.cloud$", re.IGNORECASE)


MAX_SECONDS = 86_400.0
"""No timeout, wait or deadline may exceed a day: a larger one is a typo, and NaN never expires."""
MAX_RETRIES = 100


def _positive(value: object, field_name: str, *, allow_zero: bool = False, high: float = MAX_SECONDS) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise field_error(field_name, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise field_error(field_name, "must be a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise field_error(field_name, "must be positive" if not allow_zero else "must not be negative")
    if value > high:
        raise field_error(field_name, f"must be at most {high:g}")


def _bounded_int(value: object, field_name: str, low: int, high: int) -> None:
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
        _positive(self.connect_timeout, "connect_timeout")
        _positive(self.read_timeout, "read_timeout")
        _positive(self.deadline, "deadline")
        _positive(self.backoff_base, "backoff_base", allow_zero=True)
        _positive(self.backoff_max, "backoff_max", allow_zero=True)
        if self.backoff_max < self.backoff_base:
            raise field_error("backoff_max", "must not be smaller than backoff_base")
        _bounded_int(self.max_retries, "max_retries", 0, MAX_RETRIES)
        _bounded_int(self.pool_maxsize, "pool_maxsize", 1, 1024)
        if not isinstance(self.pacing, Pacing):
            raise field_error("pacing", "must be a Pacing (Pacing.machine_wide(), .local() or .fixed(n))")


@dataclass(frozen=True, kw_only=True)
class ConjurConfig(TransportConfig):
    """Conjur OSS, Secrets Manager Self-Hosted or SaaS.

    ``cloud=None`` detects SaaS from the host name (``*.secretsmgr.cyberark.cloud``), which then
    serves the API under ``/api`` and always uses the account ``conjur``.
    """

    auth: ConjurAuth
    account: str | None = None
    cloud: bool | None = None
    api_prefix: str = field(init=False, default="")
    """``/api`` for SaaS unless base_url already ends with it; derived, not set by callers."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.auth, ConjurAuth):
            raise field_error("auth", "must be ConjurApiKeyAuth or ConjurJWTAuth")
        parts = urlsplit(self.base_url)
        cloud = self.cloud
        if cloud is None:
            cloud = bool(CONJUR_CLOUD_HOST.search(parts.hostname or ""))
        object.__setattr__(self, "cloud", cloud)
        account = self.account
        if account is None:
            if not cloud:
                raise field_error("account", "is required for self-hosted Conjur (the account chosen at setup)")
            account = "conjur"
        require_name(account, "account")
        if "/" in account or ":" in account or " " in account:
            raise field_error("account", f"{account!r} must not contain '/', ':' or spaces")
        object.__setattr__(self, "account", account)
        prefix = "/api" if cloud and not parts.path.rstrip("/").endswith("/api") else ""
        object.__setattr__(self, "api_prefix", prefix)

    @property
    def conjur_account(self) -> str:
        """The account after defaulting (never None once validated)."""
        assert self.account is not None
        return self.account


@dataclass(frozen=True, kw_only=True)
class CCPConfig(TransportConfig):
    """Central Credential Provider (AIMWebService REST).

    The caller is authenticated by the AppID's rules (client certificate, allowed machines, OS
    user), so no secret lives in this config; ``client_cert``/``client_key`` carry the
    certificate when the AppID requires one.
    """

    app_id: str
    service_path: str = "AIMWebService"
    connection_timeout: int | None = 20
    """Seconds CCP may wait for the Vault (``ConnectionTimeout``); keep it below read_timeout."""
    fail_on_password_change: bool = False
    password_change_retries: int = 3
    password_change_wait: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_name(self.app_id, "app_id")
        if CCP_FORBIDDEN.search(self.app_id) or " " in self.app_id:
            raise field_error("app_id", "must not contain spaces or '+', '&', '%', ';' (CCP cannot carry them)")
        require_name(self.service_path, "service_path")
        service_path = self.service_path.strip("/")
        if not re.fullmatch(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*", service_path) or ".." in service_path:
            raise field_error("service_path", f"{self.service_path!r} must be a plain path such as AIMWebService")
        object.__setattr__(self, "service_path", service_path)
        if self.connection_timeout is not None:
            _positive(self.connection_timeout, "connection_timeout")
            if self.connection_timeout >= self.read_timeout:
                raise field_error(
                    "connection_timeout",
                    f"({self.connection_timeout}s) must be below read_timeout ({self.read_timeout}s), "
                    "or the client gives up before CCP answers",
                )
        if not isinstance(self.fail_on_password_change, bool):
            raise field_error("fail_on_password_change", "must be True or False")
        _bounded_int(self.password_change_retries, "password_change_retries", 0, MAX_RETRIES)
        _positive(self.password_change_wait, "password_change_wait", allow_zero=True)


@dataclass(frozen=True, kw_only=True)
class PVWAConfig(TransportConfig):
    """PAM Self-Hosted PVWA or Privilege Cloud (``https://<sub>.privilegecloud.cyberark.cloud``)."""

    auth: PVWAAuth
    base_path: str = "/PasswordVault"
    page_size: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.auth, PVWAAuth):
            raise field_error("auth", "must be PVWALogonAuth or PlatformTokenAuth")
        require_name(self.base_path, "base_path")
        base_path = "/" + self.base_path.strip("/")
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", base_path) or ".." in base_path:
            raise field_error("base_path", f"{self.base_path!r} must be a plain path such as /PasswordVault")
        object.__setattr__(self, "base_path", base_path)
        _bounded_int(self.page_size, "page_size", 1, 1000)


__all__ = ["CCPConfig", "ConjurConfig", "PVWAConfig", "TransportConfig", "validate_base_url"]
