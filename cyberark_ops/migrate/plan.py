"""The plan: for each secret Airflow holds, the vault path the backend will read, and either the
Conjur policy that declares those variables and lets the Airflow group read them, or (PVWA /
Privilege Cloud) the account to add where the backend's search finds it. It holds no value."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..client.errors import ConfigurationError
from ..client.refs import ConjurRef, PVWARef
from ..client.untrusted import parse_json, read_text_file, shown
from ..secrets import CyberArkSecretsBackend
from .sources import Held, matches

PLAN_VERSION = 1
PLAN_FILE_CAP = 64 << 20
"""Bytes of a plan or state file: ids, paths and a policy, never a value (100,000 entries fit)."""
MIGRATION_JSON_DEPTH = 16
"""Nesting a plan may have: its backend settings (``teams``) are the deepest, at six."""
KINDS = {"connection": "connections", "variable": "variables"}
PLACEHOLDER = {"connection": "conn_id", "variable": "variable"}
PVWA_APIS = ("pvwa", "privilege-cloud")
MAX_SAFE_NAME = 28
MAX_ACCOUNT_NAME = 128
MAX_ACCOUNT_FIELD = 128
# Characters Vault object names are documented to refuse (file-system style); refused here before any call.
ACCOUNT_NAME_REFUSED = frozenset('\\/:*?"<>|\t')
DEFAULT_ADDRESS = "airflow"


class PlanError(Exception):
    """A plan that cannot be made or read; names the field or file, never a value."""


@dataclass(frozen=True)
class Entry:
    kind: str
    id: str
    source: str
    path: str
    """What the backend's template gives for this id (as it looks it up)."""
    variable_id: str
    secret_fields: tuple[str, ...]
    on_remove: str
    """``strip`` / ``delete`` (metadata DB) or ``env`` (the deployment must drop it)."""
    account: dict[str, str] | None = None
    """PVWA / Privilege Cloud: ``safe``, ``name``, ``address``, ``userName``, ``platformId`` of the
    account to add (no secret); None for Conjur."""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class Left:
    kind: str
    id: str
    source: str
    reason: str


