"""The TLS checks: the files a connection names for TLS (CA bundle, client certificate and key) and
the server's chain, judged before any client is built so a bad file is named as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..client import ConfigurationError, CyberArkError
from ..client.untrusted import PEM_FILE_CAP, read_regular_file
from ..settings import ConnectionSettings
from .report import FAIL, PASS, SKIP, WARN, Check

EXPIRY_WARNING = timedelta(days=30)
"""A certificate expiring within this window is a warning: time to renew it."""

_TLS_FIELDS = {"ca_bundle", "client_cert", "client_key", "client_key_password", "verify"}


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
    from ..client.config import TransportConfig
    from ..client.tls import build_ssl_context

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
