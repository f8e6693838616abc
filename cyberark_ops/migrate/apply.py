"""Apply a plan: load the policy and the values (Conjur), or add the accounts (PVWA / Privilege
Cloud; with ``overwrite``, change the value of one that differs), as the migration identity; read
each back through the secrets backend's own code path, and only then (with ``remove``) take it out
of Airflow. ``verify_only`` writes nothing to the vault: it reads back what a bulk-onboarding file
(bulk.py) loaded.

The order per secret is write -> read back equal -> record in the state file -> remove from
Airflow, so at every moment (a vault outage, a 403, Ctrl-C) each secret is in at least one place.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..client import AmbiguousQuery, CyberArkError, Forbidden, NotFound
from ..client.base import BaseClient
from ..client.conjur import ConjurClient
from ..client.pvwa import PVWAClient
from ..secrets import CyberArkSecretsBackend
from .plan import PVWA_APIS, Entry, Plan
from .report import Report, Row
from .sources import Held, connection_view, env_name, read_airflow, remove_from_db
from .state import REMOVED, VERIFIED, State

Progress = Callable[[str], None]
BACKEND_CLASS = "cyberark_ops.secrets.CyberArkSecretsBackend"


class MigrationError(Exception):
    """The run could not start or had to stop as a whole (names what, never a value)."""


def migration_client(conn_id: str, api: str = "conjur") -> BaseClient[Any, Any]:
    """The migration's own identity, from an Airflow ``cyberark`` connection (not the runtime one),
    reaching the API the plan writes to (Conjur, or PVWA / Privilege Cloud)."""
    from airflow.models.connection import Connection

    from ..settings import ConnectionSettings

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except Exception as exc:  # noqa: BLE001 - Airflow's not-found error moved between versions
        raise MigrationError(f"--vault-conn-id {conn_id!r}: {type(exc).__name__}") from None
    try:
        client = ConnectionSettings.from_connection(conn, conn_id).build_client()
    except CyberArkError as exc:
        raise MigrationError(f"--vault-conn-id {conn_id!r}: {exc}") from None
    wanted = PVWAClient if api in PVWA_APIS else ConjurClient
    if not isinstance(client, wanted):
        client.close()
        target = "PVWA / Privilege Cloud" if api in PVWA_APIS else "Conjur"
        raise MigrationError(f"--vault-conn-id {conn_id!r} does not reach {target}; the plan writes to {target}")
    return client


def verifying_backend(plan: Plan) -> CyberArkSecretsBackend:
    """The backend as Airflow will run it, with no cache (each read is a real one) and no fall-through."""
    kwargs = {**plan.backend_kwargs, "cache_ttl_seconds": 0, "negative_cache_ttl_seconds": 0}
    kwargs["fall_through_on_error"] = False
    return CyberArkSecretsBackend(**kwargs)


def read_back(backend: CyberArkSecretsBackend, entry: Entry) -> str | None:
    if entry.kind == "connection":
        value: str | None = backend.get_conn_value(entry.id)
    else:
        value = backend.get_variable(entry.id)
    return value


def backend_settings_lines(plan: Plan) -> list[str]:
    quoted = shlex.quote(json.dumps(plan.backend_kwargs))
    return [
        "Switch the secrets backend on (scheduler, API server, dag-processor and workers):",
        f"  export AIRFLOW__SECRETS__BACKEND={BACKEND_CLASS}",
        f"  export AIRFLOW__SECRETS__BACKEND_KWARGS={quoted}",
        f"  export AIRFLOW__WORKERS__SECRETS_BACKEND={BACKEND_CLASS}",
        f"  export AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS={quoted}",
    ]


def apply_plan(
    plan: Plan,
    plan_path: Path,
    client: BaseClient[Any, Any] | None,
    *,
    execute: bool,
    overwrite: bool = False,
    remove: bool = False,
    verify_only: bool = False,
    vault_conn_id: str | None = None,
    progress: Progress = lambda _line: None,
    held: list[Held] | None = None,
    report: Report | None = None,
) -> Report:
    """Runs the plan; without ``execute`` writes and removes nothing (reads only, and a dry-run
    policy load). ``verify_only`` writes nothing to the vault (``client`` may be None) and reads
    each value back. ``report`` is filled as it goes, so an interrupted run still has its rows."""
    report = report if report is not None else Report(dry_run=not execute)
    report.policy = "not loaded"
    state = State.next_to(plan_path)
    current = {h.key: h for h in (held if held is not None else read_airflow())}
    if verify_only:
        report.policy = "not used (verify only)"
    elif isinstance(client, PVWAClient) and plan.api in PVWA_APIS:
        report.policy = "not used (PVWA accounts)"
    elif isinstance(client, ConjurClient) and plan.api == "conjur":
        if plan.entries:
            try:
                client.load_policy(plan.policy_branch, plan.policy, dry_run=not execute)
            except CyberArkError as exc:
                raise MigrationError(f"the policy load into {plan.policy_branch!r} failed: {exc}") from None
        report.policy = "checked (dry run)" if not execute else "loaded"
        progress(f"policy {report.policy}: {len(plan.entries)} variables, group {plan.airflow_group!r}")
    else:
        raise MigrationError(f"the migration identity does not reach {plan.api}, which the plan writes to")
    backend = verifying_backend(plan)
    verified: list[tuple[Entry, Row, str]] = []
    for entry in plan.entries:
        row = Row(entry.kind, entry.id, entry.source, entry.path, "-", False, "no")
        report.rows.append(row)
        if entry.key == f"connection:{vault_conn_id}":
            row.note = "the migration's own connection; left in Airflow"
            continue
        if state.get(entry.key) == REMOVED:
            row.verified, row.removed, row.note = True, "earlier run", "done in an earlier run"
            continue
        item = current.get(entry.key)
        stripped = item is not None and entry.on_remove == "strip" and not item.secret_fields
        stripped = stripped and entry.secret_fields != ("whole connection",)
        if item is None or item.source != entry.source or stripped:
            # Removed after it was recorded as verified, then interrupted before "removed" was.
            if state.get(entry.key) == VERIFIED:
                row.verified, row.removed, row.note = True, "earlier run", "verified, then removed, in an earlier run"
                state.record(entry.key, REMOVED)
            else:
                row.note, row.failed = "no longer in Airflow as planned (plan again)", True
            continue
        value = item.value
        if not value.strip():
            row.note, row.failed = "empty or blank value: the vault stores none; left in Airflow", True
            continue
        if verify_only:
            outcome = ("-", "")
        elif isinstance(client, PVWAClient):
            written, why, row.note = _add_account(client, backend, entry, value, execute=execute, overwrite=overwrite)
            outcome = (written, why)
        else:
            assert isinstance(client, ConjurClient)
            outcome = _write(client, entry, value, execute=execute, overwrite=overwrite)
        row.written = outcome[0]
        if outcome[1]:
            row.note, row.failed = outcome[1], True
            progress(f"{entry.key}: {row.note}")
            continue
        if not execute and not verify_only:
            continue
        try:
            served = read_back(backend, entry)
        except Exception as exc:  # noqa: BLE001 - the backend's messages name the path, never a value
            row.note, row.failed = f"not verified: {exc}", True
            progress(f"{entry.key}: not verified")
            continue
        if served is None:
            row.note, row.failed = "not verified: the backend finds nothing at this path; left in Airflow", True
            progress(f"{entry.key}: not found by the backend")
            continue
        if served.encode("utf-8") != value.encode("utf-8"):
            row.note, row.failed = "not verified: the backend read back a different value; left in Airflow", True
            progress(f"{entry.key}: read back differs")
            continue
        if item.view is not None:
            try:
                served_view = connection_view(backend.get_connection(entry.id))
            except Exception as exc:  # noqa: BLE001 - as above
                served_view = (type(exc).__name__,)
            if served_view != item.view:
                row.note = "not verified: Airflow reads the served connection differently; left in Airflow"
                row.failed = True
                progress(f"{entry.key}: read back differs as a connection")
                continue
        row.verified = True
        state.record(entry.key, VERIFIED)
        progress(f"{entry.key}: verified at {entry.path}")
        verified.append((entry, row, value))
    if remove and execute:
        for entry, row, value in verified:
            if entry.on_remove == "env":
                row.note = f"set in the environment: remove {env_name(entry.kind, entry.id)} from the deployment"
                continue
            row.removed = remove_from_db(entry.kind, entry.id, value, mode=entry.on_remove)
            if "kept" in row.removed:
                row.failed = True
                continue
            state.record(entry.key, REMOVED)
            progress(f"{entry.key}: removed from Airflow ({row.removed})")
    for left in plan.left:
        report.rows.append(
            Row(left.kind, left.id, left.source, None, "-", False, "no", f"left by the plan: {left.reason}")
        )
    if execute:
        report.next_steps = backend_settings_lines(plan)
    return report


def _write(client: ConjurClient, entry: Entry, value: str, *, execute: bool, overwrite: bool) -> tuple[str, str]:
    """(what was written, why it failed or ""). A value already there and equal is not written again."""
    wanted = value.encode("utf-8")
    try:
        existing: bytes | None = client.get_secret_bytes(entry.variable_id)
    except NotFound:
        existing = None
    except Forbidden as exc:
        return "no", f"left in Airflow: {exc}"
    except CyberArkError as exc:
        return "no", f"left in Airflow: the vault could not be read ({exc})"
    if existing == wanted:
        return "already equal", ""
    if existing is not None and not overwrite:
        return "no", "the vault holds a different value at this path; left in Airflow (rerun with --overwrite)"
    if not execute:
        return "would write", ""
    try:
        client.set_secret(entry.variable_id, wanted)
    except CyberArkError as exc:
        return "no", f"left in Airflow: {exc}"
    return "written", ""


def _add_account(
    client: PVWAClient,
    backend: CyberArkSecretsBackend,
    entry: Entry,
    value: str,
    *,
    execute: bool,
    overwrite: bool,
) -> tuple[str, str, str]:
    """(what was written, why it failed or "", a note for a row that did not fail).

    An account already there is compared as the migration identity retrieves it (else as the
    backend serves it). A different value is left, as for Conjur, unless ``overwrite``: then it is
    replaced in the Vault only ("Change credentials in the Vault", ``Password/Update``, which needs
    "Update password value" on the safe) and read back byte for byte like an added account. The
    Vault trims leading and trailing white space from that call's value, so such a value is left
    rather than stored altered. Neither the add nor the update is retried blindly: without an
    answer (or with a 5xx) the Vault is asked what it now holds, so nothing is added twice and
    nothing is counted written that is not there.
    """
    account = entry.account or {}
    safe, name = account.get("safe", ""), account.get("name", "")
    exists = _exists(client, safe, name)
    if isinstance(exists, str):
        return "no", exists, ""
    if exists is not None:
        account_id = str(exists.get("id", ""))
        return _existing(client, backend, entry, value, account_id, execute=execute, overwrite=overwrite)
    if not execute:
        return "would write", "", ""
    try:
        client.add_account(
            safe=safe,
            platform_id=account.get("platformId", ""),
            secret=value,
            name=name,
            address=account.get("address") or None,
            user_name=account.get("userName") or None,
            automatic_management=False,
            manual_management_reason=MANUAL_REASON,
        )
    except CyberArkError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            return "no", f"left in Airflow: {exc}", ""
        # No answer, or a server error: the add may have reached the Vault. Search, never add twice.
        after = _exists(client, safe, name)
        if isinstance(after, dict):
            return "written", "", ""
        why = after if isinstance(after, str) else "a search after it finds no account"
        return "no", f"left in Airflow: the add did not answer ({type(exc).__name__}) and {why}; rerun", ""
    return "written", "", ""


def _existing(
    client: PVWAClient,
    backend: CyberArkSecretsBackend,
    entry: Entry,
    value: str,
    account_id: str,
    *,
    execute: bool,
    overwrite: bool,
) -> tuple[str, str, str]:
    """``_add_account``'s answer when the account is already there: only its value can differ, and
    only ``overwrite`` may change it."""
    account = entry.account or {}
    where = f"account {account.get('name', '')!r} of safe {account.get('safe', '')!r}"
    held = _held_value(client, backend, entry, account_id)
    if isinstance(held, tuple):
        return "no", held[0], ""
    if held == value:
        return "already equal", "", ""
    if not overwrite:
        return "no", f"the vault holds a different value in {where}; left in Airflow (rerun with --overwrite)", ""
    if value != value.strip():
        trims = "it starts or ends with white space, which the Vault trims from a changed value"
        return "no", f"the vault holds a different value in {where}; left in Airflow ({trims}; change it in PVWA)", ""
    if not execute:
        return "would write", "", f"would overwrite the different value in {where}"
    done = f"overwrote the different value in {where}"
    try:
        client.update_password(account_id, value)
    except CyberArkError as exc:
        if exc.status is not None and 400 <= exc.status < 500:  # 403: no "Update password value"
            return "no", f"left in Airflow: the vault refused to change {where} ({exc})", ""
        # No answer, or a server error: the change may have reached the Vault. Read, never resend.
        after = _held_value(client, backend, entry, account_id)
        if after == value:
            return "written", "", done
        why = after[0].removeprefix("left in Airflow: ") if isinstance(after, tuple) else "it still holds another value"
        return "no", f"left in Airflow: changing {where} did not answer ({type(exc).__name__}) and {why}; rerun", ""
    return "written", "", done


MANUAL_REASON = "holds an Airflow connection or variable migrated by cyberark-ops; not a password to change"


def _exists(client: PVWAClient, safe: str, name: str) -> dict[str, Any] | str | None:
    """The account as the backend's lookup finds it, None when there is none, or why that is unknown."""
    try:
        return client.find_account(safe, name)
    except NotFound:
        return None
    except AmbiguousQuery as exc:
        return f"left in Airflow: {exc}"
    except Forbidden as exc:
        return f"left in Airflow: {exc}"
    except CyberArkError as exc:
        return f"left in Airflow: the vault could not be searched ({exc})"


