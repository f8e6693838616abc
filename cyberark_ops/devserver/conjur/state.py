"""Conjur state for the dev server: roles, variables and their versions, permits, access tokens and
authn-jwt services (the records are in ``records.py``, seed loading in ``seed.py``, JWT
verification in ``jwt.py`` and the dev issuer in ``issuer.py``).

Everything a request can observe lives here behind one lock, so handlers stay thin and a rotation
from the admin API can never interleave with half of a batch read. Access tokens are signed with a
random per-model HMAC key instead of slosilo's RSA: clients treat the signature as opaque, HMAC is
cheap enough that the dev server never becomes the bottleneck of a benchmark, and replacing the key
revokes every token at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from ..audit import printable
from ..cloud.state import GOOGLE_ISSUER, CloudModel
from ..encoding import b64url_decode, compact_json, is_number, json_object
from . import cloud_tokens, iam, policy
from .errors import (
    AUTHORIZATION_MISSING,
    INVALID_TOKEN,
    MALFORMED_TOKEN,
    UNRECOGNIZED_CLAIMS,
    authn_rejected,
    jwt_rejected,
    token_rejected,
)
from .issuer import DevIssuer
from .jwt import jwt_identity, verify_jwt
from .records import (
    PRIVILEGES,
    AuthenticatorService,
    AzureService,
    GcpService,
    IamService,
    JwtService,
    Role,
    TokenClaims,
    Variable,
    random_api_key,
)
from .ruby import b64url, iso_time, lenient_b64decode
from .seed import ConjurSeed

DEFAULT_TOKEN_TTL = 480.0
MAX_TOKEN_TTL = 5 * 3600.0
TOKEN_ALG = "conjur.org/slosilo/v2"  # noqa: S105 - an algorithm name
TOKEN_CLAIMS = frozenset({"iat", "exp", "cidr", "sub", "iss", "aud", "jti"})

_TOKEN_HEADER = re.compile(r'Token token="(.*)"')


class ConjurModel:
    def __init__(self, seed: ConjurSeed, *, state_dir: Path) -> None:
        self.account = seed.account
        self.state_dir = state_dir
        self.created_at = time.time()
        self._lock = threading.RLock()
        self._users: dict[str, Role] = seed.users
        self._hosts: dict[str, Role] = seed.hosts
        self._variables: dict[str, Variable] = seed.variables
        self._permissions: dict[str, dict[str, frozenset[str]]] = seed.permissions
        """variable id -> role key (``host:airflow/worker``) -> privileges."""
        self._jwt_services: dict[str, JwtService] = seed.jwt_services
        self._iam_services: dict[str, IamService] = seed.iam_services
        self._azure_services: dict[str, AzureService] = seed.azure_services
        self._gcp_service: GcpService | None = seed.gcp_service
        self._groups: set[str] = set()
        """Role keys of groups and layers created by policy loads (``group:airflow/readers``)."""
        self._members: dict[str, set[str]] = {}
        """Group role key -> member role keys."""
        self._policies: dict[str, int] = {"root": 0}
        """Policy id -> its version (how many loads it has had)."""
        self._token_ttl = DEFAULT_TOKEN_TTL
        self._signing_key = secrets.token_bytes(32)
        self._kid = secrets.token_hex(32)
        self._issued = 0
        self.issuer = DevIssuer(state_dir)

    @classmethod
    def from_seed(cls, data: Any, where: str, *, state_dir: Path) -> ConjurModel:
        """Validates a ``conjur:`` seed section (see ``seed.py``) and builds the state it describes."""
        return cls(ConjurSeed.parse(data, where), state_dir=state_dir)

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
            protected = b64url(compact_json({"alg": TOKEN_ALG, "kid": self._kid}))
            payload = b64url(compact_json({"sub": role.login, "iat": issued_at, "exp": expires_at}))
            signature = hmac.new(self._signing_key, f"{protected}.{payload}".encode(), hashlib.sha256).digest()
            self._issued += 1
        return {"protected": protected, "payload": payload, "signature": b64url(signature)}

    def verify_token(self, authorization: str | None, now: float) -> tuple[Role, TokenClaims]:
        """Checks an ``Authorization: Token token="..."`` header the way conjur-rack does."""
        found = _TOKEN_HEADER.match(authorization or "")
        if found is None:
            raise token_rejected(401, AUTHORIZATION_MISSING, "no token")
        token = json_object(lenient_b64decode(found.group(1)))
        if token is None:
            raise token_rejected(401, MALFORMED_TOKEN, "malformed token")
        protected, payload, signature = (token.get(k) for k in ("protected", "payload", "signature"))
        if not (isinstance(protected, str) and isinstance(payload, str) and isinstance(signature, str)):
            raise token_rejected(401, INVALID_TOKEN, "not a slosilo v2 token")
        with self._lock:
            key, kid = self._signing_key, self._kid
        header = json_object(b64url_decode(protected))
        if header is None or header.get("alg") != TOKEN_ALG or header.get("kid") != kid:
            raise token_rejected(401, INVALID_TOKEN, "unknown signing key")
        expected = hmac.new(key, f"{protected}.{payload}".encode(), hashlib.sha256).digest()
        given = b64url_decode(signature)
        if given is None or not hmac.compare_digest(expected, given):
            raise token_rejected(401, INVALID_TOKEN, "bad signature")
        claims = json_object(b64url_decode(payload))
        if claims is None:
            raise token_rejected(401, INVALID_TOKEN, "bad payload")
        if set(claims) - TOKEN_CLAIMS:
            raise token_rejected(401, UNRECOGNIZED_CLAIMS, "unrecognized claims")
        subject, issued_at, expires_at = claims.get("sub"), claims.get("iat"), claims.get("exp")
        if not isinstance(subject, str) or not is_number(issued_at):
            raise token_rejected(401, INVALID_TOKEN, "bad claims")
        if not is_number(expires_at):
            expires_at = issued_at + DEFAULT_TOKEN_TTL
        if now >= expires_at:
            raise token_rejected(401, INVALID_TOKEN, "expired token")
        role = self.role_for_login(subject)
        if role is None:
            raise token_rejected(403, "", "role no longer exists")
        return role, TokenClaims(subject, int(issued_at), int(expires_at))

    # -- variables -----------------------------------------------------------------------------

    def _role_keys(self, role: Role) -> set[str]:
        """``role`` and every group or layer it belongs to, directly or through another group."""
        keys = {role.key}
        grew = True
        while grew:
            grew = False
            for group, members in self._members.items():
                if group not in keys and members & keys:
                    keys.add(group)
                    grew = True
        return keys

    def _grantees(self, role: Role) -> set[str]:
        """The role keys whose grants ``role`` holds; computed once per request, not per variable
        (the group closure walks every group)."""
        return self._role_keys(role) if self._members else {role.key}

    def _granted(self, role: Role, var_id: str, grantees: set[str]) -> frozenset[str]:
        if role.admin:
            return frozenset(PRIVILEGES)
        grants = self._permissions.get(var_id, {})
        return frozenset().union(*(grants.get(key, frozenset()) for key in grantees))

    def privileges(self, role: Role, var_id: str) -> frozenset[str] | None:
        """None when the variable does not exist; an empty set when it is invisible to ``role``."""
        with self._lock:
            if var_id not in self._variables:
                return None
            return self._granted(role, var_id, self._grantees(role))

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
            grantees = self._grantees(role)
            result: dict[str, tuple[frozenset[str], bytes | None]] = {}
            for var_id in var_ids:
                variable = self._variables.get(var_id)
                if variable is None:
                    continue
                result[var_id] = (self._granted(role, var_id, grantees), variable.current())
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
        grantees = self._grantees(role)
        found = [("variable", var_id) for var_id in self._variables if self._granted(role, var_id, grantees)]
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
            services: list[tuple[str, AuthenticatorService]] = [
                *((f"authn-azure/{s}", self._azure_services[s]) for s in sorted(self._azure_services)),
                *([("authn-gcp", self._gcp_service)] if self._gcp_service is not None else []),
                *((f"authn-iam/{s}", self._iam_services[s]) for s in sorted(self._iam_services)),
                *((f"authn-jwt/{s}", self._jwt_services[s]) for s in sorted(self._jwt_services)),
            ]
            configured = [name for name, _ in services]
            enabled = [name for name, service in services if service.enabled]
        return {
            "installed": ["authn", "authn-azure", "authn-gcp", "authn-iam", "authn-jwt"],
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
            raise jwt_rejected(401, "authenticator not configured or not enabled")
        keys = service.public_keys if service.public_keys is not None else self.issuer.public_keys()
        claims = verify_jwt(token, keys, service, now)
        login = jwt_identity(service, claims, url_id)
        role = self.role_for_login(login)
        if role is None:
            raise jwt_rejected(401, "no such role", identity=login)
        if not service.permits(role):
            raise jwt_rejected(403, "role may not use this authenticator", identity=login)
        return role

    def authenticate_iam(
        self, service_id: str, account: str, login: str, body: bytes, *, sts: CloudModel | None, now: float
    ) -> Role:
        """Verifies an authn-iam request and returns the host it authenticates, in Conjur's order of
        checks: account, service enabled, role, permission on the webservice (403), then the signed
        headers, STS and the host id against the AWS identity (each 401)."""
        with self._lock:
            service = self._iam_services.get(service_id)
        role = self._permitted_role(f"authn-iam/{service_id}", service, account, login)
        assert service is not None
        iam.verify(sts, iam.signed_headers(body, service, role.login), role, now)
        return role

    def _permitted_role(
        self, authenticator: str, service: AuthenticatorService | None, account: str, login: str
    ) -> Role:
        """Conjur's checks before the authenticator's own: account, enabled, role, ``authenticate`` (403)."""
        if account != self.account:
            message = f"CONJ00008E Account '{printable(account)}' is not defined in Conjur"
            raise authn_rejected(401, message, identity=login)
        if service is None or not service.enabled:
            raise authn_rejected(401, f"CONJ00004E '{printable(authenticator)}' is not enabled", identity=login)
        role = self.role_for_login(login)
        if role is None:
            raise authn_rejected(401, f"CONJ00007E '{printable(login)}' not found", identity=login)
        if not service.permits(role):
            raise authn_rejected(
                403,
                f"CONJ00006E '{role.login}' does not have 'authenticate' privilege on {self.account}:webservice:"
                f"conjur/{authenticator}",
                identity=role.login,
            )
        return role

    def authenticate_azure(
        self,
        service_id: str,
        account: str,
        login: str,
        fields: dict[str, str],
        *,
        provider: CloudModel | None,
        now: float,
    ) -> Role:
        """An authn-azure request: Conjur's checks, then the token (signature, time, ``iss`` equal to the
        service's provider-uri), its ``xms_mirid`` / ``oid`` claims and the host's annotations."""
        with self._lock:
            service = self._azure_services.get(service_id)
        role = self._permitted_role(f"authn-azure/{service_id}", service, account, login)
        assert service is not None
        token = cloud_tokens.token_field(fields, role.login)
        claims = cloud_tokens.verified(token, provider, service.provider_uri, role.login, now)
        cloud_tokens.check_azure(role, service_id, claims)
        return role

    def authenticate_gcp(
        self, account: str, fields: dict[str, str], *, provider: CloudModel | None, now: float
    ) -> Role:
        """An authn-gcp request: the login comes from the token's ``aud`` (``conjur/<account>/<login>``),
        then Conjur's checks, the token (Google's issuer) and the host's annotations."""
        token = cloud_tokens.token_field(fields, None)
        login = cloud_tokens.gcp_login(cloud_tokens.unverified_claims(token), self.account)
        claims = cloud_tokens.verified(token, provider, GOOGLE_ISSUER, login, now)
        with self._lock:
            service = self._gcp_service
        role = self._permitted_role("authn-gcp", service, account, login)
        cloud_tokens.check_gcp(role, claims)
        return role

    def mint_jwt(self, claims: dict[str, Any], ttl: float, now: float) -> str:
        """A JWT from the dev issuer (see ``DevIssuer.mint``)."""
        return self.issuer.mint(claims, ttl, now)

    # -- policy loads --------------------------------------------------------------------------

    def load_policy(
        self, method: str, policy_id: str, text: bytes, *, caller: Role, dry_run: bool
    ) -> dict[str, Any] | None:
        """Loads a policy document as ``POST`` (create), ``PATCH`` (modify) or ``PUT`` (replace) does.

        None when the target policy is invisible to ``caller`` (404): only admin users load policies
        here. Raises ``policy.PolicyInvalid`` for what Conjur answers 422 ``policy_invalid``.
        """
        statements = policy.parse(text, policy_id)
        with self._lock:
            if not caller.admin or policy_id not in self._policies:
                return None
            deletions = [
                s
                for s in statements
                if isinstance(s, policy.Delete) or getattr(s, "deny", False) or getattr(s, "revoke", False)
            ]
            if deletions and method != "PATCH":
                raise policy.PolicyInvalid("policy_text may not contain deletion statements")
            declared = {s.ref.key for s in statements if isinstance(s, policy.Record)}
            for statement in statements:
                for ref in _references(statement):
                    if ref.key not in declared and not self._exists(ref):
                        raise policy.PolicyInvalid(
                            f"{ref.kind.capitalize()} '{ref.id}' not found in account '{self.account}'"
                        )
            if dry_run:
                return {"created_roles": {}, "version": self._policies[policy_id]}
            created: dict[str, dict[str, str]] = {}
            if method == "PUT":
                self._drop_undeclared(policy_id, declared)
            for statement in statements:
                self._apply(statement, created)
            self._policies[policy_id] += 1
            return {"created_roles": created, "version": self._policies[policy_id]}

    def _exists(self, ref: policy.Ref) -> bool:
        if ref.kind == "variable":
            return ref.id in self._variables
        if ref.kind in ("host", "user"):
            return ref.id in (self._hosts if ref.kind == "host" else self._users)
        if ref.kind == "policy":
            return ref.id in self._policies
        return ref.key in self._groups

    def _apply(self, statement: policy.Statement, created: dict[str, dict[str, str]]) -> None:
        if isinstance(statement, policy.Record):
            self._create(statement, created)
        elif isinstance(statement, policy.Permit):
            for resource in statement.resources:
                grants = self._permissions.setdefault(resource.id, {})
                current = grants.get(statement.role.key, frozenset())
                changed = current - set(statement.privileges) if statement.deny else current | set(statement.privileges)
                if changed:
                    grants[statement.role.key] = frozenset(changed)
                else:
                    grants.pop(statement.role.key, None)
        elif isinstance(statement, policy.Grant):
            members = self._members.setdefault(statement.role.key, set())
            for member in statement.members:
                (members.discard if statement.revoke else members.add)(member.key)
        else:
            self._delete(statement.record)

    def _create(self, record: policy.Record, created: dict[str, dict[str, str]]) -> None:
        ref = record.ref
        if ref.kind == "policy":
            self._policies.setdefault(ref.id, 0)
        elif ref.kind == "variable":
            variable = self._variables.setdefault(ref.id, Variable(ref.id))
            variable.annotations.update(record.annotations)
        elif ref.kind in ("group", "layer"):
            self._groups.add(ref.key)
        else:
            table = self._hosts if ref.kind == "host" else self._users
            role = table.get(ref.id)
            if role is None:
                role = table[ref.id] = Role(ref.kind, ref.id, random_api_key())
                created[f"{self.account}:{ref.kind}:{ref.id}"] = {
                    "id": f"{self.account}:{ref.kind}:{ref.id}",
                    "api_key": role.api_key,
                }
            role.annotations.update(record.annotations)

    def _delete(self, ref: policy.Ref) -> None:
        if ref.kind == "variable":
            self._variables.pop(ref.id, None)
            self._permissions.pop(ref.id, None)
            return
        if ref.kind == "policy":
            if ref.id != "root":
                self._policies.pop(ref.id, None)
            return
        if ref.kind in ("host", "user"):
            (self._hosts if ref.kind == "host" else self._users).pop(ref.id, None)
        self._groups.discard(ref.key)
        self._members.pop(ref.key, None)
        for members in self._members.values():
            members.discard(ref.key)
        for grants in self._permissions.values():
            grants.pop(ref.key, None)

    def _drop_undeclared(self, policy_id: str, declared: set[str]) -> None:
        """``PUT``: every record of the branch that the new text does not declare goes."""

        def in_branch(record_id: str) -> bool:
            return policy_id == "root" or record_id.startswith(policy_id + "/")

        existing = [
            *(policy.Ref("variable", v) for v in self._variables),
            *(policy.Ref("host", h) for h in self._hosts),
            *(policy.Ref(*key.split(":", 1)) for key in self._groups),
            *(policy.Ref("policy", p) for p in self._policies if p != policy_id),
        ]
        for ref in existing:
            if in_branch(ref.id) and ref.key not in declared:
                self._delete(ref)


def _references(statement: policy.Statement) -> list[policy.Ref]:
    if isinstance(statement, policy.Permit):
        return [statement.role, *statement.resources]
    if isinstance(statement, policy.Grant):
        return [statement.role, *statement.members]
    if isinstance(statement, policy.Delete):
        return [statement.record]
    return []
