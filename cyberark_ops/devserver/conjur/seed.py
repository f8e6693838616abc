"""Loading a ``conjur:`` seed section into Conjur's records; every error names the field's path."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .. import seedcheck as check
from ..errors import SeedError
from .issuer import DEV_JWT_ISSUER
from .jwt import public_keys
from .records import (
    DEFAULT_ACCOUNT,
    PRIVILEGES,
    AzureService,
    GcpService,
    IamService,
    JwtService,
    Role,
    Variable,
    random_api_key,
)

_ACCOUNT = re.compile(r"[^ :/%]+")


@dataclass
class ConjurSeed:
    """What a seed section declares, validated."""

    account: str = DEFAULT_ACCOUNT
    users: dict[str, Role] = field(default_factory=dict)
    hosts: dict[str, Role] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    permissions: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)
    """variable id -> role key (``host:airflow/worker``) -> privileges."""
    jwt_services: dict[str, JwtService] = field(default_factory=dict)
    iam_services: dict[str, IamService] = field(default_factory=dict)
    azure_services: dict[str, AzureService] = field(default_factory=dict)
    gcp_service: GcpService | None = None

    @classmethod
    def parse(cls, data: Any, where: str) -> ConjurSeed:
        """Validates a ``conjur:`` seed section; every error names the offending field's path."""
        if data is None:
            data = {}
        mapping = check.mapping(
            data,
            where,
            {"account", "users", "hosts", "variables", "permits", "authn_jwt", "authn_iam", "authn_azure", "authn_gcp"},
        )
        account = mapping.get("account", DEFAULT_ACCOUNT)
        if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
            raise SeedError(f"{where}.account", "must be a non-empty string without spaces, ':', '/' or '%'")
        seed = cls(account)
        check.each(mapping, "users", where, partial(seed._add_role, "user"))
        check.each(mapping, "hosts", where, partial(seed._add_role, "host"))
        check.each(mapping, "variables", where, seed._add_variable)
        check.each(mapping, "permits", where, seed._add_permit)
        check.each(mapping, "authn_jwt", where, seed._add_jwt_service)
        check.each(mapping, "authn_iam", where, seed._add_iam_service)
        check.each(mapping, "authn_azure", where, seed._add_azure_service)
        if mapping.get("authn_gcp") is not None:
            seed._add_gcp_service(mapping["authn_gcp"], f"{where}.authn_gcp")
        return seed

    def _add_role(self, kind: str, item: Any, where: str) -> None:
        allowed = {"id", "api_key", "password", "admin"} if kind == "user" else {"id", "api_key", "annotations"}
        data = check.mapping(item, where, allowed)
        role_id = check.identifier(data.get("id"), f"{where}.id")
        if kind == "host" and role_id.startswith("host/"):
            role_id = role_id[len("host/") :]
        table = self.users if kind == "user" else self.hosts
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
        admin = check.flag(data, "admin", where, default=role_id == "admin")
        table[role_id] = Role(kind, role_id, api_key, password, admin, _annotations(data, where))

    def _add_variable(self, item: Any, where: str) -> None:
        data = check.mapping(item, where, {"id", "value", "values", "value_base64", "mime_type", "annotations"})
        var_id = check.identifier(data.get("id"), f"{where}.id")
        if var_id in self.variables:
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
        annotations = _annotations(data, where)
        mime_type = data.get("mime_type")
        if mime_type is not None:
            if not isinstance(mime_type, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime_type):
                raise SeedError(f"{where}.mime_type", "must be a media type such as application/json")
            annotations["conjur/mime_type"] = mime_type
        variable = Variable(var_id, annotations=annotations)
        for value in values:
            variable.write(value)
        self.variables[var_id] = variable

    def _add_permit(self, item: Any, where: str) -> None:
        data = check.mapping(item, where, {"role", "privileges", "resources"})
        role_spec = data.get("role")
        kind, sep, role_id = role_spec.partition(":") if isinstance(role_spec, str) else ("", "", "")
        table = {"user": self.users, "host": self.hosts}.get(kind)
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
                matched = [v for v in self.variables if v.startswith(prefix)]
            else:
                matched = [pattern] if pattern in self.variables else []
            if not matched:
                raise SeedError(f"{where}.resources[{index}]", f"no variable matches {pattern!r}")
            for var_id in matched:
                grants = self.permissions.setdefault(var_id, {})
                grants[key] = grants.get(key, frozenset()) | granted

    def _add_jwt_service(self, item: Any, where: str) -> None:
        data = check.mapping(
            item,
            where,
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
        )
        service_id = check.identifier(data.get("service_id"), f"{where}.service_id")
        if service_id in self.jwt_services:
            raise SeedError(f"{where}.service_id", f"duplicate authn-jwt service {service_id!r}")
        optional: dict[str, str | None] = {}
        for name in ("issuer", "audience", "token_app_property", "identity_path"):
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or not value or check.has_control(value)):
                raise SeedError(f"{where}.{name}", "must be a non-empty string")
            optional[name] = value
        if optional["issuer"] is None:
            raise SeedError(f"{where}.issuer", f"required (the dev server's own issuer is {DEV_JWT_ISSUER})")
        identity_path = optional["identity_path"]
        if identity_path is not None:
            identity_path = identity_path.strip("/") or None
        keys = None if data.get("public_keys") is None else public_keys(data["public_keys"], f"{where}.public_keys")
        enabled_hosts = self._enabled_hosts(data, where)
        enabled = check.flag(data, "enabled", where, default=True)
        self.jwt_services[service_id] = JwtService(
            service_id,
            optional["issuer"],
            optional["audience"],
            optional["token_app_property"],
            identity_path,
            keys,
            enabled_hosts=enabled_hosts,
            enabled=enabled,
        )

    def _enabled_hosts(self, data: dict[str, Any], where: str) -> frozenset[str] | None:
        if data.get("enabled_hosts") is None:
            return None
        hosts = data["enabled_hosts"]
        if not isinstance(hosts, list):
            raise SeedError(f"{where}.enabled_hosts", "must be a list of host ids")
        names: set[str] = set()
        for index, host in enumerate(hosts):
            name = host[len("host/") :] if isinstance(host, str) and host.startswith("host/") else host
            if not isinstance(name, str) or name not in self.hosts:
                raise SeedError(f"{where}.enabled_hosts[{index}]", f"no host {host!r} in the seed")
            names.add(name)
        return frozenset(names)

    def _add_iam_service(self, item: Any, where: str) -> None:
        data = check.mapping(item, where, {"service_id", "enabled_hosts", "enabled", "optional_signed_headers"})
        service_id = check.identifier(data.get("service_id"), f"{where}.service_id")
        if service_id in self.iam_services:
            raise SeedError(f"{where}.service_id", f"duplicate authn-iam service {service_id!r}")
        optional = data.get("optional_signed_headers") or []
        if not isinstance(optional, list) or any(
            not isinstance(name, str) or not re.fullmatch(r"[a-z0-9-]+", name) for name in optional
        ):
            raise SeedError(f"{where}.optional_signed_headers", "must be a list of lower-case header names")
        self.iam_services[service_id] = IamService(
            service_id,
            frozenset(optional),
            enabled_hosts=self._enabled_hosts(data, where),
            enabled=check.flag(data, "enabled", where, default=True),
        )

    def _add_azure_service(self, item: Any, where: str) -> None:
        data = check.mapping(item, where, {"service_id", "provider_uri", "enabled_hosts", "enabled"})
        service_id = check.identifier(data.get("service_id"), f"{where}.service_id")
        if service_id in self.azure_services:
            raise SeedError(f"{where}.service_id", f"duplicate authn-azure service {service_id!r}")
        provider_uri = data.get("provider_uri")
        if (
            not isinstance(provider_uri, str)
            or not provider_uri.startswith("https://")
            or check.has_control(provider_uri)
        ):
            raise SeedError(
                f"{where}.provider_uri", "required: the issuer of the tokens, https://sts.windows.net/<tenant id>/"
            )
        self.azure_services[service_id] = AzureService(
            service_id,
            provider_uri if provider_uri.endswith("/") else provider_uri + "/",
            enabled_hosts=self._enabled_hosts(data, where),
            enabled=check.flag(data, "enabled", where, default=True),
        )

    def _add_gcp_service(self, item: Any, where: str) -> None:
        data = check.mapping(item, where, {"enabled_hosts", "enabled"})
        self.gcp_service = GcpService(
            enabled_hosts=self._enabled_hosts(data, where), enabled=check.flag(data, "enabled", where, default=True)
        )


def _annotations(data: dict[str, Any], where: str) -> dict[str, str]:
    raw = data.get("annotations") or {}
    if not isinstance(raw, dict):
        raise SeedError(f"{where}.annotations", "must map names to strings")
    annotations: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise SeedError(f"{where}.annotations", "names and values must be strings")
        annotations[name] = value
    return annotations


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