def _held_value(client: PVWAClient, backend: CyberArkSecretsBackend, entry: Entry, account_id: str) -> str | tuple[str]:
    """What an existing account holds, as the migration identity retrieves it, else as the backend
    serves it (an identity without Retrieve); a 1-tuple says why it cannot be read."""
    try:
        return client.retrieve_password(account_id, reason=COMPARE_REASON)
    except Forbidden:
        pass
    except CyberArkError as exc:
        return (f"left in Airflow: the existing account could not be read ({exc})",)
    try:
        served = read_back(backend, entry)
    except Exception as exc:  # noqa: BLE001 - the backend's messages name the path, never a value
        return (f"left in Airflow: the account exists but the backend cannot read it ({exc})",)
    return "" if served is None else served


COMPARE_REASON = "cyberark-ops migrate: compare before adding"


def run_apply(plan_path: Path, vault_conn_id: str | None, **options: Any) -> Report:
    plan = Plan.read(plan_path)
    if options.get("verify_only"):
        return apply_plan(plan, plan_path, None, vault_conn_id=vault_conn_id, **options)
    if not vault_conn_id:
        raise MigrationError("--vault-conn-id: required to write (or use --verify-only / --bulk-file)")
    client = migration_client(vault_conn_id, plan.api)
    try:
        return apply_plan(plan, plan_path, client, vault_conn_id=vault_conn_id, **options)
    finally:
        client.close()


__all__ = ["MigrationError", "apply_plan", "backend_settings_lines", "migration_client", "run_apply"]
