"""One frozen, validated settings object per API.

A config is checked once, when it is built, and every problem is reported as a
``ConfigurationError`` whose ``field`` names the setting; clients can then trust it. Transport
settings are shared through inheritance (``ConjurConfig`` *is a* ``TransportConfig``), so a
config reads flat: ``ConjurConfig(base_url=..., account=..., auth=..., ca_bundle=...)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .auth import ConjurAuth, PVWAAuth
from .transport_config import MAX_RETRIES, MAX_SECONDS, TransportConfig, check_bounded_int, check_positive
from .validation import CCP_FORBIDDEN, field_error, require_name, validate_base_url

CONJUR_CLOUD_HOST = re.compile(r"(\.secretsmgr|-secretsmanager)\.cyberark\.cloud$", re.IGNORECASE)


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
            check_positive(self.connection_timeout, "connection_timeout")
            if self.connection_timeout >= self.read_timeout:
                raise field_error(
                    "connection_timeout",
                    f"({self.connection_timeout}s) must be below read_timeout ({self.read_timeout}s), "
                    "or the client gives up before CCP answers",
                )
        if not isinstance(self.fail_on_password_change, bool):
            raise field_error("fail_on_password_change", "must be True or False")
        check_bounded_int(self.password_change_retries, "password_change_retries", 0, MAX_RETRIES)
        check_positive(self.password_change_wait, "password_change_wait", allow_zero=True)


@dataclass(frozen=True, kw_only=True)
class PVWAConfig(TransportConfig):
    """PAM Self-Hosted PVWA or Privilege Cloud (``https://<sub>.privilegecloud.cyberark.cloud``)."""

    auth: PVWAAuth
    base_path: str = "/PasswordVault"
    page_size: int = 100
    check_in: bool = False
    """Exclusive accounts: credentials carry their account id so the caller checks them in after use."""
    ticketing_system: str | None = None
    ticket_id: str | None = None
    """Sent with every retrieve, for platforms that require a ticket (both or neither)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.auth, PVWAAuth):
            raise field_error("auth", "must be PVWALogonAuth or PlatformTokenAuth")
        require_name(self.base_path, "base_path")
        base_path = "/" + self.base_path.strip("/")
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", base_path) or ".." in base_path:
            raise field_error("base_path", f"{self.base_path!r} must be a plain path such as /PasswordVault")
        object.__setattr__(self, "base_path", base_path)
        check_bounded_int(self.page_size, "page_size", 1, 1000)
        if not isinstance(self.check_in, bool):
            raise field_error("check_in", "must be true or false")
        for name in ("ticketing_system", "ticket_id"):
            value = getattr(self, name)
            if value is not None:
                require_name(value, name)
        if (self.ticketing_system is None) != (self.ticket_id is None):
            missing = "ticket_id" if self.ticket_id is None else "ticketing_system"
            raise field_error(missing, "a ticket needs both ticketing_system and ticket_id")


__all__ = [
    "MAX_RETRIES",
    "MAX_SECONDS",
    "CCPConfig",
    "ConjurConfig",
    "PVWAConfig",
    "TransportConfig",
    "validate_base_url",
]
