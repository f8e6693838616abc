"""The order the checks run in, and what is skipped when a prerequisite fails: the top of the
package, the one module that knows every check area.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from ..client import ConfigurationError
from ..settings import ConnectionSettings, sensitive_extras
from .access import check_least_privilege, check_paths
from .auth import check_authentication, check_cloud_identity, check_token_ttl
from .report import FAIL, PASS, SKIP, Check, Report, _cleaned, _Secrets
from .server import check_clock, check_reachability
from .tls import _TLS_FIELDS, check_ca_bundle, check_client_certificate


def run(
    load: Callable[[], ConnectionSettings],
    *,
    source: str,
    paths: Sequence[str] = (),
    now: datetime | None = None,
) -> Report:
    """Runs every check that can run; a check whose prerequisite failed is reported as skipped."""
    report = Report(source=source)
    secrets = _Secrets()
    now = now or datetime.now(timezone.utc)
    needs_client = ("reachability", "authentication", "token TTL", "clock skew", "readable paths", "least privilege")
    try:
        settings = load()
    except ConfigurationError as exc:
        report.checks.append(Check("configuration", FAIL, str(exc), _config_remedy(exc)))
        report.checks.extend(Check(n, SKIP, "needs a valid configuration") for n in needs_client)
        return _cleaned(report, secrets)
    report.api = settings.api
    secrets.add(settings.secret)
    for secret in sensitive_extras():
        secrets.add(str(settings.extras.get(secret.name) or ""))
    tls = [check_ca_bundle(settings, now), check_client_certificate(settings, now)]
    try:
        client = settings.build_client(register_secret=secrets.add)
    except ConfigurationError as exc:
        tls_failed = any(check.status == FAIL for check in tls)
        if exc.field in _TLS_FIELDS and tls_failed:
            detail = f"the client cannot be built: {exc} (see the TLS checks)"
        else:
            detail = str(exc)
        report.checks.append(Check("configuration", FAIL, detail, _config_remedy(exc)))
        report.checks.extend(tls)
        report.checks.extend(Check(n, SKIP, "needs a client (the configuration failed)") for n in needs_client)
        return _cleaned(report, secrets)
    report.checks.append(
        Check("configuration", PASS, f"{settings.spec.label} at {settings.base_url}, auth {_auth_name(settings)}")
    )
    report.checks.extend(tls)
    try:
        reach = check_reachability(client, settings)
        report.checks.append(reach)
        if reach.status == FAIL:
            report.checks.extend(Check(n, SKIP, "the server is not reachable") for n in needs_client[1:])
            return _cleaned(report, secrets)
        cloud = check_cloud_identity(client, settings)
        if cloud is not None:
            report.checks.append(cloud)
        auth, facts = check_authentication(client, settings)
        report.checks.append(auth)
        report.checks.append(check_token_ttl(facts, settings))
        if auth.status == FAIL:
            report.checks.append(check_clock(client))
            report.checks.extend(Check(n, SKIP, "authentication failed") for n in needs_client[4:])
            return _cleaned(report, secrets)
        path_checks, readable = check_paths(client, settings, paths, secrets)
        report.checks.append(check_clock(client))
        report.checks.extend(path_checks)
        report.checks.append(check_least_privilege(client, settings, readable))
    finally:
        client.close()
    return _cleaned(report, secrets)


def _auth_name(settings: ConnectionSettings) -> str:
    method = settings.spec.auth_method(settings.extras.get("auth_method"))
    return method.name if method is not None else "?"


def _config_remedy(exc: ConfigurationError) -> str:
    where = f"the {exc.field!r} setting" if exc.field else "the connection"
    return f"Fix {where} as the detail says (see docs/hook.md for every field)"
