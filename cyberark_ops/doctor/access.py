"""The access checks: can the identity read the paths the DAGs use, and does it see more than them.
Every value read is only handed to the report's scrubber; listing what the identity sees is the
API table's (DoctorChecks), so an API without a listing call is skipped, not guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..client import (
    AuthenticationFailed,
    BaseClient,
    ConfigurationError,
    CredentialRef,
    CyberArkError,
    Forbidden,
    NotFound,
)
from ..client.untrusted import printable, shown
from ..settings import ConnectionSettings
from .report import FAIL, PASS, PATH_CHARS, SKIP, WARN, Check, _error_text, _Secrets

SHOWN_NAMES = 10
DOCTOR_REASON = "cyberark-ops doctor"


def _path_remedy(settings: ConnectionSettings, exc: CyberArkError) -> str:
    entry = settings.spec.doctor
    if isinstance(exc, Forbidden) and entry.forbidden_path_remedy:
        return entry.forbidden_path_remedy
    return entry.path_remedy


def check_paths(
    client: BaseClient[Any, Any],
    settings: ConnectionSettings,
    paths: Sequence[str],
    secrets: _Secrets,
) -> tuple[list[Check], list[CredentialRef]]:
    checks: list[Check] = []
    readable: list[CredentialRef] = []
    if not paths:
        return [Check("readable paths", SKIP, "no --path given", "Give the paths your DAGs use with --path")], []
    for path in paths:
        # --path is whatever was typed (or pasted): echoed cut and escaped, never raw.
        name = f"read {printable(path, PATH_CHARS)}"
        try:
            ref = settings.resolve(path, source="this connection")
        except ConfigurationError as exc:
            checks.append(Check(name, FAIL, f"{shown(path)} is not a valid reference: {exc}", "Fix the reference"))
            continue
        try:
            credential = client.get(ref, reason=DOCTOR_REASON)
        except (NotFound, Forbidden, AuthenticationFailed) as exc:
            detail = f"cannot read {shown(path)}: {_error_text(exc)}"
            checks.append(Check(name, FAIL, detail, _path_remedy(settings, exc)))
            continue
        except CyberArkError as exc:
            checks.append(Check(name, FAIL, f"cannot read {shown(path)}: {_error_text(exc)}", "See the detail"))
            continue
        secrets.add(credential.secret)
        del credential
        readable.append(ref)
        checks.append(Check(name, PASS, f"{ref} is readable (value not shown)"))
    return checks, readable


def _listed(names: Iterable[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:SHOWN_NAMES])
    return shown + (f" and {len(ordered) - SHOWN_NAMES} more" if len(ordered) > SHOWN_NAMES else "")


def check_least_privilege(
    client: BaseClient[Any, Any], settings: ConnectionSettings, checked: Sequence[CredentialRef]
) -> Check:
    name = "least privilege"
    narrow = "Scope the identity to the paths it uses: Airflow's service account should see nothing else"
    lister = settings.spec.doctor.lister()
    if lister is None:
        return Check(name, SKIP, f"cannot list: {settings.spec.label} has no listing call; not checked")
    try:
        visible, used, what = lister(client, checked)
    except CyberArkError as exc:
        return Check(name, SKIP, f"cannot list what the identity sees: {_error_text(exc)}")
    folded = {item.casefold() for item in used}
    beyond = {item for item in visible if item.casefold() not in folded}
    if not beyond:
        return Check(name, PASS, f"the identity sees {len(visible)} {what}, all of them checked above")
    detail = (
        f"the identity sees {len(beyond)} {what} beyond the {len(used)} checked "
        f"({len(visible)} in all): {_listed(beyond)}"
    )
    return Check(name, WARN, detail, narrow)
