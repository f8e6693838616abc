"""The doctor's checks against a real dev server over HTTPS; only the dev clock is moved."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning

from cyberark_ops import doctor
from cyberark_ops.devserver import DevServer

from .conftest import by_name, demo_connections, run, write_cert

NARROW_SEED = {
    "conjur": {
        "account": "narrow",
        "hosts": [{"id": "etl/loader", "api_key": "narrow-host-api-key-0123456789"}],
        "variables": [
            {"id": "etl/db/password", "value": "etl-db-value"},
            {"id": "etl/db/username", "value": "etl_user"},
            {"id": "other/secret", "value": "not-for-etl"},
        ],
        "permits": [{"role": "host:etl/loader", "privileges": ["read", "execute"], "resources": ["etl/db/*"]}],
    }
}


def narrow_conjur(server: DevServer) -> dict[str, object]:
    info = server.info()
    return {
        "host": info["url"],
        "login": "host/etl/loader",
        "password": "narrow-host-api-key-0123456789",
        "extra": {"api": "conjur", "account": "narrow", "ca_bundle": info["ca_cert"]},
    }


def statuses(report: doctor.Report) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def test_conjur_scoped_narrowly_passes_every_check(make_server: Callable[..., DevServer]) -> None:
    server = make_server(NARROW_SEED)
    report = run(narrow_conjur(server), ["etl/db/password", "etl/db/username"])
    assert statuses(report) == {
        "configuration": "pass",
        "tls: CA bundle": "pass",
        "tls: client certificate": "skip",
        "reachability": "pass",
        "authentication": "pass",
        "token TTL": "pass",
        "clock skew": "pass",
        "read etl/db/password": "pass",
        "read etl/db/username": "pass",
        "least privilege": "pass",
    }
    checks = by_name(report)
    assert "host/etl/loader" in checks["authentication"].detail
    assert "480 s" in checks["token TTL"].detail
    assert "sees 2 variable(s), all of them checked" in checks["least privilege"].detail
    assert not report.failed


def test_conjur_identity_seeing_more_than_its_paths_is_a_warning(dev_server: DevServer) -> None:
    report = run(demo_connections(dev_server)["cyberark_conjur"], ["prod/db/password"])
    least = by_name(report)["least privilege"]
    assert least.status == "warn"
    assert "beyond the 1 checked" in least.detail
    # The first ten are named (the checked one not), the rest counted.
    assert "demo/sqlite/path" in least.detail and re.search(r"and [1-9][0-9]* more", least.detail)
    assert ", prod/db/password" not in least.detail and ": prod/db/password" not in least.detail
    assert "Scope the identity" in least.remedy
    assert not report.failed


def test_ccp_with_client_certificate_passes_and_cannot_list(dev_server: DevServer) -> None:
    report = run(demo_connections(dev_server)["cyberark_ccp"], ["Safe=DB-Prod;Object=pg-prod"])
    checks = by_name(report)
    assert checks["tls: client certificate"].status == "pass"
    assert "CN=airflow-client" in checks["tls: client certificate"].detail
    assert checks["reachability"].status == "pass"
    assert checks["authentication"].status == "skip"
    assert checks["read Safe=DB-Prod;Object=pg-prod"].status == "pass"
    assert checks["clock skew"].status == "pass"  # dated by the fetch
    assert checks["least privilege"].status == "skip"
    assert "cannot list" in checks["least privilege"].detail
    assert not report.failed


def test_pvwa_passes_and_counts_accounts_beyond_the_paths(dev_server: DevServer) -> None:
    report = run(demo_connections(dev_server)["cyberark_pvwa"], ["DB-Prod/pg-prod"])
    checks = by_name(report)
    assert [c.status for c in report.checks if c.status == "fail"] == []
    assert checks["authentication"].status == "pass"
    assert checks["read DB-Prod/pg-prod"].status == "pass"
    assert checks["least privilege"].status == "warn"
    assert "5 account(s) beyond the 1 checked (6 in all)" in checks["least privilege"].detail
    assert "DB-Prod/pg-prod" not in checks["least privilege"].detail


def test_a_ca_that_did_not_sign_the_server_fails_reachability(dev_server: DevServer, tmp_path: Path) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    other_ca, _ = write_cert(tmp_path, "other-ca", not_after=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=900))
    conn["extra"] = {**conn["extra"], "ca_bundle": other_ca}
    report = run(conn)
    checks = by_name(report)
    assert checks["tls: CA bundle"].status == "pass"  # a fine CA, just not the server's
    assert checks["reachability"].status == "fail"
    assert "TLS certificate verification failed" in checks["reachability"].detail
    assert "ca_bundle" in checks["reachability"].remedy
    assert checks["authentication"].status == "skip"
    assert report.failed


def test_unparseable_ca_bundle_fails(dev_server: DevServer, tmp_path: Path) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    conn["extra"] = {**conn["extra"], "ca_bundle": str(bogus)}
    checks = by_name(run(conn))
    assert checks["tls: CA bundle"].status == "fail"
    assert "holds no PEM certificate" in checks["tls: CA bundle"].detail


def _ccp_with_cert(server: DevServer, cert: str, key: str) -> dict[str, object]:
    conn = demo_connections(server)["cyberark_ccp"]
    conn["extra"] = {**conn["extra"], "client_cert": cert, "client_key": key}
    return conn


def test_expired_client_certificate_fails(dev_server: DevServer, tmp_path: Path) -> None:
    cert, key = write_cert(tmp_path, "expired", not_after=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2))
    report = run(_ccp_with_cert(dev_server, cert, key))
    check = by_name(report)["tls: client certificate"]
    assert check.status == "fail"
    assert "CN=expired expired on" in check.detail
    assert "Renew" in check.remedy
    assert report.failed


def test_soon_expiring_client_certificate_warns(dev_server: DevServer, tmp_path: Path) -> None:
    cert, key = write_cert(tmp_path, "soon", not_after=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10))
    check = by_name(run(_ccp_with_cert(dev_server, cert, key)))["tls: client certificate"]
    assert check.status == "warn"
    assert "in 9 day(s)" in check.detail or "in 10 day(s)" in check.detail


def test_a_key_that_does_not_match_the_certificate_fails(dev_server: DevServer, tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    cert, key = write_cert(
        tmp_path, "mismatch", not_after=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=300), key_for=other
    )
    report = run(_ccp_with_cert(dev_server, cert, key))
    checks = by_name(report)
    assert checks["tls: client certificate"].status == "fail"
    assert "does not belong to the certificate CN=mismatch" in checks["tls: client certificate"].detail
    # The client cannot load the pair either: the configuration fails, the rest is skipped.
    assert checks["configuration"].status == "fail"
    assert checks["reachability"].status == "skip"


def test_wrong_api_key_fails_authentication_with_401(dev_server: DevServer) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    conn["password"] = "wrong-api-key-000000000000000000"
    report = run(conn, ["prod/db/password"])
    checks = by_name(report)
    assert checks["reachability"].status == "pass"
    assert checks["authentication"].status == "fail"
    assert "401" in checks["authentication"].detail
    assert "API key" in checks["authentication"].remedy
    assert checks["readable paths"].status == "skip"
    assert report.failed


def test_wrong_pvwa_password_fails_authentication(dev_server: DevServer) -> None:
    conn = demo_connections(dev_server)["cyberark_pvwa"]
    conn["password"] = "Wrong-Pass-123"
    check = by_name(run(conn))["authentication"]
    assert check.status == "fail"
    assert "401" in check.detail or "403" in check.detail


def test_unreadable_paths_fail_naming_the_path(dev_server: DevServer) -> None:
    report = run(
        demo_connections(dev_server)["cyberark_conjur"],
        ["prod/db/password", "admin/break-glass", "prod/restricted/audit-key"],
    )
    checks = by_name(report)
    assert checks["read prod/db/password"].status == "pass"
    invisible = checks["read admin/break-glass"]
    assert invisible.status == "fail"
    assert "'admin/break-glass'" in invisible.detail and "404" in invisible.detail
    forbidden = checks["read prod/restricted/audit-key"]
    assert forbidden.status == "fail"
    assert "403" in forbidden.detail
    assert "execute" in forbidden.remedy
    assert report.failed


def test_unreadable_ccp_object_fails(dev_server: DevServer) -> None:
    check = by_name(run(demo_connections(dev_server)["cyberark_ccp"], ["Safe=Restricted;Object=break-glass"]))[
        "read Safe=Restricted;Object=break-glass"
    ]
    assert check.status == "fail"
    assert "Safe=Restricted" in check.detail


def test_server_down_fails_reachability(dev_server: DevServer) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    conn["host"] = f"https://127.0.0.1:{free_port}"
    report = run(conn)
    check = by_name(report)["reachability"]
    assert check.status == "fail"
    assert f"127.0.0.1:{free_port}" in check.detail
    assert "server runs" in check.remedy
    assert by_name(report)["authentication"].status == "skip"
    assert report.failed


def test_clock_skew_warns_then_fails(dev_server: DevServer) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    dev_server.app.clock.advance(90)
    check = by_name(run(conn))["clock skew"]
    assert check.status == "warn"
    assert "ahead of this machine's" in check.detail
    assert "NTP" in check.remedy
    dev_server.app.clock.advance(600)
    report = run(conn)
    assert by_name(report)["clock skew"].status == "fail"
    detail = by_name(report)["clock skew"].detail
    assert "690 s ahead" in detail or "691 s ahead" in detail
    assert report.failed


def test_a_short_token_ttl_warns(dev_server: DevServer) -> None:
    dev_server.app.set_token_ttl(20)
    check = by_name(run(demo_connections(dev_server)["cyberark_conjur"]))["token TTL"]
    assert check.status == "warn"
    assert "20 s" in check.detail


def test_a_typo_in_the_extras_fails_the_configuration(dev_server: DevServer) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    extra = dict(conn["extra"])
    extra["ca_bundel"] = extra.pop("ca_bundle")
    conn["extra"] = extra
    report = run(conn)
    checks = by_name(report)
    assert checks["configuration"].status == "fail"
    assert "ca_bundel" in checks["configuration"].detail and "ca_bundle" in checks["configuration"].detail
    assert all(check.status == "skip" for name, check in checks.items() if name != "configuration")


def test_backend_kwargs_are_checked_like_a_connection(dev_server: DevServer, tmp_path: Path) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    key_file = tmp_path / "api-key"
    key_file.write_text(str(conn["password"]))
    kwargs = {
        "url": conn["host"],
        "login": conn["login"],
        "api_key_file": str(key_file),
        "connections_path": "airflow/dev/connections",
        **conn["extra"],
    }
    report = doctor.run(
        lambda: doctor.settings_from_backend_kwargs(kwargs),
        source="backend",
        paths=["airflow/dev/connections/demo_sqlite"],
    )
    assert not report.failed
    assert by_name(report)["read airflow/dev/connections/demo_sqlite"].status == "pass"


def test_a_reference_for_another_api_fails_naming_it(dev_server: DevServer) -> None:
    check = by_name(run(demo_connections(dev_server)["cyberark_conjur"], ["ccp:Safe=DB-Prod;Object=pg-prod"]))[
        "read ccp:Safe=DB-Prod;Object=pg-prod"
    ]
    assert check.status == "fail"
    assert "is not for conjur: this connection reaches conjur" in check.detail


def test_the_doctor_module_imports_no_airflow() -> None:
    code = "import sys, cyberark_ops.doctor; sys.exit('airflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
YESTERDAY = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)


def _expired_twin(ca_path: Path, directory: Path) -> str:
    """An expired self-signed certificate with the same subject as ``ca_path`` but another key:
    OpenSSL must pick the valid one, and so must the doctor."""
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    twin = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(YESTERDAY - dt.timedelta(days=400))
        .not_valid_after(YESTERDAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "expired-twin.pem"
    path.write_bytes(twin.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _bundle(directory: Path, *parts: str | Path) -> str:
    bundle = directory / "bundle.pem"
    bundle.write_text("".join(Path(part).read_text() for part in parts))
    return str(bundle)


def _subject(pem: str | Path) -> str:
    return x509.load_pem_x509_certificate(Path(pem).read_bytes()).subject.rfc4514_string()


def test_expired_cas_beside_the_one_that_signed_the_server_pass(dev_server: DevServer, tmp_path: Path) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    dev_ca = conn["extra"]["ca_bundle"]
    old_ca, _ = write_cert(tmp_path, "old-ca", not_after=YESTERDAY)
    conn["extra"] = {
        **conn["extra"],
        "ca_bundle": _bundle(tmp_path, old_ca, _expired_twin(Path(dev_ca), tmp_path), dev_ca),
    }
    report = run(conn, ["prod/db/password"])
    check = by_name(report)["tls: CA bundle"]
    assert check.status == "pass", check
    assert f"the server's certificate chains to {_subject(dev_ca)}" in check.detail
    assert "2 expired one(s) not in the server's chain" in check.detail
    assert not report.failed, report.checks


def test_a_bundle_whose_every_certificate_expired_fails(dev_server: DevServer, tmp_path: Path) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    old_ca, _ = write_cert(tmp_path, "old-ca", not_after=YESTERDAY - dt.timedelta(days=5))
    twin = _expired_twin(Path(conn["extra"]["ca_bundle"]), tmp_path)
    conn["extra"] = {**conn["extra"], "ca_bundle": _bundle(tmp_path, old_ca, twin)}
    check = by_name(run(conn))["tls: CA bundle"]
    assert check.status == "fail"
    assert "expired" in check.detail and _subject(twin) in check.detail and "CN=old-ca" in check.detail
    assert "ca_bundle" in check.remedy


@pytest.mark.skipif(not SYSTEM_BUNDLE.is_file(), reason="no system CA bundle on this machine")
def test_the_system_bundle_with_the_servers_ca_passes_without_warnings(dev_server: DevServer, tmp_path: Path) -> None:
    conn = demo_connections(dev_server)["cyberark_conjur"]
    conn["extra"] = {**conn["extra"], "ca_bundle": _bundle(tmp_path, SYSTEM_BUNDLE, conn["extra"]["ca_bundle"])}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run(conn)
    check = by_name(report)["tls: CA bundle"]
    assert check.status == "pass", check
    assert "the server's certificate chains to" in check.detail
    assert not report.failed, report.checks
    assert not [w for w in caught if issubclass(w.category, CryptographyDeprecationWarning)]


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM_BUNDLE.is_file(), reason="no system CA bundle on this machine")
def test_the_system_bundle_as_ca_bundle_is_not_failed_for_its_expired_roots(dev_server: DevServer) -> None:
    """As the user of the issue ran it, through the CLI: the system bundle's expired roots are no
    failure and cryptography's deprecation warnings about its roots do not reach stderr."""
    info = dev_server.info()
    kwargs = {
        "url": info["url"],
        "api": "pvwa",
        "login": "svc_airflow",
        "password_env": "DOCTOR_TEST_PASSWORD",
        "ca_bundle": str(SYSTEM_BUNDLE),
        "connections_path": "pvwa:Airflow/{conn_id}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "cyberark_ops.cli", "doctor", "--backend-kwargs", json.dumps(kwargs), "--json"],
        env={**os.environ, "DOCTOR_TEST_PASSWORD": "Airflow-Dev-Pass1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Warning" not in result.stderr, result.stderr
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["tls: CA bundle"]["status"] == "pass", checks["tls: CA bundle"]
    # The dev server's CA is not a system root: the TLS failure is reachability's to report.
    assert checks["reachability"]["status"] == "fail"


def test_the_rich_table_shows_every_check(dev_server: DevServer) -> None:
    console_module = pytest.importorskip("rich.console")  # Airflow brings rich

    report = run(demo_connections(dev_server)["cyberark_conjur"], ["admin/break-glass"])
    buffer = io.StringIO()
    doctor.render_rich(report, console_module.Console(file=buffer, width=400))
    out = buffer.getvalue()
    for check in report.checks:
        assert check.name in out
    assert "FAIL" in out and "[/]" not in out
