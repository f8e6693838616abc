"""Conjur state for the dev server: roles, variables and their versions, permits, access tokens and
authn-jwt services.

Everything a request can observe lives here behind one lock, so handlers stay thin and a rotation
from the admin API can never interleave with half of a batch read. Access tokens are signed with a
random per-model HMAC key instead of slosilo's RSA: clients treat the signature as opaque, HMAC is
cheap enough that the dev server never becomes the bottleneck of a benchmark, and replacing the key
revokes every token at once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import SeedError

log = logging.getLogger("cyberark_ops.devserver")

DEFAULT_ACCOUNT = "conjur"
"""The account of Secrets Manager SaaS, where it is fixed; self-hosted seeds usually name their own."""
PRIVILEGES = ("read", "execute", "update")
MAX_VERSIONS = 20
DEFAULT_TOKEN_TTL = 480.0
MAX_TOKEN_TTL = 5 * 3600.0
TOKEN_ALG = "conjur.org/slosilo/v2"  # noqa: S105 - an algorithm name
TOKEN_CLAIMS = frozenset({"iat", "exp", "cidr", "sub", "iss", "aud", "jti"})
DEV_JWT_ISSUER = "https://devserver.cyberark-ops.local"
JWT_KEY_FILE = "jwt-key.pem"
RESOURCE_KINDS = frozenset(
    {"variable", "policy", "user", "role", "host", "host_factory", "group", "layer", "webservice"}
)

# Rack-level token errors (conjur-rack), sent as text/plain.
AUTHORIZATION_MISSING = "Authorization missing"
MALFORMED_TOKEN = "Malformed authorization token"  # noqa: S105
INVALID_TOKEN = "Unauthorized: Invalid token"  # noqa: S105
UNRECOGNIZED_CLAIMS = "token contains unrecognized claims"

_API_KEY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
_TOKEN_HEADER = re.compile(r'Token token="(.*)"')
_NOT_STD_B64 = re.compile(r"[^A-Za-z0-9+/]")
_JWT_SHAPE = re.compile(r"[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+")
_JWT_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
}
_ACCOUNT = re.compile(r"[^ :/%]+")


def random_api_key() -> str:
    """55 characters of lowercase Crockford base32, the shape of a real Conjur API key."""
    return "".join(secrets.choice(_API_KEY_ALPHABET) for _ in range(55))


def b64url(data: bytes) -> str:
    """URL-safe base64 *with* padding, as Ruby's ``urlsafe_encode64`` writes token parts."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def _b64url_nopad(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    """Decodes base64url with or without padding; None on garbage."""
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None


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


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TokenRejected(Exception):
    """An access token problem; ``message`` is the fixed text/plain body conjur-rack sends."""

    def __init__(self, status: int, message: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.message = message
        self.detail = detail


class JwtRejected(Exception):
    """An authn-jwt failure. Only expiry gets a message body, as in Conjur."""

    def __init__(self, status: int, detail: str, *, expired: bool = False, identity: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.expired = expired
        self.identity = identity


@dataclass
class Role:
    kind: str
    """``user`` or ``host``."""
    id: str
    api_key: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    admin: bool = False

    @property
    def login(self) -> str:
        """The token subject and whoami username: ``admin`` or ``host/airflow/worker``."""
        return f"host/{self.id}" if self.kind == "host" else self.id

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


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
class JwtService:
    service_id: str
    issuer: str | None
    audience: str | None = None
    token_app_property: str | None = None
    identity_path: str | None = None
    public_keys: list[tuple[str | None, rsa.RSAPublicKey]] | None = field(default=None, repr=False)
    """None means the dev server's own JWT key."""
    enabled_hosts: frozenset[str] | None = None
    """Host ids (without ``host/``) allowed to authenticate; None allows every host."""
    enabled: bool = True

    def permits(self, role: Role) -> bool:
        if role.kind != "host":
            return False
        return self.enabled_hosts is None or role.id in self.enabled_hosts


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    issued_at: int
    expires_at: int


class ConjurModel:
    def __init__(self, account: str = DEFAULT_ACCOUNT, *, state_dir: Path) -> None:
        self.account = account
        self.state_dir = state_dir
        self.created_at = time.time()
        self._lock = threading.RLock()
        self._users: dict[str, Role] = {}
        self._hosts: dict[str, Role] = {}
        self._variables: dict[str, Variable] = {}
        self._permissions: dict[str, dict[str, frozenset[str]]] = {}
        """variable id -> role key (``host:airflow/worker``) -> privileges."""
        self._jwt_services: dict[str, JwtService] = {}
        self._token_ttl = DEFAULT_TOKEN_TTL
        self._signing_key = secrets.token_bytes(32)
        self._kid = secrets.token_hex(32)
        self._issued = 0
        self._jwt_key: tuple[rsa.RSAPrivateKey, str] | None = None

    # -- seed ----------------------------------------------------------------------------------

    @classmethod
    def from_seed(cls, data: Any, where: str, *, state_dir: Path) -> ConjurModel:
        """Validates a ``conjur:`` seed section; every error names the offending field's path."""
        if data is None:
            data = {}
        mapping = _mapping(data, where)
        _known(mapping, {"account", "users", "hosts", "variables", "permits", "authn_jwt"}, where)
        account = mapping.get("account", DEFAULT_ACCOUNT)
        if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
            raise SeedError(f"{where}.account", "must be a non-empty string without spaces, ':', '/' or '%'")
        model = cls(account, state_dir=state_dir)
        for index, item in enumerate(_list(mapping.get("users"), f"{where}.users")):
            model._add_role("user", item, f"{where}.users[{index}]")
        for index, item in enumerate(_list(mapping.get("hosts"), f"{where}.hosts")):
            model._add_role("host", item, f"{where}.hosts[{index}]")
        for index, item in enumerate(_list(mapping.get("variables"), f"{where}.variables")):
            model._add_variable(item, f"{where}.variables[{index}]")
        for index, item in enumerate(_list(mapping.get("permits"), f"{where}.permits")):
            model._add_permit(item, f"{where}.permits[{index}]")
        for index, item in enumerate(_list(mapping.get("authn_jwt"), f"{where}.authn_jwt")):
            model._add_jwt_service(item, f"{where}.authn_jwt[{index}]")
        return model

    def _add_role(self, kind: str, item: Any, where: str) -> None:
        allowed = {"id", "api_key", "password", "admin"} if kind == "user" else {"id", "api_key"}
        data = _mapping(item, where)
        _known(data, allowed, where)
        role_id = _identifier(data.get("id"), f"{where}.id")
        if kind == "host" and role_id.startswith("host/"):
            role_id = role_id[len("host/") :]
        table = self._users if kind == "user" else self._hosts
        if role_id in table:
            raise SeedError(f"{where}.id", f"duplicate {kind} {role_id!r}")
        api_key = data.get("api_key")
        if api_key is None:
            api_key = random_api_key()
        elif not isinstance(api_key, str) or not api_key or any(ch.isspace() for ch in api_key):
            raise SeedError(f"{where}.api_key", "must be a non-empty string without whitespace")
        password = data.get("password")
        if password is not None and (not isinstance(password, str) or not password):
            raise SeedError(f"{where}.password", "must be a non-empty string")
        admin = data.get("admin", role_id == "admin")
        if not isinstance(admin, bool):
            raise SeedError(f"{where}.admin", "must be true or false")
        table[role_id] = Role(kind, role_id, api_key, password, admin)

    def _add_variable(self, item: Any, where: str) -> None:
        data = _mapping(item, where)
        _known(data, {"id", "value", "values", "value_base64", "mime_type", "annotations"}, where)
        var_id = _identifier(data.get("id"), f"{where}.id")
        if var_id in self._variables:
            raise SeedError(f"{where}.id", f"duplicate variable {var_id!r}")
        given = [name for name in ("value", "values", "value_base64") if name in data]
        if len(given) > 1:
            raise SeedError(where, f"give only one of value, values, value_base64 (got {', '.join(given)})")
        values: list[bytes] = []
        if "value" in data:
            values.append(_secret_bytes(data["value"], f"{where}.value"))
        elif "values" in data:
            raw = data["values"]
            if not isinstance(raw, list):
                raise SeedError(f"{where}.values", "must be a list of values, oldest first")
            values.extend(_secret_bytes(v, f"{where}.values[{i}]") for i, v in enumerate(raw))
        elif "value_base64" in data:
            encoded = data["value_base64"]
            try:
                decoded = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
            except (binascii.Error, ValueError):
                decoded = b""
            if not decoded:
                raise SeedError(f"{where}.value_base64", "must be non-empty standard base64")
            values.append(decoded)
        annotations_raw = data.get("annotations") or {}
        if not isinstance(annotations_raw, dict):
            raise SeedError(f"{where}.annotations", "must map names to strings")
        annotations: dict[str, str] = {}
        for name, value in annotations_raw.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise SeedError(f"{where}.annotations", "names and values must be strings")
            annotations[name] = value
        mime_type = data.get("mime_type")
        if mime_type is not None:
            if not isinstance(mime_type, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime_type):
                raise SeedError(f"{where}.mime_type", "must be a media type such as application/json")
            annotations["conjur/mime_type"] = mime_type
        variable = Variable(var_id, annotations=annotations)
        for value in values:
            variable.write(value)
        self._variables[var_id] = variable

    def _add_permit(self, item: Any, where: str) -> None:
        data = _mapping(item, where)
        _known(data, {"role", "privileges", "resources"}, where)
        role_spec = data.get("role")
        kind, sep, role_id = role_spec.partition(":") if isinstance(role_spec, str) else ("", "", "")
        table = {"user": self._users, "host": self._hosts}.get(kind)
        if not sep or table is None:
            raise SeedError(f"{where}.role", "must look like 'host:airflow/worker' or 'user:admin'")
        if role_id not in table:
            raise SeedError(f"{where}.role", f"no {kind} {role_id!r} in the seed")
        privileges = data.get("privileges")
        if isinstance(privileges, str):
            privileges = [privileges]
        if not isinstance(privileges, list) or not privileges or any(p not in PRIVILEGES for p in privileges):
            raise SeedError(f"{where}.privileges", f"must be a non-empty list of {', '.join(PRIVILEGES)}")
        resources = data.get("resources")
        if isinstance(resources, str):
            resources = [resources]
        if not isinstance(resources, list) or not resources:
            raise SeedError(f"{where}.resources", "must be a non-empty list of variable ids")
        granted = frozenset(privileges)
        key = f"{kind}:{role_id}"
        for index, pattern in enumerate(resources):
            if not isinstance(pattern, str) or not pattern:
                raise SeedError(f"{where}.resources[{index}]", "must be a variable id")
            if pattern.endswith("*"):
                prefix = pattern[:-1]
                matched = [v for v in self._variables if v.startswith(prefix)]
            else:
                matched = [pattern] if pattern in self._variables else []
            if not matched:
                raise SeedError(f"{where}.resources[{index}]", f"no variable matches {pattern!r}")
            for var_id in matched:
                grants = self._permissions.setdefault(var_id, {})
                grants[key] = grants.get(key, frozenset()) | granted

    def _add_jwt_service(self, item: Any, where: str) -> None:
        data = _mapping(item, where)
        _known(
            data,
            {
                "service_id",
                "issuer",
                "audience",
                "token_app_property",
                "identity_path",
                "public_keys",
                "enabled_hosts",
                "enabled",
            },
            where,
        )
        service_id = _identifier(data.get("service_id"), f"{where}.service_id")
        if service_id in self._jwt_services:
            raise SeedError(f"{where}.service_id", f"duplicate authn-jwt service {service_id!r}")
        optional: dict[str, str | None] = {}
        for name in ("issuer", "audience", "token_app_property", "identity_path"):
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or not value or _has_control(value)):
                raise SeedError(f"{where}.{name}", "must be a non-empty string")
            optional[name] = value
        if optional["issuer"] is None:
            raise SeedError(f"{where}.issuer", f"required (the dev server's own issuer is {DEV_JWT_ISSUER})")
        identity_path = optional["identity_path"]
        if identity_path is not None:
            identity_path = identity_path.strip("/") or None
        keys = None if data.get("public_keys") is None else _public_keys(data["public_keys"], f"{where}.public_keys")
        enabled_hosts: frozenset[str] | None = None
        if data.get("enabled_hosts") is not None:
            hosts = data["enabled_hosts"]
            if not isinstance(hosts, list):
                raise SeedError(f"{where}.enabled_hosts", "must be a list of host ids")
            names: set[str] = set()
            for index, host in enumerate(hosts):
                name = host[len("host/") :] if isinstance(host, str) and host.startswith("host/") else host
                if not isinstance(name, str) or name not in self._hosts:
                    raise SeedError(f"{where}.enabled_hosts[{index}]", f"no host {host!r} in the seed")
                names.add(name)
            enabled_hosts = frozenset(names)
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise SeedError(f"{where}.enabled", "must be true or false")
        self._jwt_services[service_id] = JwtService(
            service_id,
            optional["issuer"],
            optional["audience"],
            optional["token_app_property"],
            identity_path,
            keys,
            enabled_hosts,
            enabled,
        )

    # -- ApiModel ------------------------------------------------------------------------------

    def rotate(self, object_id: str, value: str | None, now: float, change_window: float) -> dict[str, Any]:
        """Conjur has no change window: the new value is current as soon as it is written."""
        var_id = self._strip_full_id(object_id)
        with self._lock:
            variable = self._variables.get(var_id)
            if variable is None:
                raise KeyError(object_id)
            new_value = value.encode("utf-8") if value is not None else secrets.token_urlsafe(24).encode()
            version, changed = variable.write(new_value)
        return {"target": f"conjur:{var_id}", "version": version, "changed": changed}

    def tick(self, now: float) -> None:
        return None

    def revoke_tokens(self) -> int:
        with self._lock:
            revoked = self._issued
            self._signing_key = secrets.token_bytes(32)
            self._kid = secrets.token_hex(32)
            self._issued = 0
            return revoked

    def set_token_ttl(self, seconds: float) -> None:
        """Clamped to 5 h like Conjur; applies to tokens issued from now on."""
        with self._lock:
            self._token_ttl = min(max(float(seconds), 1.0), MAX_TOKEN_TTL)

    # -- roles and credentials -----------------------------------------------------------------

    def role_for_login(self, login: str) -> Role | None:
        """Login forms Conjur accepts: ``host/<id>``, ``user/<id>`` or a bare user id."""
        with self._lock:
            if login.startswith("host/"):
                return self._hosts.get(login[len("host/") :])
            if login.startswith("user/") and login[len("user/") :] in self._users:
                return self._users[login[len("user/") :]]
            return self._users.get(login)

    def find_role(self, kind: str, role_id: str) -> Role | None:
        with self._lock:
            return {"host": self._hosts, "user": self._users}.get(kind, {}).get(role_id)

    def check_api_key(self, role: Role, api_key: str) -> bool:
        with self._lock:
            return hmac.compare_digest(role.api_key.encode(), api_key.encode())

    def check_login(self, role: Role, secret: str) -> bool:
        """Users may log in with a password or their API key; hosts only with the API key."""
        with self._lock:
            if role.password is not None and hmac.compare_digest(role.password.encode(), secret.encode()):
                return True
            return hmac.compare_digest(role.api_key.encode(), secret.encode())

    def api_key_of(self, role: Role) -> str:
        with self._lock:
            return role.api_key

    def rotate_api_key(self, role: Role) -> str:
        """Tokens already issued stay valid, as in Conjur; only the old key stops working."""
        with self._lock:
            role.api_key = random_api_key()
            return role.api_key

    def may_rotate(self, caller: Role, target: Role) -> bool:
        return caller is target or caller.admin

    # -- access tokens -------------------------------------------------------------------------

    def issue_token(self, role: Role, now: float) -> dict[str, str]:
        with self._lock:
            issued_at = int(now)
            expires_at = issued_at + max(1, round(self._token_ttl))
            protected = b64url(_compact({"alg": TOKEN_ALG, "kid": self._kid}))
            payload = b64url(_compact({"sub": role.login, "iat": issued_at, "exp": expires_at}))
            signature = hmac.new(self._signing_key, f"{protected}.{payload}".encode(), hashlib.sha256).digest()
            self._issued += 1
        return {"protected": protected, "payload": payload, "signature": b64url(signature)}

    def verify_token(self, authorization: str | None, now: float) -> tuple[Role, TokenClaims]:
        """Checks an ``Authorization: Token token="..."`` header the way conjur-rack does."""
        found = _TOKEN_HEADER.match(authorization or "")
        if found is None:
            raise TokenRejected(401, AUTHORIZATION_MISSING, "no token")
        token = _json_object(lenient_b64decode(found.group(1)))
        if token is None:
            raise TokenRejected(401, MALFORMED_TOKEN, "malformed token")
        protected, payload, signature = (token.get(k) for k in ("protected", "payload", "signature"))
        if not (isinstance(protected, str) and isinstance(payload, str) and isinstance(signature, str)):
            raise TokenRejected(401, INVALID_TOKEN, "not a slosilo v2 token")
        with self._lock:
            key, kid = self._signing_key, self._kid
        header = _json_object(_b64url_decode(protected))
        if header is None or header.get("alg") != TOKEN_ALG or header.get("kid") != kid:
            raise TokenRejected(401, INVALID_TOKEN, "unknown signing key")
        expected = hmac.new(key, f"{protected}.{payload}".encode(), hashlib.sha256).digest()
        given = _b64url_decode(signature)
        if given is None or not hmac.compare_digest(expected, given):
            raise TokenRejected(401, INVALID_TOKEN, "bad signature")
        claims = _json_object(_b64url_decode(payload))
        if claims is None:
            raise TokenRejected(401, INVALID_TOKEN, "bad payload")
        if set(claims) - TOKEN_CLAIMS:
            raise TokenRejected(401, UNRECOGNIZED_CLAIMS, "unrecognized claims")
        subject, issued_at, expires_at = claims.get("sub"), claims.get("iat"), claims.get("exp")
        if not isinstance(subject, str) or not _is_number(issued_at):
            raise TokenRejected(401, INVALID_TOKEN, "bad claims")
        if not _is_number(expires_at):
            expires_at = issued_at + DEFAULT_TOKEN_TTL
        if now >= expires_at:
            raise TokenRejected(401, INVALID_TOKEN, "expired token")
        role = self.role_for_login(subject)
        if role is None:
            raise TokenRejected(403, "", "role no longer exists")
        return role, TokenClaims(subject, int(issued_at), int(expires_at))

    # -- variables -----------------------------------------------------------------------------

    def privileges(self, role: Role, var_id: str) -> frozenset[str] | None:
        """None when the variable does not exist; an empty set when it is invisible to ``role``."""
        with self._lock:
            if var_id not in self._variables:
                return None
            if role.admin:
                return frozenset(PRIVILEGES)
            return self._permissions.get(var_id, {}).get(role.key, frozenset())

    def read(self, var_id: str, version: int | None) -> tuple[bytes | None, str | None]:
        """(value or None when empty / version gone, mime type annotation)."""
        with self._lock:
            variable = self._variables.get(var_id)
            if variable is None:
                return None, None
            return variable.value(version), variable.mime_type

    def read_many(self, role: Role, var_ids: list[str]) -> dict[str, tuple[frozenset[str], bytes | None]]:
        """Privileges and current value of each existing variable, in one consistent snapshot."""
        with self._lock:
            result: dict[str, tuple[frozenset[str], bytes | None]] = {}
            for var_id in var_ids:
                variable = self._variables.get(var_id)
                if variable is None:
                    continue
                privileges = self.privileges(role, var_id) or frozenset()
                result[var_id] = (privileges, variable.current())
            return result

    def write(self, var_id: str, value: bytes) -> tuple[int, bool]:
        with self._lock:
            return self._variables[var_id].write(value)

    def versions(self, var_id: str) -> list[int]:
        with self._lock:
            variable = self._variables.get(var_id)
            return [number for number, _ in variable.versions] if variable else []

    def _strip_full_id(self, object_id: str) -> str:
        prefix = f"{self.account}:variable:"
        return object_id[len(prefix) :] if object_id.startswith(prefix) else object_id

    # -- resources -----------------------------------------------------------------------------

    def _full(self, kind: str, identifier: str) -> str:
        return f"{self.account}:{kind}:{identifier}"

    def _resource_json(self, kind: str, identifier: str) -> dict[str, Any]:
        root = self._full("policy", "root")
        permissions: list[dict[str, str]] = []
        annotations: list[dict[str, str]] = []
        result: dict[str, Any] = {
            "created_at": iso_time(self.created_at),
            "id": self._full(kind, identifier),
            "owner": root if kind != "policy" else self._full("user", "admin"),
            "permissions": permissions,
            "annotations": annotations,
        }
        if kind != "policy":
            result["policy"] = root
        if kind == "variable":
            variable = self._variables[identifier]
            for role_key, granted in sorted(self._permissions.get(identifier, {}).items()):
                role_kind, _, role_id = role_key.partition(":")
                permissions.extend(
                    {"privilege": p, "role": self._full(role_kind, role_id), "policy": root}
                    for p in PRIVILEGES
                    if p in granted
                )
            annotations.extend(
                {"name": name, "value": value, "policy": root} for name, value in sorted(variable.annotations.items())
            )
            result["secrets"] = [{"version": number, "expires_at": None} for number, _ in variable.versions]
        elif kind == "webservice":
            service = self._jwt_services[identifier.split("/", 2)[2]]
            permissions.extend(
                {"privilege": "authenticate", "role": self._full("host", host_id), "policy": root}
                for host_id in sorted(self._hosts)
                if service.permits(self._hosts[host_id])
            )
        elif kind == "policy":
            result["policy_versions"] = []
        return result

    def _visible(self, role: Role) -> list[tuple[str, str]]:
        """(kind, identifier) of every resource ``role`` has some privilege on."""
        found: list[tuple[str, str]] = []
        for var_id in self._variables:
            if role.admin or self._permissions.get(var_id, {}).get(role.key):
                found.append(("variable", var_id))
        for service in self._jwt_services.values():
            if role.admin or service.permits(role):
                found.append(("webservice", f"conjur/authn-jwt/{service.service_id}"))
        if role.admin:
            found.extend(("host", host_id) for host_id in self._hosts)
            found.extend(("user", user_id) for user_id in self._users)
            found.append(("policy", "root"))
        return found

    def resources(self, role: Role, kind: str | None, search: str | None) -> list[dict[str, Any]]:
        """Resources visible to ``role`` sorted by id; ``search`` matches every word in the id or an
        annotation value (a stand-in for Conjur's full-text search)."""
        words = re.sub(r"[./-]", " ", search or "").lower().split()
        with self._lock:
            selected = []
            for res_kind, identifier in self._visible(role):
                if kind is not None and res_kind != kind:
                    continue
                if words:
                    haystack = identifier.lower()
                    if res_kind == "variable":
                        haystack += " " + " ".join(self._variables[identifier].annotations.values()).lower()
                    if not all(word in haystack for word in words):
                        continue
                selected.append(self._resource_json(res_kind, identifier))
        selected.sort(key=lambda r: str(r["id"]))
        return selected

    def resource(self, role: Role, kind: str, identifier: str) -> dict[str, Any] | None:
        with self._lock:
            if (kind, identifier) not in self._visible(role):
                return None
            return self._resource_json(kind, identifier)

    def has_privilege(self, role: Role, kind: str, identifier: str, privilege: str) -> bool:
        with self._lock:
            if kind == "variable":
                return privilege in (self.privileges(role, identifier) or ())
            if kind == "webservice" and identifier.startswith("conjur/authn-jwt/"):
                service = self._jwt_services.get(identifier[len("conjur/authn-jwt/") :])
                return service is not None and privilege in ("read", "authenticate") and service.permits(role)
            return role.admin

    # -- authenticators ------------------------------------------------------------------------

    def authenticators(self) -> dict[str, list[str]]:
        with self._lock:
            configured = [f"authn-jwt/{s}" for s in sorted(self._jwt_services)]
            enabled = [f"authn-jwt/{s}" for s in sorted(self._jwt_services) if self._jwt_services[s].enabled]
        return {
            "installed": ["authn", "authn-jwt"],
            "configured": ["authn", *configured],
            "enabled": ["authn", *enabled],
        }

    def authenticate_jwt(self, service_id: str, account: str, token: str, url_id: str | None, now: float) -> Role:
        """Verifies an authn-jwt request and returns the role it authenticates.

        Order follows Conjur: the service must exist and be enabled, the JWT must verify (signature,
        then exp/nbf, iss, aud), the identity must resolve to an existing host, and only then is the
        host's right to use this service checked (403).
        """
        with self._lock:
            service = self._jwt_services.get(service_id)
        if service is None or not service.enabled or account != self.account:
            raise JwtRejected(401, "authenticator not configured or not enabled")
        parts = token.split(".") if _JWT_SHAPE.fullmatch(token) else []
        if len(parts) != 3:
            raise JwtRejected(401, "not a JWT")
        header = _json_object(_b64url_decode(parts[0]))
        claims = _json_object(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
        if header is None or claims is None or signature is None:
            raise JwtRejected(401, "undecodable JWT")
        algorithm = _JWT_HASHES.get(str(header.get("alg")))
        if algorithm is None:
            raise JwtRejected(401, "unsupported JWT algorithm")
        kid = header.get("kid")
        keys = service.public_keys if service.public_keys is not None else [self._dev_jwt_public()]
        candidates = [k for key_id, k in keys if kid is None or key_id is None or key_id == kid]
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not any(_rsa_verifies(k, signature, signing_input, algorithm()) for k in candidates):
            raise JwtRejected(401, "JWT signature does not verify")
        expires_at = claims.get("exp")
        if not _is_number(expires_at):
            raise JwtRejected(401, "JWT has no exp claim")
        if now >= expires_at:
            raise JwtRejected(401, "JWT expired", expired=True)
        not_before = claims.get("nbf")
        if _is_number(not_before) and now < not_before:
            raise JwtRejected(401, "JWT not yet valid")
        if service.issuer is not None and claims.get("iss") != service.issuer:
            raise JwtRejected(401, "JWT issuer mismatch")
        if service.audience is not None:
            audience = claims.get("aud")
            listed = audience if isinstance(audience, list) else [audience]
            if service.audience not in listed:
                raise JwtRejected(401, "JWT audience mismatch")
        login = self._jwt_identity(service, claims, url_id)
        role = self.role_for_login(login)
        if role is None:
            raise JwtRejected(401, "no such role", identity=login)
        if not service.permits(role):
            raise JwtRejected(403, "role may not use this authenticator", identity=login)
        return role

    @staticmethod
    def _jwt_identity(service: JwtService, claims: dict[str, Any], url_id: str | None) -> str:
        if url_id is not None:
            if service.token_app_property is not None:
                raise JwtRejected(401, "identity given both in the URL and by token_app_property")
            return url_id
        if service.token_app_property is None:
            raise JwtRejected(401, "no identity: neither in the URL nor token_app_property")
        value: Any = claims
        for part in service.token_app_property.split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str) or not value or _has_control(value):
            raise JwtRejected(401, "token_app_property claim missing or empty")
        return f"host/{service.identity_path}/{value}" if service.identity_path else f"host/{value}"

    # -- the dev server's own JWT issuer -------------------------------------------------------

    def _dev_jwt_key(self) -> tuple[rsa.RSAPrivateKey, str]:
        """Loads ``state_dir/jwt-key.pem`` or creates it, so a restarted server keeps its issuer key."""
        with self._lock:
            if self._jwt_key is not None:
                return self._jwt_key
            path = self.state_dir / JWT_KEY_FILE
            key: rsa.RSAPrivateKey | None = None
            if path.exists():
                try:
                    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
                    key = loaded if isinstance(loaded, rsa.RSAPrivateKey) else None
                except (OSError, ValueError, TypeError):
                    key = None
                if key is None:
                    log.warning("%s is not an RSA private key; generating a new one", path)
            if key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                self.state_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
            self._jwt_key = (key, _jwk_thumbprint(key.public_key()))
            return self._jwt_key

    def _dev_jwt_public(self) -> tuple[str | None, rsa.RSAPublicKey]:
        key, kid = self._dev_jwt_key()
        return kid, key.public_key()

    def mint_jwt(self, claims: dict[str, Any], ttl: float, now: float) -> str:
        """An RS256 JWT from the dev issuer: ``iss``, ``iat`` and ``exp = iat + ttl`` are filled in
        unless ``claims`` sets them; a claim set to None is left out (to test a missing ``exp``)."""
        key, kid = self._dev_jwt_key()
        payload: dict[str, Any] = {"iss": DEV_JWT_ISSUER, "iat": int(now), "exp": int(now + ttl)}
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        signing_input = f"{_b64url_nopad(_compact(header))}.{_b64url_nopad(_compact(payload))}"
        signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url_nopad(signature)}"


