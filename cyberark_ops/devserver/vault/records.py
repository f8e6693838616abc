"""The Vault's records: safes, accounts and their versions, CCP applications, users and clients."""

from __future__ import annotations

import ipaddress
import secrets
import string
from dataclasses import dataclass, field, replace
from typing import Literal

AUTH_TYPES = ("CyberArk", "LDAP", "RADIUS", "Windows")
PERMISSIONS = ("list", "retrieve", "add_accounts", "initiate_cpm", "update_password")
"""Per-safe permissions a seed can grant: ``add_accounts`` is the Vault's "Add accounts",
``initiate_cpm`` its "Initiate CPM password management operations" (needed to check an account in),
``update_password`` its "Update password value" (needed to change a value in the Vault only)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SecretVersion:
    version_id: int
    value: str
    modified_by: str
    modified_at: float


@dataclass(frozen=True)
class PendingChange:
    """A CPM change under way: ``value`` becomes version ``version_id`` at ``ends_at``."""

    value: str
    version_id: int
    ends_at: float


@dataclass
class Account:
    """One account. The model keeps the live one; handlers only ever get a ``snapshot()``, so they
    can work without holding the model's lock."""

    id: str
    name: str
    safe: str
    folder: str
    user_name: str
    address: str
    platform_id: str
    device_type: str
    properties: dict[str, str]
    versions: list[SecretVersion]
    reason_required: bool
    created_at: float
    modified_at: float
    pending: PendingChange | None = field(default=None, repr=False)
    exclusive: bool = False
    """The platform enforces check-in/check-out exclusive access: a retrieve checks the account out."""
    one_time: bool = False
    """The platform enforces one-time password access: the CPM changes the password after use."""
    min_validity: float = 0.0
    """Seconds a one-time password stays valid after a retrieve (the platform's MinValidityPeriod)."""
    ticket_required: bool = False
    """Retrieves must carry ``TicketingSystem`` and ``TicketId``."""
    checked_out_by: str | None = None

    @property
    def secret(self) -> str:
        return self.versions[-1].value

    @property
    def change_in_process(self) -> bool:
        return self.pending is not None

    def prop(self, name: str) -> str | None:
        return ci_get(self.properties, name)

    def set_prop(self, name: str, value: str) -> None:
        for key in self.properties:
            if key.casefold() == name.casefold():
                self.properties[key] = value
                return
        self.properties[name] = value

    def snapshot(self) -> Account:
        """A copy of this account at this instant, sharing nothing mutable with it."""
        return replace(self, properties=dict(self.properties), versions=list(self.versions))


@dataclass(frozen=True)
class Safe:
    name: str
    id: int
    description: str = ""


@dataclass(frozen=True)
class CcpApplication:
    app_id: str
    allowed_safes: frozenset[str]
    """Casefolded safe names; ``*`` allows every safe."""
    allowed_machines: tuple[Network, ...]
    allowed_cert_subjects: frozenset[str]
    """Normalised subjects (see ``normalize_subject``)."""
    require_certificate: bool
    disabled: bool

    def may_use_safe(self, safe: str) -> bool:
        return "*" in self.allowed_safes or safe.casefold() in self.allowed_safes

    def machine_allowed(self, client_ip: str) -> bool:
        if not self.allowed_machines:
            return True
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed_machines)


@dataclass(frozen=True)
class Principal:
    """Who a PVWA request acts as: a Vault user or a Privilege Cloud OAuth client."""

    name: str
    kind: Literal["user", "client"]
    permissions: dict[str, frozenset[str]]
    """Casefolded safe name (or ``*``) -> granted permissions."""

    def can(self, safe: str, permission: str) -> bool:
        granted = self.permissions.get(safe.casefold(), frozenset()) | self.permissions.get("*", frozenset())
        return permission in granted

    def sees(self, safe: str) -> bool:
        return self.can(safe, "list") or self.can(safe, "retrieve")


@dataclass
class User:
    username: str
    password: str
    auth_type: str
    permissions: dict[str, frozenset[str]]
    locked: bool


@dataclass
class Client:
    client_id: str
    client_secret: str
    permissions: dict[str, frozenset[str]]
    disabled: bool


@dataclass
class Session:
    username: str
    expires_at: float


@dataclass
class PlatformToken:
    client_id: str
    expires_at: float


@dataclass
class SafeState:
    safe: Safe
    next_object: int = 1


def normalize_subject(subject: str) -> str:
    """``CN = a, O=b`` and ``cn=a,o=b`` compare equal, as a Vault admin would expect."""
    parts = []
    for part in subject.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            parts.append(part.strip().casefold())
            continue
        parts.append(f"{key.strip().upper()}={value.strip()}")
    return ",".join(parts)


def random_password(length: int = 20) -> str:
    """A CPM-like password: every character class, including ones that need URL/JSON escaping."""
    symbols = "!#$%*+-=?@_&;"
    alphabet = string.ascii_letters + string.digits + symbols
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in value)
            and any(c.isupper() for c in value)
            and any(c.isdigit() for c in value)
            and any(c in symbols for c in value)
        ):
            return value


def ci_get(mapping: dict[str, str], name: str) -> str | None:
    folded = name.casefold()
    for key, value in mapping.items():
        if key.casefold() == folded:
            return value
    return None
