"""State of the emulated Vault: safes, accounts, CCP applications, PVWA users and tokens.

CCP and PVWA are two front doors to one Vault, so both handler modules read the same model; a
rotation made through the admin API is therefore visible to both at once, as it is on a real Vault.
Handlers only ever get immutable snapshots (``AccountView``), never the live objects, so they can
work without holding the lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SeedError

AUTH_TYPES = ("CyberArk", "LDAP", "RADIUS", "Windows")
PERMISSIONS = ("list", "retrieve")
DEFAULT_SESSION_TTL = 20 * 60.0
DEFAULT_PLATFORM_TTL = 900.0
MAX_VERSIONS = 100
CPM_USER = "PasswordManager"

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_PROPERTY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
# Properties carried by dedicated account fields; a seed may not smuggle them in as free properties.
_RESERVED_PROPERTIES = frozenset(
    {
        "content",
        "username",
        "address",
        "safe",
        "folder",
        "name",
        "object",
        "policyid",
        "platformid",
        "devicetype",
        "creationmethod",
        "passwordchangeinprocess",
    }
)
_DB_PLATFORM_HINTS = ("sql", "postgres", "maria", "oracle", "db2", "mongo", "sqlite")

LogonResult = Literal["ok", "failed", "locked"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SecretVersion:
    version_id: int
    value: str
    modified_by: str
    modified_at: float


@dataclass
class _PendingChange:
    value: str
    version_id: int
    ends_at: float


@dataclass
class _Account:
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
    pending: _PendingChange | None = None

    def prop(self, name: str) -> str | None:
        return _ci_get(self.properties, name)


@dataclass(frozen=True)
class AccountView:
    """An immutable copy of one account at one instant, safe to use outside the model's lock."""

    id: str
    name: str
    safe: str
    folder: str
    user_name: str
    address: str
    platform_id: str
    device_type: str
    properties: dict[str, str]
    versions: tuple[SecretVersion, ...]
    reason_required: bool
    created_at: float
    modified_at: float
    change_in_process: bool

    @property
    def secret(self) -> str:
        return self.versions[-1].value

    def prop(self, name: str) -> str | None:
        return _ci_get(self.properties, name)


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
class _User:
    username: str
    password: str
    auth_type: str
    permissions: dict[str, frozenset[str]]
    locked: bool


@dataclass
class _Client:
    client_id: str
    client_secret: str
    permissions: dict[str, frozenset[str]]
    disabled: bool


@dataclass
class _Session:
    username: str
    expires_at: float


@dataclass
class _PlatformToken:
    client_id: str
    expires_at: float


@dataclass
class _SafeState:
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


def _ci_get(mapping: dict[str, str], name: str) -> str | None:
    folded = name.casefold()
    for key, value in mapping.items():
        if key.casefold() == folded:
            return value
    return None


def _utf8(text: str) -> bytes:
    # JSON bodies may carry lone surrogates ("\ud800"); they must fail a comparison, not the request.
    return text.encode("utf-8", "surrogatepass")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- seed validation helpers -----------------------------------------------------------------------