@dataclass
class Plan:
    api: str
    backend_kwargs: dict[str, Any]
    policy_branch: str
    policy: str
    airflow_group: str
    entries: list[Entry] = field(default_factory=list)
    left: list[Left] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": PLAN_VERSION,
                "api": self.api,
                "backend_kwargs": self.backend_kwargs,
                "policy_branch": self.policy_branch,
                "airflow_group": self.airflow_group,
                "policy": self.policy,
                "entries": [asdict(e) for e in self.entries],
                "left": [asdict(x) for x in self.left],
            },
            indent=2,
            ensure_ascii=False,
        )

    def write(self, path: Path) -> None:
        atomic_write(path, self.to_json() + "\n")

    @classmethod
    def read(cls, path: Path) -> Plan:
        data = read_json_file(path, "--plan", cap=PLAN_FILE_CAP, what="a migration plan", error=PlanError)
        if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
            raise PlanError(f"plan {str(path)!r}: not a version {PLAN_VERSION} migration plan")
        try:
            return cls(
                api=str(data["api"]),
                backend_kwargs=dict(data["backend_kwargs"]),
                policy_branch=str(data["policy_branch"]),
                policy=str(data["policy"]),
                airflow_group=str(data["airflow_group"]),
                entries=[_entry(e) for e in data["entries"]],
                left=[Left(**x) for x in data["left"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"plan {str(path)!r}: malformed ({type(exc).__name__}: {exc})") from None


def _entry(data: dict[str, Any]) -> Entry:
    account = data.get("account")
    if account is not None and not (
        isinstance(account, dict) and all(isinstance(v, str) for v in account.values()) and "safe" in account
    ):
        raise ValueError("an entry's account is not an object of strings")
    return Entry(**{**data, "secret_fields": tuple(data["secret_fields"])})


def atomic_write(path: Path, text: str) -> None:
    """Written whole or not at all: a crash or a full disk leaves the old file and no temporary.

    The temporary is created anew (``O_EXCL``, never through a symlink planted at its name), owner-
    readable only, and renamed over ``path`` once synced."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # a crashed run's leftover (or a planted link): never written through
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def read_json_file(path: Path, field: str, *, cap: int, what: str, error: type[Exception]) -> Any:
    """The JSON in the regular file at ``path``, or ``error`` naming ``field``, the path and why.

    A FIFO, a device, a directory, a file over ``cap`` or JSON nested past a few levels is refused at
    once (``client.untrusted``), never read into a hang, a ``MemoryError`` or a ``RecursionError``."""
    try:
        text = read_text_file(path, field, cap=cap, what=what)
    except ConfigurationError as exc:
        raise error(str(exc)) from None
    try:
        return parse_json(text, max_chars=cap, max_depth=MIGRATION_JSON_DEPTH)
    except ValueError as exc:
        raise error(f"{field}: {shown(str(path))} is not {what} (not JSON: {getattr(exc, 'msg', exc)})") from None


def planned_path(backend: CyberArkSecretsBackend, kind: str, item: str) -> tuple[str, str] | str:
    """``(path, variable id)`` exactly as the backend looks ``item`` up, or why it never would."""
    path, why = backend.path_for(KINDS[kind], item, **{PLACEHOLDER[kind]: item})
    if path is None:
        return why
    ref = backend.settings.resolve(path, source="the secrets backend")
    if not isinstance(ref, ConjurRef) or ref.version is not None:
        return "not a Conjur variable id"
    return path, ref.variable_id


def planned_account(backend: CyberArkSecretsBackend, kind: str, item: str) -> tuple[str, str, str] | str:
    """``(path, safe, account name)`` where the backend's lookup (a search for the name in the
    safe, exact name first) finds ``item``, or why no account added by a migration could be found."""
    path, why = backend.path_for(KINDS[kind], item, **{PLACEHOLDER[kind]: item})
    if path is None:
        return why
    ref = backend.settings.resolve(path, source="the secrets backend")
    if not isinstance(ref, PVWARef):
        return "not a PVWA account reference"
    if ref.account_id is not None or ref.safe is None or ref.name is None:
        return "the template names an account id, which the Vault assigns; use <safe>/<account name>"
    if len(ref.safe) > MAX_SAFE_NAME:
        return f"safe name {len(ref.safe)} characters long; the Vault allows {MAX_SAFE_NAME}"
    if len(ref.name) > MAX_ACCOUNT_NAME:
        return f"account name {len(ref.name)} characters long; the Vault allows {MAX_ACCOUNT_NAME}"
    refused = sorted({c for c in ref.name + ref.safe if c in ACCOUNT_NAME_REFUSED})
    if refused:
        return f"the safe or account name holds {' '.join(refused)!r}, which Vault object names may not"
    return path, ref.safe, ref.name


def _account_field(value: object, fallback: str) -> str:
    """Address and user name only label a migrated account (its secret holds the whole value):
    what the Vault could refuse or trim is replaced by ``fallback``."""
    if isinstance(value, str) and value and value == value.strip() and value.isprintable():
        return value if len(value) <= MAX_ACCOUNT_FIELD else fallback[:MAX_ACCOUNT_FIELD]
    return fallback[:MAX_ACCOUNT_FIELD]


def _account(item: Held, safe: str, name: str, platform_id: str) -> dict[str, str]:
    host = login = None
    if item.view is not None:
        host, login = item.view[1], item.view[2]
    return {
        "safe": safe,
        "name": name,
        "address": _account_field(host, DEFAULT_ADDRESS),
        "userName": _account_field(login, name),
        "platformId": platform_id,
    }


def yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar that reads back as ``text`` whatever it holds: only printable
    ASCII is written as is (YAML folds line breaks such as U+2028 and refuses some characters)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def conjur_policy(variable_ids: Sequence[str], group: str, members: Iterable[str] = ()) -> str:
    """Declares the variables and one group with read + execute on them (no update: the runtime
    identity reads only), loaded into ``root`` with POST (adds, never deletes)."""
    lines = [
        "# cyberark-ops migrate: the variables the secrets backend reads, readable by the Airflow group",
        f"- !group {yaml_quoted(group)}",
    ]
    lines += [f"- !variable {yaml_quoted(v)}" for v in variable_ids]
    if variable_ids:
        lines += [
            "- !permit",
            f"  role: !group {yaml_quoted(group)}",
            "  privileges: [read, execute]",
            "  resources:",
        ]
        lines += [f"  - !variable {yaml_quoted(v)}" for v in variable_ids]
    for member in members:
        kind, slash, member_id = member.partition("/")
        if not slash or kind not in ("host", "layer", "user", "group"):
            raise PlanError(f"--grant-to {member!r}: expected host/<id>, layer/<id>, user/<id> or group/<id>")
        lines += [
            "- !grant",
            f"  role: !group {yaml_quoted(group)}",
            f"  member: !{kind} {yaml_quoted(member_id)}",
        ]
    return "\n".join(lines) + "\n"


def make_plan(
    held: Iterable[Held],
    backend_kwargs: Mapping[str, Any],
    *,
    airflow_group: str,
    grant_to: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    on_remove: str = "strip",
    platform_id: str | None = None,
) -> Plan:
    if on_remove not in ("strip", "delete"):
        raise PlanError("--on-remove: strip (keep the connection's non-secret parts) or delete")
    kwargs = dict(backend_kwargs)
    try:
        backend = CyberArkSecretsBackend(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the backend's own message names the setting
        raise PlanError(f"--backend-kwargs: {exc}") from None
    api = backend.settings.api
    if api not in ("conjur", *PVWA_APIS):
        raise PlanError(f"--backend-kwargs: api {api!r}; migrate writes into Conjur, PVWA or Privilege Cloud")
    pvwa = api in PVWA_APIS
    if pvwa:
        if not isinstance(platform_id, str) or not platform_id.strip() or platform_id != platform_id.strip():
            raise PlanError(f"--platform-id: required for api {api!r} (the platform of the accounts to add)")
        if len(platform_id) > MAX_ACCOUNT_FIELD or not platform_id.isprintable():
            raise PlanError("--platform-id: not a platform id (printable, at most 128 characters)")
        if grant_to:
            raise PlanError("--grant-to: Conjur only; in PVWA give the Airflow user List + Retrieve on the safe")
    plan = Plan(
        api=api,
        backend_kwargs=kwargs,
        policy_branch="" if pvwa else "root",
        policy="",
        airflow_group="" if pvwa else airflow_group,
    )
    for item in held:

        def leave(reason: str, item: Held = item) -> None:
            plan.left.append(Left(item.kind, item.id, item.source, reason))

        if item.source == "env-invalid":
            leave("its AIRFLOW_CONN_ value does not parse as a connection")
            continue
        if item.source == "db-invalid":
            leave("Airflow cannot read its Extra (JSON nested past Python's recursion limit)")
            continue
        if matches(exclude, item.kind, item.id):
            leave("excluded by --exclude")
            continue
        if item.kind == "connection" and item.conn_type == "cyberark":
            leave("a cyberark connection: the way to CyberArk itself stays where it is")
            continue
        chosen = matches(include, item.kind, item.id)
        if not item.secret_fields and not chosen:
            leave("holds no secret (no password, no sensitive extra or name)")
            continue
        fields = item.secret_fields or ("value" if item.kind == "variable" else "whole connection",)
        removal = "env" if item.source == "env" else ("delete" if item.kind == "variable" else on_remove)
        if pvwa:
            assert platform_id is not None
            if item.kind == "connection" and backend.connection_format not in ("auto", "json"):
                leave(
                    f"connection_format {backend.connection_format!r}: a migrated account holds the connection "
                    "as JSON, which the backend reads with connection_format auto or json"
                )
                continue
            found_account = planned_account(backend, item.kind, item.id)
            if isinstance(found_account, str):
                leave(found_account)
                continue
            path, safe, name = found_account
            account = _account(item, safe, name, platform_id)
            plan.entries.append(
                Entry(item.kind, item.id, item.source, path, f"{safe}/{name}", tuple(fields), removal, account)
            )
            continue
        found = planned_path(backend, item.kind, item.id)
        if isinstance(found, str):
            leave(found)
            continue
        path, variable_id = found
        plan.entries.append(Entry(item.kind, item.id, item.source, path, variable_id, tuple(fields), removal))
    taken: dict[str, str] = {}
    for entry in plan.entries:
        # The Vault compares safe and account names case-insensitively.
        slot = entry.variable_id.casefold() if pvwa else entry.variable_id
        if slot in taken:
            raise PlanError(f"{entry.key} and {taken[slot]} map to the same path {entry.path!r}")
        taken[slot] = entry.key
    if not pvwa:
        plan.policy = conjur_policy([e.variable_id for e in plan.entries], airflow_group, grant_to)
    return plan


__all__ = [
    "PVWA_APIS",
    "Entry",
    "Left",
    "Plan",
    "PlanError",
    "atomic_write",
    "conjur_policy",
    "make_plan",
    "planned_account",
    "planned_path",
]