# -- seed helpers ------------------------------------------------------------------------------


def _mapping(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SeedError(where, "must be a mapping")
    return data


def _list(data: Any, where: str) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise SeedError(where, "must be a list")
    return data


def _known(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise SeedError(where, f"unknown field(s) {sorted(map(str, unknown))}; allowed: {sorted(allowed)}")


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SeedError(where, "must be a non-empty string")
    if _has_control(value):
        raise SeedError(where, "must not contain control characters")
    return value


def _secret_bytes(value: Any, where: str) -> bytes:
    # Never quote the value in an error: it is a secret.
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise SeedError(where, "must be a string, bytes (!!binary) or an integer; quote it")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise SeedError(where, "must be a string, bytes (!!binary) or an integer")
    if not value:
        raise SeedError(where, "must not be empty (Conjur refuses empty values)")
    return value


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")


def _jwk_thumbprint(key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint, the usual ``kid`` of an RSA JWK."""
    numbers = key.public_numbers()
    canonical = {
        "e": _b64url_nopad(_int_bytes(numbers.e)),
        "kty": "RSA",
        "n": _b64url_nopad(_int_bytes(numbers.n)),
    }
    return _b64url_nopad(hashlib.sha256(_compact(canonical)).digest())


def _rsa_verifies(key: rsa.RSAPublicKey, signature: bytes, message: bytes, algorithm: hashes.HashAlgorithm) -> bool:
    try:
        key.verify(signature, message, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError):
        return False
    return True


def _public_keys(data: Any, where: str) -> list[tuple[str | None, rsa.RSAPublicKey]]:
    """PEM text (one or more keys), a JWKS mapping or its JSON text, or a list of PEMs / JWKs."""
    if isinstance(data, str) and data.lstrip().startswith("{"):
        try:
            data = json.loads(data)
        except ValueError:
            raise SeedError(where, "looks like JSON but does not parse") from None
    items: list[Any]
    if isinstance(data, dict):
        listed = data.get("keys")
        items = listed if isinstance(listed, list) else [data]
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    keys: list[tuple[str | None, rsa.RSAPublicKey]] = []
    for index, item in enumerate(items):
        spot = f"{where}[{index}]" if len(items) > 1 else where
        if isinstance(item, str):
            blocks = re.findall(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", item, re.DOTALL)
            if not blocks:
                raise SeedError(spot, "not a PEM public key")
            for block in blocks:
                try:
                    loaded = serialization.load_pem_public_key(block.encode("ascii"))
                except (ValueError, UnicodeEncodeError):
                    raise SeedError(spot, "not a PEM public key") from None
                if not isinstance(loaded, rsa.RSAPublicKey):
                    raise SeedError(spot, "only RSA keys are supported (RS256/384/512)")
                keys.append((None, loaded))
        elif isinstance(item, dict):
            if item.get("kty") != "RSA":
                continue
            modulus, exponent = _b64url_decode(str(item.get("n", ""))), _b64url_decode(str(item.get("e", "")))
            if not modulus or not exponent:
                raise SeedError(spot, "RSA JWK needs base64url 'n' and 'e'")
            try:
                public = rsa.RSAPublicNumbers(
                    int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")
                ).public_key()
            except ValueError:
                raise SeedError(spot, "RSA JWK does not describe a valid key") from None
            kid = item.get("kid")
            keys.append((kid if isinstance(kid, str) else None, public))
        else:
            raise SeedError(spot, "must be PEM text or a JWK mapping")
    if not keys:
        raise SeedError(where, "contains no RSA public key")
    return keys
