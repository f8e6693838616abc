"""Dev CA, server and client certificates, generated once per state dir and then reused.

Reusing them lets a developer trust the CA once (or point ``REQUESTS_CA_BUNDLE``-free clients at
it) across restarts. Keys are EC P-256: fast to generate and cheap to handshake.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_CERT_SUBJECT = "CN=airflow-client,O=cyberark-ops dev"


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        # Client certificates are optional at the TLS layer; CCP decides per AppID whether one is needed.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=str(self.ca_cert))
        return context


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, org: str = "cyberark-ops dev") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        ]
    )


def _issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool,
    usage: list[x509.ObjectIdentifier] | None = None,
    san: list[x509.GeneralName] | None = None,
    days: int = 825,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def ensure_tls_files(state_dir: Path, extra_hosts: tuple[str, ...] = ()) -> TLSFiles:
    """Creates the dev CA and leaf certificates in ``state_dir`` unless they already exist."""
    files = TLSFiles(
        ca_cert=state_dir / "ca.pem",
        server_cert=state_dir / "server.pem",
        server_key=state_dir / "server-key.pem",
        client_cert=state_dir / "client.pem",
        client_key=state_dir / "client-key.pem",
    )
    if all(
        p.exists() for p in (files.ca_cert, files.server_cert, files.server_key, files.client_cert, files.client_key)
    ):
        return files
    state_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("cyberark-ops dev CA")
    ca_cert = _issue(ca_name, ca_key.public_key(), ca_name, ca_key, is_ca=True, days=3650)

    hosts = ["localhost", "127.0.0.1", "::1", *extra_hosts]
    san: list[x509.GeneralName] = []
    for host in hosts:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            san.append(x509.DNSName(host))
    server_key, server_cert = _leaf("localhost", ca_name, ca_key, ExtendedKeyUsageOID.SERVER_AUTH, san=san)
    client_key, client_cert = _leaf("airflow-client", ca_name, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    files.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    _write_private(state_dir / "ca-key.pem", _key_pem(ca_key))
    files.server_cert.write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write_private(files.server_key, _key_pem(server_key))
    files.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_private(files.client_key, _key_pem(client_key))
    return files


def _leaf(
    common_name: str,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    *,
    san: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and its certificate from the dev CA, for a server or a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _issue(_name(common_name), key.public_key(), ca_name, ca_key, is_ca=False, usage=[usage], san=san)


def issue_client_certificate(state_dir: Path, common_name: str, out_dir: Path) -> tuple[Path, Path]:
    """Issues another client certificate from the dev CA (e.g. one an AppID does not allow)."""
    ca_cert = x509.load_pem_x509_certificate((state_dir / "ca.pem").read_bytes())
    loaded = serialization.load_pem_private_key((state_dir / "ca-key.pem").read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise TypeError("the dev CA key is not an EC key")
    key, cert = _leaf(common_name, ca_cert.subject, loaded, ExtendedKeyUsageOID.CLIENT_AUTH)
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out_dir / f"{common_name}.pem", out_dir / f"{common_name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, _key_pem(key))
    return cert_path, key_path


def subject_string(peer_cert: dict[str, object] | None) -> str | None:
    """``ssl.getpeercert()``'s subject as ``CN=...,O=...`` (RFC 4514 order is not needed here)."""
    if not peer_cert:
        return None
    subject = peer_cert.get("subject")
    if not isinstance(subject, tuple):
        return None
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    parts = [f"{short.get(k, k)}={v}" for rdn in subject for (k, v) in rdn]
    return ",".join(parts)