def _mapping(data: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SeedError(where, "must be a mapping")
    unknown = set(data) - allowed
    if unknown:
        raise SeedError(where, f"unknown field(s) {sorted(map(str, unknown))}; allowed: {sorted(allowed)}")
    return data


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedError(f"{where}.{key}", "must be a list")
    return value


def _string(
    data: dict[str, Any], key: str, where: str, *, default: str | None = None, allow_empty: bool = False
) -> str:
    value = data.get(key)
    if value is None:
        if default is None:
            raise SeedError(f"{where}.{key}", "is required")
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SeedError(f"{where}.{key}", "must be a string")
    text = str(value)
    if not text and not allow_empty:
        raise SeedError(f"{where}.{key}", "must not be empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise SeedError(f"{where}.{key}", "must not contain control characters")
    return text


def _bool(data: dict[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise SeedError(f"{where}.{key}", "must be true or false")
    return value


def _string_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    items = _list(data, key, where)
    out = []
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (str, int)) or str(item) == "":
            raise SeedError(f"{where}.{key}[{index}]", "must be a non-empty string")
        out.append(str(item))
    return out


class VaultModel:
    """All Vault state behind one lock; CCP and PVWA handlers share one instance."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._safes: dict[str, _SafeState] = {}
        self._accounts: dict[str, _Account] = {}
        self._apps: dict[str, CcpApplication] = {}
        self._users: dict[str, _User] = {}
        self._clients: dict[str, _Client] = {}
        self._sessions: dict[str, _Session] = {}
        self._platform_tokens: dict[str, _PlatformToken] = {}
        self._session_ttl = DEFAULT_SESSION_TTL
        self._platform_ttl = DEFAULT_PLATFORM_TTL
        self._signing_key = secrets.token_bytes(32)

    # -- seed ------------------------------------------------------------------------------------------

    @classmethod
    def from_seed(cls, data: dict[str, Any], where: str) -> VaultModel:
        data = _mapping(data, where, {"safes", "accounts", "ccp_applications", "pvwa_users", "platform_clients"})
        model = cls()
        for index, item in enumerate(_list(data, "safes", where)):
            model._seed_safe(item, f"{where}.safes[{index}]")
        for index, item in enumerate(_list(data, "accounts", where)):
            model._seed_account(item, f"{where}.accounts[{index}]")
        model._check_dual_groups(f"{where}.accounts")
        for index, item in enumerate(_list(data, "ccp_applications", where)):
            model._seed_application(item, f"{where}.ccp_applications[{index}]")
        for index, item in enumerate(_list(data, "pvwa_users", where)):
            model._seed_user(item, f"{where}.pvwa_users[{index}]")
        for index, item in enumerate(_list(data, "platform_clients", where)):
            model._seed_client(item, f"{where}.platform_clients[{index}]")
        return model

    def _seed_safe(self, item: Any, where: str) -> None:
        if isinstance(item, str):
            item = {"name": item}
        item = _mapping(item, where, {"name", "id", "description"})
        name = _string(item, "name", where)
        if "/" in name or len(name) > 28:
            raise SeedError(f"{where}.name", "must be at most 28 characters and contain no '/' (Vault rule)")
        if name.casefold() in self._safes:
            raise SeedError(f"{where}.name", f"duplicate safe {name!r}")
        used = {state.safe.id for state in self._safes.values()}
        safe_id = item.get("id")
        if safe_id is None:
            safe_id = max(used, default=1) + 1
        elif isinstance(safe_id, bool) or not isinstance(safe_id, int) or safe_id < 1:
            raise SeedError(f"{where}.id", "must be a positive integer")
        if safe_id in used:
            raise SeedError(f"{where}.id", f"duplicate safe id {safe_id}")
        description = _string(item, "description", where, default="", allow_empty=True)
        self._safes[name.casefold()] = _SafeState(Safe(name, safe_id, description))

    def _seed_account(self, item: Any, where: str) -> None:
        item = _mapping(
            item,
            where,
            {
                "id",
                "name",
                "safe",
                "folder",
                "userName",
                "address",
                "platformId",
                "deviceType",
                "secret",
                "previous_secrets",
                "properties",
                "reason_required",
            },
        )
        name = _string(item, "name", where)
        if len(name) > 128:
            raise SeedError(f"{where}.name", "must be at most 128 characters")
        safe_name = _string(item, "safe", where)
        safe_state = self._safes.get(safe_name.casefold())
        if safe_state is None:
            raise SeedError(f"{where}.safe", f"safe {safe_name!r} is not defined in safes")
        folder = _string(item, "folder", where, default="Root")
        for other in self._accounts.values():
            if (other.safe, other.folder.casefold(), other.name.casefold()) == (
                safe_state.safe.name,
                folder.casefold(),
                name.casefold(),
            ):
                raise SeedError(f"{where}.name", f"duplicate account {name!r} in safe {safe_name!r}")
        account_id = item.get("id")
        if account_id is None:
            while True:
                account_id = f"{safe_state.safe.id}_{safe_state.next_object}"
                safe_state.next_object += 1
                if account_id not in self._accounts:
                    break
        else:
            account_id = _string(item, "id", where)
            if not _ID_RE.match(account_id):
                raise SeedError(f"{where}.id", "must be 1-64 characters of letters, digits, '_' or '-'")
            if account_id in self._accounts:
                raise SeedError(f"{where}.id", f"duplicate account id {account_id!r}")
        if "secret" not in item or not isinstance(item["secret"], str):
            raise SeedError(f"{where}.secret", "is required and must be a string")
        history = []
        for index, old in enumerate(_list(item, "previous_secrets", where)):
            if not isinstance(old, str):
                raise SeedError(f"{where}.previous_secrets[{index}]", "must be a string")
            history.append(old)
        properties = self._seed_properties(item.get("properties"), f"{where}.properties")
        platform_id = _string(item, "platformId", where, default="UnixSSH")
        default_device = (
            "Database"
            if _ci_get(properties, "Database") is not None
            or any(hint in platform_id.casefold() for hint in _DB_PLATFORM_HINTS)
            else "Operating System"
        )
        created = float(int(time.time()))
        versions = [
            SecretVersion(number, value, "Administrator", created)
            for number, value in enumerate([*history, item["secret"]], start=1)
        ]
        self._accounts[account_id] = _Account(
            id=account_id,
            name=name,
            safe=safe_state.safe.name,
            folder=folder,
            user_name=_string(item, "userName", where, default="", allow_empty=True),
            address=_string(item, "address", where, default="", allow_empty=True),
            platform_id=platform_id,
            device_type=_string(item, "deviceType", where, default=default_device),
            properties=properties,
            versions=versions,
            reason_required=_bool(item, "reason_required", where),
            created_at=created,
            modified_at=created,
        )

    @staticmethod
    def _seed_properties(raw: Any, where: str) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise SeedError(where, "must map property names to values")
        properties: dict[str, str] = {}
        seen: set[str] = set()
        for key, value in raw.items():
            name = str(key)
            if not _PROPERTY_RE.match(name):
                raise SeedError(f"{where}.{name}", "property names are letters, digits and '_'")
            if name.casefold() in _RESERVED_PROPERTIES:
                raise SeedError(f"{where}.{name}", "set this through the account field of the same meaning")
            if name.casefold() in seen:
                raise SeedError(f"{where}.{name}", "duplicate property (names are case-insensitive)")
            seen.add(name.casefold())
            if isinstance(value, bool):
                text = "True" if value else "False"
            elif isinstance(value, (str, int, float)):
                text = str(value)
            else:
                raise SeedError(f"{where}.{name}", "must be a string or number")
            if any(ord(c) < 0x20 for c in text):
                raise SeedError(f"{where}.{name}", "must not contain control characters")
            properties[name] = text
        status = _ci_get(properties, "DualAccountStatus")
        virtual = _ci_get(properties, "VirtualUsername")
        if (status is None) != (virtual is None):
            raise SeedError(where, "dual accounts need both VirtualUsername and DualAccountStatus")
        if status is not None:
            if status.casefold() not in ("active", "inactive"):
                raise SeedError(f"{where}.DualAccountStatus", "must be Active or Inactive")
            for key in properties:
                if key.casefold() == "dualaccountstatus":
                    properties[key] = status.capitalize()
        return properties

    def _check_dual_groups(self, where: str) -> None:
        active: dict[tuple[str, str], str] = {}
        for account in self._accounts.values():
            virtual = account.prop("VirtualUsername")
            if virtual is None or account.prop("DualAccountStatus") != "Active":
                continue
            key = (account.safe, virtual.casefold())
            if key in active:
                raise SeedError(
                    where,
                    f"VirtualUsername {virtual!r} in safe {account.safe!r} has more than one Active account",
                )
            active[key] = account.id

    def _seed_safe_list(self, names: list[str], where: str) -> frozenset[str]:
        for index, name in enumerate(names):
            if name != "*" and name.casefold() not in self._safes:
                raise SeedError(f"{where}[{index}]", f"safe {name!r} is not defined in safes")
        return frozenset(name.casefold() for name in names)

    def _seed_application(self, item: Any, where: str) -> None:
        item = _mapping(
            item,
            where,
            {
                "app_id",
                "allowed_safes",
                "allowed_machines",
                "allowed_cert_subjects",
                "require_certificate",
                "disabled",
            },
        )
        app_id = _string(item, "app_id", where)
        if any(c in app_id for c in "&%+;=") or len(app_id) > 128:
            raise SeedError(f"{where}.app_id", "must be at most 128 characters without & % + ; =")
        if app_id.casefold() in self._apps:
            raise SeedError(f"{where}.app_id", f"duplicate application {app_id!r}")
        safes = self._seed_safe_list(_string_list(item, "allowed_safes", where), f"{where}.allowed_safes")
        machines: list[Network] = []
        for index, text in enumerate(_string_list(item, "allowed_machines", where)):
            try:
                machines.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise SeedError(f"{where}.allowed_machines[{index}]", "must be an IP address or CIDR network") from None
        subjects = frozenset(normalize_subject(s) for s in _string_list(item, "allowed_cert_subjects", where))
        self._apps[app_id.casefold()] = CcpApplication(
            app_id=app_id,
            allowed_safes=safes,
            allowed_machines=tuple(machines),
            allowed_cert_subjects=subjects,
            require_certificate=_bool(item, "require_certificate", where),
            disabled=_bool(item, "disabled", where),
        )

    def _seed_permissions(self, raw: Any, where: str) -> dict[str, frozenset[str]]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise SeedError(where, "must map safe names (or '*') to a list of list/retrieve")
        permissions: dict[str, frozenset[str]] = {}
        for safe, granted in raw.items():
            safe_name = str(safe)
            if safe_name != "*" and safe_name.casefold() not in self._safes:
                raise SeedError(f"{where}.{safe_name}", f"safe {safe_name!r} is not defined in safes")
            names = [granted] if isinstance(granted, str) else granted
            if not isinstance(names, list) or not all(g in PERMISSIONS for g in names):
                raise SeedError(f"{where}.{safe_name}", f"must be a list of {', '.join(PERMISSIONS)}")
            permissions[safe_name.casefold()] = frozenset(names)
        return permissions

    def _seed_user(self, item: Any, where: str) -> None:
        item = _mapping(item, where, {"username", "password", "auth_type", "permissions", "locked"})
        username = _string(item, "username", where)
        if username.casefold() in self._users:
            raise SeedError(f"{where}.username", f"duplicate user {username!r}")
        auth_type = _string(item, "auth_type", where, default="CyberArk")
        canonical = {a.casefold(): a for a in AUTH_TYPES}.get(auth_type.casefold())
        if canonical is None:
            raise SeedError(f"{where}.auth_type", f"must be one of {', '.join(AUTH_TYPES)}")
        self._users[username.casefold()] = _User(
            username=username,
            password=_string(item, "password", where),
            auth_type=canonical,
            permissions=self._seed_permissions(item.get("permissions"), f"{where}.permissions"),
            locked=_bool(item, "locked", where),
        )

    def _seed_client(self, item: Any, where: str) -> None:
        item = _mapping(item, where, {"client_id", "client_secret", "permissions", "disabled"})
        client_id = _string(item, "client_id", where)
        if client_id in self._clients:
            raise SeedError(f"{where}.client_id", f"duplicate client {client_id!r}")
        self._clients[client_id] = _Client(
            client_id=client_id,
            client_secret=_string(item, "client_secret", where),
            permissions=self._seed_permissions(item.get("permissions"), f"{where}.permissions"),
            disabled=_bool(item, "disabled", where),
        )

    # -- reads -----------------------------------------------------------------------------------------

    def _view(self, account: _Account) -> AccountView:
        return AccountView(
            id=account.id,
            name=account.name,
            safe=account.safe,
            folder=account.folder,
            user_name=account.user_name,
            address=account.address,
            platform_id=account.platform_id,
            device_type=account.device_type,
            properties=dict(account.properties),
            versions=tuple(account.versions),
            reason_required=account.reason_required,
            created_at=account.created_at,
            modified_at=account.modified_at,
            change_in_process=account.pending is not None,
        )

    def accounts(self, now: float) -> list[AccountView]:
        """Every account in seed order, as of ``now``."""
        with self._lock:
            self._finish_changes(now)
            return [self._view(a) for a in self._accounts.values()]

    def account(self, account_id: str, now: float) -> AccountView | None:
        with self._lock:
            self._finish_changes(now)
            found = self._accounts.get(account_id)
            return self._view(found) if found else None

    def safes(self) -> list[Safe]:
        with self._lock:
            return [state.safe for state in self._safes.values()]

    def ccp_application(self, app_id: str) -> CcpApplication | None:
        with self._lock:
            return self._apps.get(app_id.casefold())

    # -- PVWA sessions and Privilege Cloud tokens ------------------------------------------------------

    def logon(self, username: str, password: str, auth_type: str, now: float) -> tuple[LogonResult, str | None]:
        """(result, token); the token is only set for ``ok``."""
        with self._lock:
            user = self._users.get(username.casefold())
            if user is None:
                # Compare anyway so an unknown user costs as much as a wrong password.
                hmac.compare_digest(_utf8(password), b"x" * 16)
                return "failed", None
            if not hmac.compare_digest(_utf8(password), _utf8(user.password)):
                return "failed", None
            if user.auth_type.casefold() != auth_type.casefold():
                return "failed", None
            if user.locked:
                return "locked", None
            token = secrets.token_urlsafe(144)
            self._sessions[token] = _Session(user.username, now + self._session_ttl)
            return "ok", token

    def session_principal(self, token: str, now: float) -> Principal | None:
        """The session's user, sliding its idle timeout; None if unknown, logged off or expired."""
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires_at <= now:
                del self._sessions[token]
                return None
            user = self._users.get(session.username.casefold())
            if user is None or user.locked:
                return None
            session.expires_at = now + self._session_ttl
            return Principal(user.username, "user", dict(user.permissions))

    def logoff(self, token: str) -> bool:
        with self._lock:
            return self._sessions.pop(token, None) is not None

    def issue_platform_token(self, client_id: str, client_secret: str, now: float) -> tuple[str, int] | None:
        """(access_token, expires_in) or None for wrong credentials or a disabled client."""
        with self._lock:
            client = self._clients.get(client_id)
            expected = _utf8(client.client_secret) if client else b"x" * 16
            if not hmac.compare_digest(_utf8(client_secret), expected) or client is None or client.disabled:
                return None
            expires_in = max(1, int(self._platform_ttl))
            header = {"alg": "HS256", "typ": "JWT", "kid": "cyberark-ops-devserver"}
            claims = {
                "iss": "cyberark-ops-devserver",
                "sub": client.client_id,
                "aud": "privilegecloud",
                "iat": int(now),
                "exp": int(now) + expires_in,
                "jti": secrets.token_hex(16),
            }
            signing_input = (
                _b64url(json.dumps(header, separators=(",", ":")).encode())
                + "."
                + _b64url(json.dumps(claims, separators=(",", ":")).encode())
            )
            signature = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).digest()
            token = f"{signing_input}.{_b64url(signature)}"
            self._platform_tokens[token] = _PlatformToken(client.client_id, now + expires_in)
            return token, expires_in

    def platform_principal(self, token: str, now: float) -> Principal | None:
        with self._lock:
            issued = self._platform_tokens.get(token)
            if issued is None:
                return None
            if issued.expires_at <= now:
                del self._platform_tokens[token]
                return None
            client = self._clients.get(issued.client_id)
            if client is None or client.disabled:
                return None
            return Principal(client.client_id, "client", dict(client.permissions))

    def revoke_tokens(self) -> int:
        with self._lock:
            count = len(self._sessions) + len(self._platform_tokens)
            self._sessions.clear()
            self._platform_tokens.clear()
            return count

    def set_token_ttl(self, seconds: float) -> None:
        if seconds <= 0:
            raise SeedError("token_ttl", "must be positive")
        with self._lock:
            self._session_ttl = float(seconds)
            self._platform_ttl = float(seconds)

    # -- rotation --------------------------------------------------------------------------------------

    def _find(self, object_id: str) -> _Account:
        """By account id, ``<safe>/<name>``, a name unique across safes, or a dual-account group."""
        found = self._accounts.get(object_id)
        if found is not None:
            return found
        safe, sep, name = object_id.partition("/")
        if sep:
            candidates = [
                a
                for a in self._accounts.values()
                if a.safe.casefold() == safe.casefold() and a.name.casefold() == name.casefold()
            ]
        else:
            candidates = [a for a in self._accounts.values() if a.name.casefold() == object_id.casefold()]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            # A VirtualUsername names a dual-account group: rotate whichever member is Active, so a
            # scheduled rotation alternates between the members as the CPM does.
            virtual = name if sep else object_id
            active = [
                a
                for a in self._accounts.values()
                if (a.prop("VirtualUsername") or "").casefold() == virtual.casefold()
                and (not sep or a.safe.casefold() == safe.casefold())
                and a.prop("DualAccountStatus") == "Active"
            ]
            if len(active) == 1:
                return active[0]
        raise KeyError(object_id)

    def rotate(self, object_id: str, value: str | None, now: float, change_window: float) -> dict[str, Any]:
        """A CPM change: the new value takes effect at ``now + change_window``.

        Rotating the Active member of a dual-account group first makes its peer Active (as the CPM
        does), so ``VirtualUsername`` queries never see a value that is about to change; the window
        then plays the part of the platform's GracePeriod.
        """
        if change_window < 0:
            raise SeedError("change_window", "must not be negative")
        if value is not None and not isinstance(value, str):
            raise SeedError("value", "must be a string")
        with self._lock:
            self._finish_changes(now)
            account = self._find(object_id)
            facts: dict[str, Any] = {
                "target": f"vault:{account.id}",
                "safe": account.safe,
                "name": account.name,
            }
            active_peer = self._flip_dual(account)
            if active_peer is not None:
                facts["dual_account_active"] = active_peer
            new_value = value if value is not None else random_password()
            if account.pending is not None:
                version_id = account.pending.version_id
                ends_at = max(account.pending.ends_at, now + change_window)
            else:
                version_id = account.versions[-1].version_id + 1
                ends_at = now + change_window
            if change_window > 0:
                account.pending = _PendingChange(new_value, version_id, ends_at)
                facts["change_ends_at"] = ends_at
            else:
                account.pending = None
                self._apply(account, new_value, version_id, now)
                facts["change_ends_at"] = None
            facts["version"] = version_id
            return facts

    def _flip_dual(self, account: _Account) -> str | None:
        virtual = account.prop("VirtualUsername")
        if virtual is None or account.prop("DualAccountStatus") != "Active":
            return None
        peers = [
            other
            for other in self._accounts.values()
            if other is not account
            and other.safe == account.safe
            and (other.prop("VirtualUsername") or "").casefold() == virtual.casefold()
        ]
        if not peers:
            return None
        peers.sort(key=lambda a: (a.prop("Index") or "", a.id))
        _set_prop(account, "DualAccountStatus", "Inactive")
        _set_prop(peers[0], "DualAccountStatus", "Active")
        return peers[0].id

    def _apply(self, account: _Account, value: str, version_id: int, at: float) -> None:
        account.versions.append(SecretVersion(version_id, value, CPM_USER, at))
        del account.versions[:-MAX_VERSIONS]
        account.modified_at = at

    def _finish_changes(self, now: float) -> None:
        for account in self._accounts.values():
            pending = account.pending
            if pending is not None and pending.ends_at <= now:
                account.pending = None
                self._apply(account, pending.value, pending.version_id, pending.ends_at)

    def tick(self, now: float) -> None:
        with self._lock:
            self._finish_changes(now)


def _set_prop(account: _Account, name: str, value: str) -> None:
    for key in account.properties:
        if key.casefold() == name.casefold():
            account.properties[key] = value
            return
    account.properties[name] = value


__all__ = [
    "AUTH_TYPES",
    "PERMISSIONS",
    "AccountView",
    "CcpApplication",
    "Principal",
    "Safe",
    "SecretVersion",
    "VaultModel",
    "normalize_subject",
    "random_password",
]
