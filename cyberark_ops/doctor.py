"""``cyberark-ops doctor``: what is wrong with a CyberArk connection, and how to fix it.

Every check goes through the same settings, builders and client layer a task uses, so a pass here
means a task's fetch gets as far. What depends on the API (its remedies, whether it needs a client
certificate, how to list what the identity sees) is the API table's ``DoctorChecks`` entry, so an
API or auth method registered from outside is checked like the built-in ones.

The report never holds a secret value: the credential for reaching CyberArk and every fetched
value are only ever compared, and each line of text is scrubbed of them (in every encoded form)
before it leaves this module, as a second line of defence.

Airflow is imported only to look up a connection id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import scrub
from .client import (
    AuthenticatedClient,
    AuthenticationFailed,
    BaseClient,
    ConfigurationError,
    CredentialRef,
    CyberArkError,
    Forbidden,
    NotFound,
)
from .client.base import TokenFacts
from .client.untrusted import PEM_FILE_CAP, printable, read_regular_file, shown
from .settings import ConnectionSettings, secret_extras

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)

EXPIRY_WARNING = timedelta(days=30)
"""A certificate expiring within this window is a warning: time to renew it."""
SKEW_WARN = 30.0
SKEW_FAIL = 300.0
"""Seconds of clock difference: JWTs and tokens with ``iat``/``exp`` start to misbehave at a few
minutes (Conjur's authn-jwt allows no leeway at all)."""
SHORT_TOKEN = 60.0
"""A token living less than this is renewed on almost every fetch."""
SHOWN_NAMES = 10
DOCTOR_REASON = "cyberark-ops doctor"

_TLS_FIELDS = {"ca_bundle", "client_cert", "client_key", "client_key_password", "verify"}


@dataclass(frozen=True)
class Check:
    """One line of the report. ``remedy`` says what to do when the status is not ``pass``."""

    name: str
    status: str
    detail: str
    remedy: str = ""


@dataclass
class Report:
    source: str
    api: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(check.status == FAIL for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "api": self.api,
            "ok": not self.failed,
            "summary": {status: sum(c.status == status for c in self.checks) for status in STATUSES},
            "checks": [asdict(check) for check in self.checks],
        }


class DoctorUsageError(Exception):
    """What the user asked for cannot be looked at (no such connection, malformed kwargs): exit 2."""


# -- where the settings come from -------------------------------------------------------------------


def settings_from_connection(conn_id: str) -> ConnectionSettings:
    """The connection as the hook reads it (any secrets backend Airflow has, env vars included)."""
    with _logs_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        from airflow.sdk import BaseHook

        from ._compat import announce_short_secrets, not_found_error, short_extras_unannounced

        try:
            with short_extras_unannounced():  # as the hook does: api="ccp" is no short secret
                conn = BaseHook.get_connection(conn_id)
        except not_found_error():
            raise DoctorUsageError(
                f"connection {conn_id!r} is not defined (checked Airflow's secrets backends)"
            ) from None
        settings = ConnectionSettings.from_connection(conn, conn_id)
        announce_short_secrets(conn.password, secret_extras(settings.extras))
    return settings


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """Points log handlers that write to stdout at stderr for a while: Airflow's own lines (its
    secrets masker warns on short extras) would otherwise land in the table or the --json document."""
    loggers = [
        logging.getLogger(),
        *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    moved: list[logging.StreamHandler[Any]] = []
    stdout = sys.stdout
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is stdout:
                handler.setStream(sys.stderr)
                moved.append(handler)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(stdout)


def settings_from_backend_kwargs(kwargs: Mapping[str, Any]) -> ConnectionSettings:
    """The settings the secrets backend would build; its own options (paths, patterns) are set aside."""
    # The backend module subclasses Airflow's BaseSecretsBackend: imported only for these kwargs.
    with _logs_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        from .secrets import BACKEND_OPTIONS

    return ConnectionSettings.from_backend_kwargs(kwargs, reserved=BACKEND_OPTIONS)


# -- the checks -------------------------------------------------------------------------------------


class _Secrets:
    """Everything that must not appear in the report: the credentials and every fetched value."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str | None) -> None:
        if value:
            self.values.append(value)

    def clean(self, text: str) -> str:
        """``text`` with every leak form of every value replaced, by the scrubbing module itself.

        Values under 3 characters are left alone (they would star out ordinary words); one that
        is not valid UTF-8 has no encoded forms, so only its raw text is replaced."""
        valid = [v for v in self.values if len(v) >= 3 and _is_utf8(v)]
        text = scrub.scrub(text, valid)
        for value in self.values:
            if len(value) >= 3 and not _is_utf8(value):
                text = text.replace(value, "***")
        return text


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error_text(exc: BaseException) -> str:
    """The error's message, with its HTTP status in front when the message does not say it."""
    status = getattr(exc, "status", None)
    text = str(exc)
    return f"HTTP {status}: {text}" if status and f"HTTP {status}" not in text else text


def _cert_summary(cert: Any) -> tuple[str, datetime]:
    return cert.subject.rfc4514_string() or "(empty subject)", cert.not_valid_after_utc


def _validity(what: str, subject: str, not_after: datetime, now: datetime, renew: str) -> Check | None:
    """A fail or warn for an expired or soon-expiring certificate; None when it is fine."""
    if not_after <= now:
        return Check(
            what,
            FAIL,
            f"{subject} expired on {not_after:%Y-%m-%d %H:%M} UTC",
            renew,
        )
    if not_after - now <= EXPIRY_WARNING:
        days = (not_after - now).days
        return Check(what, WARN, f"{subject} expires on {not_after:%Y-%m-%d} UTC (in {days} day(s))", renew)
    return None


def check_ca_bundle(settings: ConnectionSettings, now: datetime) -> Check:
    name = "tls: CA bundle"
    extras = settings.extras
    if settings.base_url.lower().startswith("http://"):
        return Check(
            name,
            WARN,
            f"{settings.base_url} is plain HTTP: credentials cross the network unencrypted",
            "Use an https:// URL; keep allow_insecure_http for a local dev server only",
        )
    if str(extras.get("verify", "")).strip().lower() in ("false", "0", "no", "off"):
        return Check(
            name,
            WARN,
            "TLS verification is off (verify=false): any server can impersonate CyberArk",
            "Remove verify=false and set ca_bundle to the CA that signed the server certificate",
        )
    path = extras.get("ca_bundle")
    if not path:
        return Check(name, PASS, "no ca_bundle: the system trust store is used")
    bundle = Path(str(path)).expanduser()
    if bundle.is_dir():
        return Check(name, PASS, f"{str(bundle)!r} is a hashed CA directory (not parsed here)")
    try:
        data = read_regular_file(bundle, "ca_bundle", cap=PEM_FILE_CAP)
    except ConfigurationError as exc:
        return Check(
            name,
            FAIL,
            exc.message,
            "Point ca_bundle at a readable PEM file of the CA(s) that signed the server certificate",
        )
    certs = _load_certificates(data)
    if not certs:
        return Check(
            name,
            FAIL,
            f"ca_bundle {str(bundle)!r} holds no PEM certificate",
            "Export the CA certificate as PEM (-----BEGIN CERTIFICATE-----) and point ca_bundle at it",
        )
    renew = "Replace the CA certificate in ca_bundle with the current one from your PKI team"
    where = f"{len(certs)} CA certificate(s) in {str(bundle)!r}"
    expired = [cert for cert in certs if cert.not_valid_after_utc <= now]
    unused = f"; {len(expired)} expired one(s) not in the server's chain" if expired else ""
    served = _served_chain(settings, bundle, certs)
    if isinstance(served, str) and "expired" in served and expired:
        # OpenSSL refused the server's chain for an expiry: an expired CA of the bundle is in it.
        subjects = ", ".join(_cert_summary(cert)[0] for cert in expired[:3])
        return Check(
            name, FAIL, f"the server's chain did not verify ({served}); expired in the bundle: {subjects}", renew
        )
    if isinstance(served, list):
        # The server's certificate verified against the bundle now: judge only the CA
        # certificates its chain goes through (a system bundle holds expired roots nobody uses).
        for cert in served:
            problem = _validity(name, *_cert_summary(cert), now, renew)
            if problem is not None:
                return problem
        anchors = ", ".join(_cert_summary(cert)[0] for cert in served) or "a CA certificate of the bundle"
        return Check(name, PASS, f"{where}; the server's certificate chains to {anchors}{unused}")
    # The server could not be asked, or did not verify for another reason (the reachability check
    # names it): judge the bundle as a whole. One expired root among valid ones is normal (system
    # bundles carry some); a bundle with nothing valid left, or soon nothing, is not.
    longest_valid = max(certs, key=lambda cert: cert.not_valid_after_utc)
    problem = _validity(name, *_cert_summary(longest_valid), now, renew)
    if problem is not None:
        return problem
    subjects = ", ".join(_cert_summary(cert)[0] for cert in certs[:3]) + (
        f" and {len(certs) - 3} more" if len(certs) > 3 else ""
    )
    note = f"; {len(expired)} expired (unused while a valid one matches)" if expired else ""
    return Check(name, PASS, f"{where}: {subjects}{note}")


def _load_certificates(data: bytes) -> list[Any]:
    """Every PEM certificate in ``data``. System bundles hold roots with non-positive serial
    numbers, for which cryptography warns on stderr at every parse: not the user's to fix."""
    import warnings

    from cryptography import x509
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            return list(x509.load_pem_x509_certificates(data))
        except ValueError:
            return []


def _served_chain(settings: ConnectionSettings, bundle: Path, certs: Sequence[Any]) -> list[Any] | str | None:
    """The bundle's certificates the server's chain goes through, after a TLS handshake that
    verified the server against the bundle; OpenSSL's reason when the server's certificate did not
    verify; None when the server could not be asked (unreachable, a proxy in between)."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    from cryptography import x509

    url = urlsplit(settings.base_url)
    if url.scheme != "https" or not url.hostname:
        return None
    from .client.config import TransportConfig
    from .client.tls import build_ssl_context

    try:
        timeout = float(settings.extras.get("connect_timeout") or 5.0)
        # The client's own context: every file read by the one bounded reader (a FIFO or /dev/zero
        # named as a certificate must not hang the doctor), the bundle as the transport uses it.
        context = build_ssl_context(TransportConfig(**{**settings.transport_kwargs(), "ca_bundle": str(bundle)}))
        with (
            socket.create_connection((url.hostname, url.port or 443), timeout=min(timeout, 10.0)) as sock,
            context.wrap_socket(sock, server_hostname=url.hostname) as tls,
        ):
            verified = getattr(tls, "get_verified_chain", None)  # Python 3.13+
            chain_der = list(verified()) if verified else [tls.getpeercert(binary_form=True)]
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message or "certificate verify failed")
    except (OSError, ValueError, ssl.SSLError, CyberArkError):
        return None
    try:
        chain = [x509.load_der_x509_certificate(bytes(der)) for der in chain_der if der]
    except (TypeError, ValueError):
        return None
    if not chain:
        return None
    if len(chain) > 1:  # OpenSSL's own chain: the bundle's part of it
        in_bundle = {cert.fingerprint(_sha256()) for cert in certs}
        return [cert for cert in chain if cert.fingerprint(_sha256()) in in_bundle]
    return _issuers_in(chain[0], certs)


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _issuers_in(leaf: Any, certs: Sequence[Any]) -> list[Any]:
    """The bundle's certificates from ``leaf`` up to a self-issued root, each verified to have
    signed the one below; among equal names the longest-valid first, as OpenSSL prefers."""
    chain: list[Any] = []
    current = leaf
    for _ in range(10):
        candidates = sorted(
            (c for c in certs if c.subject == current.issuer and c not in chain),
            key=lambda c: c.not_valid_after_utc,
            reverse=True,
        )
        issuer = next((c for c in candidates if _signed(current, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        if issuer.issuer == issuer.subject:
            break
        current = issuer
    return chain


def _signed(cert: Any, issuer: Any) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # noqa: BLE001 - InvalidSignature, unsupported key types and names alike
        return False
    return True


def check_client_certificate(settings: ConnectionSettings, now: datetime) -> Check:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    name = "tls: client certificate"
    extras = settings.extras
    cert_path = extras.get("client_cert")
    if not cert_path:
        if settings.spec.doctor.no_client_cert is not None:
            detail, remedy = settings.spec.doctor.no_client_cert
            return Check(name, WARN, detail, remedy)
        return Check(name, SKIP, "no client certificate configured (none needed for this API)")
    key_path = extras.get("client_key") or cert_path
    fix_pair = "Set client_cert and client_key to a matching PEM pair (passphrase in client_key_password)"
    try:
        cert_data = read_regular_file(str(cert_path), "client_cert", cap=PEM_FILE_CAP)
        key_data = read_regular_file(str(key_path), "client_key", cap=PEM_FILE_CAP)
    except ConfigurationError as exc:
        return Check(name, FAIL, exc.message, fix_pair)
    try:
        cert = x509.load_pem_x509_certificate(cert_data)
    except ValueError:
        return Check(name, FAIL, f"client_cert {str(cert_path)!r} is not a PEM certificate", fix_pair)
    password = extras.get("client_key_password")
    try:
        key = serialization.load_pem_private_key(key_data, password=str(password).encode() if password else None)
    except (ValueError, TypeError):
        # Neither the key bytes nor the passphrase go into the message.
        return Check(
            name,
            FAIL,
            f"client_key {str(key_path)!r} is not a PEM private key, or its passphrase is wrong or missing",
            fix_pair,
        )
    spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    subject, not_after = _cert_summary(cert)
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return Check(name, FAIL, f"client_key does not belong to the certificate {subject}", fix_pair)
    renew = "Renew the client certificate (and register the new one with the AppID / authenticator)"
    problem = _validity(name, subject, not_after, now, renew)
    if problem is not None:
        return problem
    return Check(name, PASS, f"{subject}, valid until {not_after:%Y-%m-%d} UTC; the key matches")


def check_reachability(client: BaseClient[Any, Any], settings: ConnectionSettings) -> Check:
    name = "reachability"
    try:
        return Check(name, PASS, client.check_connection())
    except ConfigurationError as exc:
        return Check(
            name,
            FAIL,
            str(exc),
            "The server presents a certificate that ca_bundle does not trust (or for another host name): "
            "set ca_bundle to the CA that signed it (ask for the chain: openssl s_client -showcerts)",
        )
    except CyberArkError as exc:
        return Check(
            name,
            FAIL,
            str(exc),
            f"Check the URL and port ({settings.base_url}), that the server runs, and firewalls / proxies "
            "between this machine and it",
        )


def _auth_remedy(settings: ConnectionSettings) -> str:
    """The auth method's own advice, else its API's."""
    method = settings.spec.auth_method(settings.extras.get("auth_method"))
    if method is not None and method.remedy:
        return method.remedy
    return settings.spec.doctor.auth_remedy


def check_authentication(client: BaseClient[Any, Any], settings: ConnectionSettings) -> tuple[Check, TokenFacts | None]:
    name = "authentication"
    if not isinstance(client, AuthenticatedClient):
        entry = settings.spec.doctor
        return Check(name, SKIP, entry.no_logon_text(settings), entry.no_logon_remedy), None
    try:
        facts = client.fresh_token()
    except (AuthenticationFailed, Forbidden) as exc:
        return Check(name, FAIL, _error_text(exc), _auth_remedy(settings)), None
    except CyberArkError as exc:
        return Check(name, FAIL, _error_text(exc), "See the detail; the other checks point at the cause"), None
    who = facts.subject or client.login
    return Check(name, PASS, f"authenticated to {settings.spec.label} as {who!r}"), facts


def check_token_ttl(facts: TokenFacts | None, settings: ConnectionSettings) -> Check:
    name = "token TTL"
    if facts is None:
        return Check(name, SKIP, "no token obtained")
    if facts.lifetime is None:
        return Check(
            name,
            SKIP,
            f"the {settings.spec.label} token does not say when it expires (the server ends the session)",
        )
    if facts.lifetime < SHORT_TOKEN:
        return Check(
            name,
            WARN,
            f"tokens live {facts.lifetime:g} s: nearly every fetch re-authenticates",
            "Raise the token TTL on the server (Conjur: the authenticator's token_ttl, default 8 min)",
        )
    return Check(name, PASS, f"tokens live {facts.lifetime:g} s; renewed after {facts.renew_in:g} s")


def check_clock(client: BaseClient[Any, Any]) -> Check:
    name = "clock skew"
    offset = client.server_clock_offset
    if offset is None:
        return Check(name, SKIP, "no dated HTTP answer from the server yet (give --path for CCP)")
    ahead = "ahead of" if offset > 0 else "behind"
    if abs(offset) < 1:
        detail = "the server's clock agrees with this machine's to the second (HTTP Date header)"
    else:
        detail = f"the server's clock is {abs(offset):.0f} s {ahead} this machine's (HTTP Date header)"
    remedy = "Synchronise both clocks with NTP (chrony / systemd-timesyncd); JWTs and tokens depend on it"
    if abs(offset) > SKEW_FAIL:
        return Check(name, FAIL, detail, remedy)
    if abs(offset) > SKEW_WARN:
        return Check(name, WARN, detail, remedy)
    return Check(name, PASS, detail)


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


# -- running them -----------------------------------------------------------------------------------


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
    for key in ("api_key", "jwt_token", "client_key_password"):
        secrets.add(str(settings.extras.get(key) or ""))
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


def _cleaned(report: Report, secrets: _Secrets) -> Report:
    """Secrets scrubbed, and every line cut and escaped: a check's name and detail echo settings,
    paths and server messages, and the report goes to a terminal."""
    report.source = printable(report.source, SOURCE_CHARS)
    report.checks = [
        Check(
            printable(c.name, NAME_CHARS),
            c.status,
            printable(secrets.clean(c.detail), DETAIL_CHARS),
            printable(secrets.clean(c.remedy), DETAIL_CHARS),
        )
        for c in report.checks
    ]
    return report


# -- output -----------------------------------------------------------------------------------------

SOURCE_CHARS = 200
NAME_CHARS = 160
DETAIL_CHARS = 2000
PATH_CHARS = 120
"""Characters of a report's source, a check's name and its detail or remedy (cut in the middle)."""

_MARKS = {PASS: "PASS", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}


def render_text(report: Report, width: int = 100) -> str:
    """Aligned columns: status, check, detail; a remedy on its own indented line when needed."""
    name_width = max([len(c.name) for c in report.checks] + [5])
    lines = [f"cyberark-ops doctor: {report.source}" + (f" ({report.api})" if report.api else ""), ""]
    lines.append(f"{'STATUS':<6}  {'CHECK':<{name_width}}  DETAIL")
    for check in report.checks:
        lines.append(f"{_MARKS[check.status]:<6}  {check.name:<{name_width}}  {check.detail}")
        if check.remedy and check.status != PASS:
            lines.append(f"{'':<6}  {'':<{name_width}}  -> {check.remedy}")
    counts = report.as_dict()["summary"]
    lines.append("")
    lines.append(", ".join(f"{counts[s]} {s}" for s in STATUSES) + ("" if report.failed else " — no failure"))
    return "\n".join(lines) + "\n"


def render_rich(report: Report, console: Any = None) -> None:
    """The same table through ``rich`` (Airflow depends on it), for a terminal."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    styles = {PASS: "green", WARN: "yellow", FAIL: "bold red", SKIP: "dim"}
    table = Table(title=f"cyberark-ops doctor: {report.source}" + (f" ({report.api})" if report.api else ""))
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=3)
    table.add_column("remedy", overflow="fold", ratio=2)
    for check in report.checks:
        style = styles[check.status]
        remedy = check.remedy if check.status != PASS else ""
        table.add_row(f"[{style}]{_MARKS[check.status]}[/]", escape(check.name), escape(check.detail), escape(remedy))
    console = console or Console()
    console.print(table, markup=True, highlight=False)


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)


def use_rich() -> bool:
    if not os.isatty(1) or os.environ.get("NO_COLOR"):
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = [
    "FAIL",
    "PASS",
    "SKIP",
    "WARN",
    "Check",
    "DoctorUsageError",
    "Report",
    "render_json",
    "render_text",
    "run",
    "settings_from_backend_kwargs",
    "settings_from_connection",
]
