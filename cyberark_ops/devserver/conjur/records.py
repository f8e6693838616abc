"""Conjur's records: roles, variables and their versions, authn-jwt services, token claims."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_ACCOUNT = "conjur"
"""The account of Secrets Manager SaaS, where it is fixed; self-hosted seeds usually name their own."""
PRIVILEGES = ("read", "execute", "update")
MAX_VERSIONS = 20
RESOURCE_KINDS = frozenset(
    {"variable", "policy", "user", "role", "host", "host_factory", "group", "layer", "webservice"}
)

_API_KEY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase


def random_api_key() -> str:
    """55 characters of lowercase Crockford base32, the shape of a real Conjur API key."""
    return "".join(secrets.choice(_API_KEY_ALPHABET) for _ in range(55))


@dataclass
class Role:
    kind: str
    """``user`` or ``host``."""
    id: str
    api_key: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    admin: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    """Host annotations, e.g. ``authn-azure/subscription-id`` (the cloud authenticators' restrictions)."""

    @property
    def login(self) -> str:
        """The token subject and whoami username: ``admin`` or ``host/airflow/worker``."""
        return f"host/{self.id}" if self.kind == "host" else self.id

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(kw_only=True)
class AuthenticatorService:
    """What every authenticator's webservice holds, once: whether it is enabled and which hosts it lets in."""

    enabled_hosts: frozenset[str] | None = None
    """Host ids (without ``host/``) permitted to authenticate; None permits every host."""
    enabled: bool = True

    def permits(self, role: Role) -> bool:
        """The webservice grants ``authenticate`` to hosts only: the listed ones, or all."""
        return role.kind == "host" and (self.enabled_hosts is None or role.id in self.enabled_hosts)


@dataclass
class Variable:
    id: str
    versions: list[tuple[int, bytes]] = field(default_factory=list, repr=False)
    annotations: dict[str, str] = field(default_factory=dict)
    last_version: int = 0

    @property
    def mime_type(self) -> str | None:
        return self.annotations.get("conjur/mime_type")

    def current(self) -> bytes | None:
        return self.versions[-1][1] if self.versions else None

    def value(self, version: int | None) -> bytes | None:
        if version is None:
            return self.current()
        for number, value in self.versions:
            if number == version:
                return value
        return None

    def write(self, value: bytes) -> tuple[int, bool]:
        """Appends a version unless ``value`` equals the current one; keeps the last 20."""
        if self.versions and hmac.compare_digest(self.versions[-1][1], value):
            return self.last_version, False
        self.last_version += 1
        self.versions.append((self.last_version, value))
        del self.versions[:-MAX_VERSIONS]
        return self.last_version, True


@dataclass
class JwtService(AuthenticatorService):
    service_id: str
    issuer: str | None
    audience: str | None = None
    token_app_property: str | None = None
    identity_path: str | None = None
    public_keys: list[tuple[str | None, rsa.RSAPublicKey]] | None = field(default=None, repr=False)
    """None means the dev server's own JWT key."""


@dataclass
class IamService(AuthenticatorService):
    """An authn-iam service (webservice ``conjur/authn-iam/<service_id>``)."""

    service_id: str
    optional_signed_headers: frozenset[str] = frozenset()
    """Variable ``conjur/authn-iam/<service_id>/optional-signed-headers``: more headers a workload may sign."""


@dataclass
class AzureService(AuthenticatorService):
    """An authn-azure service; ``provider_uri`` is its variable of that name (the tokens' issuer)."""

    service_id: str
    provider_uri: str


@dataclass
class GcpService(AuthenticatorService):
    """authn-gcp: one per account, no service id (webservice ``conjur/authn-gcp``)."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    issued_at: int
    expires_at: int
