"""Helpers for the doctor tests: connections to a running dev server, certificates made on the spot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cyberark_ops import doctor
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import devserver_connections
from cyberark_ops.devserver.seed import load_seed
from cyberark_ops.settings import ConnectionSettings

Conn = dict[str, Any]


def demo_connections(server: DevServer) -> dict[str, Conn]:
    return devserver_connections(server.info(), load_seed(None))


def settings_loader(conn: Conn) -> Callable[[], ConnectionSettings]:
    """What the hook does with an Airflow connection of this JSON form."""

    def load() -> ConnectionSettings:
        return ConnectionSettings.from_fields(
            host=conn["host"],
            port=conn.get("port"),
            login=conn.get("login"),
            password=conn.get("password"),
            extras=conn.get("extra") or {},
        )

    return load


def run(conn: Conn, paths: list[str] | tuple[str, ...] = ()) -> doctor.Report:
    return doctor.run(settings_loader(conn), source="test", paths=paths)


def by_name(report: doctor.Report) -> dict[str, doctor.Check]:
    return {check.name: check for check in report.checks}


def write_cert(
    directory: Path,
    name: str,
    *,
    not_after: dt.datetime,
    key_for: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[str, str]:
    """A self-signed certificate and its key as PEM files; ``key_for`` writes another key instead."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(not_after, dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=400))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    written = key_for or key
    key_path.write_bytes(
        written.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)
