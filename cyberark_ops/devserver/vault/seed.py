"""Loading a ``vault:`` seed section into the Vault's records; every error names the field's path."""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .. import seedcheck as check
from ..errors import SeedError
from .records import (
    AUTH_TYPES,
    PERMISSIONS,
    Account,
    CcpApplication,
    Client,
    Network,
    Safe,
    SafeState,
    SecretVersion,
    User,
    ci_get,
    normalize_subject,
)

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


class DuplicateAccount(SeedError):
    """An account of that name already exists where the new one would go (PVWA answers 409)."""

    def __init__(self, where: str, name: str, safe: str) -> None:
        super().__init__(where, f"duplicate account {name!r} in safe {safe!r}")
        self.name = name
        self.safe = safe


@dataclass
class VaultSeed:
    """What a seed section declares, validated; keys are casefolded names (client ids as given)."""

    safes: dict[str, SafeState] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    apps: dict[str, CcpApplication] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    names_unique_per_safe: bool = False
    """A seed may repeat an account name in another folder of a safe; PVWA's add, which always adds
    to ``Root``, refuses a name taken in any folder."""

    @classmethod
    def parse(cls, data: Any, where: str) -> VaultSeed:
        """Validates a ``vault:`` seed section; every error names the offending field's path."""
        data = check.mapping(data, where, {"safes", "accounts", "ccp_applications", "pvwa_users", "platform_clients"})
        seed = cls()
        check.each(data, "safes", where, seed._seed_safe)
        check.each(data, "accounts", where, seed._seed_account)
        seed._check_dual_groups(f"{where}.accounts")
        check.each(data, "ccp_applications", where, seed._seed_application)
        check.each(data, "pvwa_users", where, seed._seed_user)
        check.each(data, "platform_clients", where, seed._seed_client)
        return seed

    def _seed_safe(self, item: Any, where: str) -> None:
        if isinstance(item, str):
            item = {"name": item}
        item = check.mapping(item, where, {"name", "id", "description"})
        name = check.string(item, "name", where)
        if "/" in name or len(name) > 28:
            raise SeedError(f"{where}.name", "must be at most 28 characters and contain no '/' (Vault rule)")
        if name.casefold() in self.safes:
            raise SeedError(f"{where}.name", f"duplicate safe {name!r}")
        used = {state.safe.id for state in self.safes.values()}
        safe_id = item.get("id")
        if safe_id is None:
            safe_id = max(used, default=1) + 1
        elif isinstance(safe_id, bool) or not isinstance(safe_id, int) or safe_id < 1:
            raise SeedError(f"{where}.id", "must be a positive integer")
        if safe_id in used:
            raise SeedError(f"{where}.id", f"duplicate safe id {safe_id}")
        description = check.string(item, "description", where, default="", allow_empty=True)
        self.safes[name.casefold()] = SafeState(Safe(name, safe_id, description))

    def _seed_account(self, item: Any, where: str) -> None:
        item = check.mapping(
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
                "exclusive",
                "one_time",
                "min_validity_period",
                "ticket_required",
            },
        )
        name = check.string(item, "name", where)
        if len(name) > 128:
            raise SeedError(f"{where}.name", "must be at most 128 characters")
        safe_name = check.string(item, "safe", where)
        safe_state = self.safes.get(safe_name.casefold())
        if safe_state is None:
            raise SeedError(f"{where}.safe", f"safe {safe_name!r} is not defined in safes")
        folder = check.string(item, "folder", where, default="Root")
        for other in self.accounts.values():
            if (
                other.safe == safe_state.safe.name
                and other.name.casefold() == name.casefold()
                and (self.names_unique_per_safe or other.folder.casefold() == folder.casefold())
            ):
                raise DuplicateAccount(f"{where}.name", name, safe_name)
        account_id = item.get("id")
        if account_id is None:
            while True:
                account_id = f"{safe_state.safe.id}_{safe_state.next_object}"
                safe_state.next_object += 1
                if account_id not in self.accounts:
                    break
        else:
            account_id = check.string(item, "id", where)
            if not _ID_RE.match(account_id):
                raise SeedError(f"{where}.id", "must be 1-64 characters of letters, digits, '_' or '-'")
            if account_id in self.accounts:
                raise SeedError(f"{where}.id", f"duplicate account id {account_id!r}")
        if "secret" not in item or not isinstance(item["secret"], str):
            raise SeedError(f"{where}.secret", "is required and must be a string")
        history = []
        for index, old in enumerate(check.items(item.get("previous_secrets"), f"{where}.previous_secrets")):
            if not isinstance(old, str):
                raise SeedError(f"{where}.previous_secrets[{index}]", "must be a string")
            history.append(old)
        properties = self._seed_properties(item.get("properties"), f"{where}.properties")
        platform_id = check.string(item, "platformId", where, default="UnixSSH")
        default_device = (
            "Database"
            if ci_get(properties, "Database") is not None
            or any(hint in platform_id.casefold() for hint in _DB_PLATFORM_HINTS)
            else "Operating System"
        )
        created = float(int(time.time()))
        versions = [
            SecretVersion(number, value, "Administrator", created)
            for number, value in enumerate([*history, item["secret"]], start=1)
        ]
        self.accounts[account_id] = Account(
            id=account_id,
            name=name,
            safe=safe_state.safe.name,
            folder=folder,
            user_name=check.string(item, "userName", where, default="", allow_empty=True),
            address=check.string(item, "address", where, default="", allow_empty=True),
            platform_id=platform_id,
            device_type=check.string(item, "deviceType", where, default=default_device),
            properties=properties,
            versions=versions,
            reason_required=check.flag(item, "reason_required", where),
            created_at=created,
            modified_at=created,
            exclusive=check.flag(item, "exclusive", where),
            one_time=check.flag(item, "one_time", where),
            min_validity=_seconds(item.get("min_validity_period", 0), f"{where}.min_validity_period"),
            ticket_required=check.flag(item, "ticket_required", where),
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
        status = ci_get(properties, "DualAccountStatus")
        virtual = ci_get(properties, "VirtualUsername")
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
        for account in self.accounts.values():
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
            if name != "*" and name.casefold() not in self.safes:
                raise SeedError(f"{where}[{index}]", f"safe {name!r} is not defined in safes")
        return frozenset(name.casefold() for name in names)

    def _seed_application(self, item: Any, where: str) -> None:
        item = check.mapping(
            item,
            where,
            {"app_id", "allowed_safes", "allowed_machines", "allowed_cert_subjects", "require_certificate", "disabled"},
        )
        app_id = check.string(item, "app_id", where)
        if any(c in app_id for c in "&%+;=") or len(app_id) > 128:
            raise SeedError(f"{where}.app_id", "must be at most 128 characters without & % + ; =")
        if app_id.casefold() in self.apps:
            raise SeedError(f"{where}.app_id", f"duplicate application {app_id!r}")
        safes = self._seed_safe_list(check.string_list(item, "allowed_safes", where), f"{where}.allowed_safes")
        machines: list[Network] = []
        for index, text in enumerate(check.string_list(item, "allowed_machines", where)):
            try:
                machines.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise SeedError(f"{where}.allowed_machines[{index}]", "must be an IP address or CIDR network") from None
        subjects = frozenset(normalize_subject(s) for s in check.string_list(item, "allowed_cert_subjects", where))
        self.apps[app_id.casefold()] = CcpApplication(
            app_id=app_id,
            allowed_safes=safes,
            allowed_machines=tuple(machines),
            allowed_cert_subjects=subjects,
            require_certificate=check.flag(item, "require_certificate", where),
            disabled=check.flag(item, "disabled", where),
        )

    def _seed_permissions(self, raw: Any, where: str) -> dict[str, frozenset[str]]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise SeedError(where, f"must map safe names (or '*') to a list of {'/'.join(PERMISSIONS)}")
        permissions: dict[str, frozenset[str]] = {}
        for safe, granted in raw.items():
            safe_name = str(safe)
            if safe_name != "*" and safe_name.casefold() not in self.safes:
                raise SeedError(f"{where}.{safe_name}", f"safe {safe_name!r} is not defined in safes")
            names = [granted] if isinstance(granted, str) else granted
            if not isinstance(names, list) or not all(g in PERMISSIONS for g in names):
                raise SeedError(f"{where}.{safe_name}", f"must be a list of {', '.join(PERMISSIONS)}")
            permissions[safe_name.casefold()] = frozenset(names)
        return permissions

    def _seed_user(self, item: Any, where: str) -> None:
        item = check.mapping(item, where, {"username", "password", "auth_type", "permissions", "locked"})
        username = check.string(item, "username", where)
        if username.casefold() in self.users:
            raise SeedError(f"{where}.username", f"duplicate user {username!r}")
        auth_type = check.string(item, "auth_type", where, default="CyberArk")
        canonical = {a.casefold(): a for a in AUTH_TYPES}.get(auth_type.casefold())
        if canonical is None:
            raise SeedError(f"{where}.auth_type", f"must be one of {', '.join(AUTH_TYPES)}")
        self.users[username.casefold()] = User(
            username=username,
            password=check.string(item, "password", where),
            auth_type=canonical,
            permissions=self._seed_permissions(item.get("permissions"), f"{where}.permissions"),
            locked=check.flag(item, "locked", where),
        )

    def _seed_client(self, item: Any, where: str) -> None:
        item = check.mapping(item, where, {"client_id", "client_secret", "permissions", "disabled"})
        client_id = check.string(item, "client_id", where)
        if client_id in self.clients:
            raise SeedError(f"{where}.client_id", f"duplicate client {client_id!r}")
        self.clients[client_id] = Client(
            client_id=client_id,
            client_secret=check.string(item, "client_secret", where),
            permissions=self._seed_permissions(item.get("permissions"), f"{where}.permissions"),
            disabled=check.flag(item, "disabled", where),
        )


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 366 * 86400:
        raise SeedError(where, "must be a number of seconds between 0 and a year")
    return float(value)
