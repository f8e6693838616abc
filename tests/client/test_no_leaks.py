"""Canary test: no secret, API key, password or token reaches a log record or an exception.

Every credential in the seed is a canary string. All log records at DEBUG level (this package,
requests, urllib3, the dev server) and the ``str``/``repr``/traceback of every exception raised in
success and failure runs are searched for each canary in several encodings; so are the tokens the
server issued during the run.
"""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cyberark_ops.client import (
    CCPClient,
    ConjurApiKeyAuth,
    ConjurClient,
    ConjurJWTAuth,
    CyberArkError,
    PlatformTokenAuth,
    PVWAClient,
    PVWALogonAuth,
    TokenCache,
)
from cyberark_ops.scrub import leak_forms

from .conftest import CONJUR_BATCH, Vault

ACCOUNT = "canary"
CONJUR_API_KEY = "canary0apikey0conjur0x7q9w2e4r6t8y1u3i5o7p9a2s4d6f8g0h1"
WRONG_API_KEY = "canary0wrongkey0conjur0b5n7m9q1w3e5r7t9y1u3i5o7p9a2s4d"
CONJUR_SECRET = "Canary-conjur-Secret \"@:/%+'\\&#?=; ü€ 7Hq2"
CONJUR_SECRET_2 = "Canary-conjur-Second-9Zp4-\n-line2"
VAULT_SECRET = "Canary-vault-Secret \"@:/%+'\\&#?=; ü 3Kd8"
PVWA_PASSWORD = 'Canary-pvwa-Passw0rd "@:/%+&#?=; 5Lm1'
WRONG_PVWA_PASSWORD = "Canary-pvwa-WrongPass-2Vb6"
PLATFORM_SECRET = "Canary-platform-Secret-8Nc3 &=+"
WRONG_PLATFORM_SECRET = "Canary-platform-Wrong-4Xr9"
FAKE_JWT = "Y2FuYXJ5LWp3dC1oZWFkZXI.Y2FuYXJ5LWp3dC1wYXlsb2Fk.Y2FuYXJ5LWp3dC1zaWduYXR1cmU"

STATIC_CANARIES = [
    CONJUR_API_KEY,
    WRONG_API_KEY,
    CONJUR_SECRET,
    CONJUR_SECRET_2,
    VAULT_SECRET,
    PVWA_PASSWORD,
    WRONG_PVWA_PASSWORD,
    PLATFORM_SECRET,
    WRONG_PLATFORM_SECRET,
    FAKE_JWT,
]

SEED: dict[str, Any] = {
    "conjur": {
        "account": ACCOUNT,
        "hosts": [{"id": "airflow/worker", "api_key": CONJUR_API_KEY}],
        "variables": [
            {"id": "app/secret", "value": CONJUR_SECRET},
            {"id": "app/second", "value": CONJUR_SECRET_2},
            {"id": "app/hidden", "value": CONJUR_SECRET_2},
        ],
        "permits": [{"role": "host:airflow/worker", "privileges": ["read", "execute"], "resources": ["app/s*"]}],
        "authn_jwt": [
            {
                "service_id": "airflow",
                "issuer": "https://devserver.cyberark-ops.local",
                "token_app_property": "sub",
                "identity_path": "airflow",
            }
        ],
    },
    "vault": {
        "safes": [{"name": "Canary", "id": 5}],
        "accounts": [
            {
                "name": "db",
                "safe": "Canary",
                "userName": "etl",
                "address": "127.0.0.1",
                "platformId": "PostgreSQL",
                "secret": VAULT_SECRET,
                "properties": {"Port": 5432, "Database": "sales"},
            }
        ],
        "ccp_applications": [
            {
                "app_id": "AirflowProd",
                "allowed_safes": ["Canary"],
                "allowed_cert_subjects": ["CN=airflow-client,O=cyberark-ops dev"],
            }
        ],
        "pvwa_users": [
            {
                "username": "svc_airflow",
                "password": PVWA_PASSWORD,
                "permissions": {"Canary": ["list", "retrieve"]},
            }
        ],
        "platform_clients": [
            {
                "client_id": "airflow-svc@cyberark.cloud.1234",
                "client_secret": PLATFORM_SECRET,
                "permissions": {"Canary": ["list", "retrieve"]},
            }
        ],
    },
}


def forms(value: str) -> set[str]:
    """The encodings in which a value typically escapes: raw, URL, base64, JSON, repr."""
    return {v for v in leak_forms(value).values() if len(v) >= 12}


class Evidence:
    """Everything that could carry a leak: texts from exceptions, plus captured log records."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.canaries: list[str] = list(STATIC_CANARIES)
        self.errors: list[str] = []

    def add_token(self, token: str | None) -> None:
        if token:
            self.canaries.append(token)
            if token.startswith(('Token token="', "Bearer ")):
                self.canaries.append(token.split(" ", 1)[1].strip('token="').strip('"'))

    def expect_error(self, label: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (CyberArkError, TypeError) as exc:
            self.errors.append(type(exc).__name__)
            self.record_exception(label, exc)
        else:
            raise AssertionError(f"{label}: expected an error")

    def record_exception(self, label: str, exc: BaseException) -> None:
        self.texts.append((f"{label} str", str(exc)))
        self.texts.append((f"{label} repr", repr(exc)))
        self.texts.append(
            (f"{label} traceback", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        )
        self.texts.append((f"{label} attributes", repr(vars(exc))))

    def hits(self) -> list[str]:
        found = []
        for canary in self.canaries:
            for variant in forms(canary):
                for where, text in self.texts:
                    if variant in text:
                        found.append(f"{canary[:16]}... as {variant[:24]!r} in {where}")
        return found


@pytest.fixture
def evidence(caplog: pytest.LogCaptureFixture) -> Iterator[Evidence]:
    for name in (
        None,
        "urllib3",
        "requests",
        "cyberark_ops",
        "cyberark_ops.client",
        "cyberark_ops.devserver",
    ):
        caplog.set_level(logging.DEBUG, logger=name)
    collected = Evidence()
    yield collected


def finish(evidence: Evidence, caplog: pytest.LogCaptureFixture) -> None:
    evidence.texts.append(("log text", caplog.text))
    for record in caplog.records:
        evidence.texts.append((f"log record {record.name}", f"{record.getMessage()} {record.args!r}"))
    assert len(caplog.records) > 20, "DEBUG records from urllib3 and this package were captured"
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert evidence.hits() == []


def test_no_canary_in_logs_or_exceptions(
    make_vault: Callable[..., Vault],
    evidence: Evidence,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    closed_port: int,
) -> None:
    vault = make_vault(SEED)
    other = make_vault(SEED)
    fast: dict[str, Any] = {"max_retries": 1, "backoff_base": 0.01, "backoff_max": 0.02, "deadline": 5.0}
    conjur_settings = {
        "account": ACCOUNT,
        "auth": ConjurApiKeyAuth("host/airflow/worker", CONJUR_API_KEY),
        **fast,
    }

    # -- successes ----------------------------------------------------------------------------------
    cache = TokenCache()
    conjur = ConjurClient(vault.conjur_config(**conjur_settings), token_cache=cache)
    assert conjur.get_secret("app/secret") == CONJUR_SECRET
    assert conjur.get_secrets(["app/secret", "app/second"]) == {
        "app/secret": CONJUR_SECRET,
        "app/second": CONJUR_SECRET_2,
    }
    conjur.whoami()
    conjur.list_variables()
    token = cache.peek(conjur._auth.key)
    evidence.add_token(token.header if token else None)
    evidence.texts += [
        ("conjur client repr", repr(conjur)),
        ("config repr", repr(conjur.config)),
        ("token repr", repr(token)),
    ]

    jwt = requests.post(
        f"{vault.url}/_dev/conjur/jwt",
        json={"claims": {"sub": "worker"}, "ttl": 60},
        headers={"Authorization": f"Bearer {vault.info['admin_token']}"},
        verify=vault.ca,
        timeout=10,
    ).json()["jwt"]
    evidence.add_token(jwt)
    token_file = tmp_path / "jwt"
    token_file.write_text(jwt)
    jwt_client = ConjurClient(
        vault.conjur_config(**{**conjur_settings, "auth": ConjurJWTAuth("airflow", token_file=token_file)}),
        token_cache=TokenCache(),
    )
    assert jwt_client.get_secret("app/second") == CONJUR_SECRET_2

    ccp = CCPClient(vault.ccp_config(**fast))
    credential = ccp.get_account(safe="Canary", object="db", reason="canary run")
    assert credential.secret == VAULT_SECRET
    evidence.texts += [
        ("credential repr", repr(credential)),
        ("credential str", f"{credential}"),
        ("credential dict", json.dumps(credential.to_dict())),
    ]
    evidence.expect_error("credential pickle", lambda: pickle.dumps(credential))

    pvwa_auth = PVWALogonAuth("svc_airflow", PVWA_PASSWORD)
    with PVWAClient(vault.pvwa_config(auth=pvwa_auth, **fast)) as pvwa:
        assert pvwa.get_credential("Canary", "db", reason="canary run").secret == VAULT_SECRET
        session = pvwa._auth.cache.peek(pvwa._auth.key)
        evidence.add_token(session.header if session else None)
        evidence.texts += [
            ("pvwa repr", repr(pvwa)),
            ("pvwa config", repr(pvwa.config)),
            ("auth", repr(pvwa_auth)),
        ]
    platform_cache = TokenCache()
    platform = PlatformTokenAuth(vault.url, "airflow-svc@cyberark.cloud.1234", PLATFORM_SECRET)
    with PVWAClient(vault.pvwa_config(auth=platform, **fast), token_cache=platform_cache) as cloud:
        assert cloud.get_credential("Canary", "db").secret == VAULT_SECRET
        bearer = platform_cache.peek(cloud._auth.key)
        evidence.add_token(bearer.header if bearer else None)

    # -- failures -------------------------------------------------------------------------------------
    wrong_key = ConjurClient(
        vault.conjur_config(**{**conjur_settings, "auth": ConjurApiKeyAuth("host/airflow/worker", WRONG_API_KEY)}),
        token_cache=TokenCache(),
    )
    evidence.expect_error("wrong api key", lambda: wrong_key.get_secret("app/secret"))
    evidence.expect_error("forbidden batch", lambda: conjur.get_secrets(["app/secret", "app/hidden"]))
    evidence.expect_error("not found", lambda: conjur.get_secret("app/nope"))
    vault.fault("conjur.retrieve", status=401, count=2)
    evidence.expect_error("401 twice", lambda: conjur.get_secret("app/secret"))
    vault.fault(CONJUR_BATCH, status=503, count=2)
    evidence.expect_error("5xx exhausted", lambda: conjur.get_secrets(["app/secret", "app/second"]))
    vault.fault("conjur.whoami", kind="malformed", count=1)
    evidence.expect_error("malformed", conjur.whoami)
    vault.fault("conjur.retrieve", status=429, retry_after=60, count=1)
    evidence.expect_error("rate limited", lambda: conjur.get_secret("app/secret"))
    slow = ConjurClient(vault.conjur_config(**{**conjur_settings, "read_timeout": 0.2}), token_cache=cache)
    vault.latency("conjur.retrieve", 0.5)
    evidence.expect_error("read timeout", lambda: slow.get_secret("app/secret"))
    vault.latency("conjur.retrieve", 0)
    dead = ConjurClient(
        vault.conjur_config(**{**conjur_settings, "base_url": f"https://127.0.0.1:{closed_port}"}),
        token_cache=TokenCache(),
    )
    evidence.expect_error("dead server", lambda: dead.get_secret("app/secret"))
    wrong_ca = ConjurClient(vault.conjur_config(**{**conjur_settings, "ca_bundle": other.ca}), token_cache=TokenCache())
    evidence.expect_error("wrong ca", lambda: wrong_ca.get_secret("app/secret"))
    fake_jwt_file = tmp_path / "fake"
    fake_jwt_file.write_text(FAKE_JWT)
    fake_jwt = ConjurClient(
        vault.conjur_config(**{**conjur_settings, "auth": ConjurJWTAuth("airflow", token_file=fake_jwt_file)}),
        token_cache=TokenCache(),
    )
    evidence.expect_error("bad jwt", lambda: fake_jwt.get_secret("app/secret"))
    fake_jwt_file.write_text(FAKE_JWT + " not-a-jwt")
    evidence.expect_error("malformed jwt file", lambda: fake_jwt.get_secret("app/secret"))

    evidence.expect_error(
        "ccp without cert",
        lambda: CCPClient(vault.ccp_config(cert=False, **fast)).get_account(safe="Canary", object="db"),
    )
    evidence.expect_error("ccp not found", lambda: ccp.get_account(safe="Canary", object="nope"))
    vault.server.app.rotate("vault:5_1", None, change_window=3600)
    changing = CCPClient(vault.ccp_config(password_change_retries=1, password_change_wait=0.01, **fast))
    evidence.expect_error("password change", lambda: changing.get_account(safe="Canary", object="db"))
    vault.fault("ccp.get_password", status=500, count=5)
    evidence.expect_error("ccp 5xx", lambda: ccp.get_account(safe="Canary", object="db"))

    def pvwa_logon(password: str) -> None:
        with PVWAClient(vault.pvwa_config(auth=PVWALogonAuth("svc_airflow", password), **fast)) as client:
            client.logon()

    evidence.expect_error("pvwa wrong password", lambda: pvwa_logon(WRONG_PVWA_PASSWORD))

    def pvwa_forbidden() -> None:
        with PVWAClient(vault.pvwa_config(auth=pvwa_auth, **fast)) as client:
            client.retrieve_password("99_1")

    evidence.expect_error("pvwa not found", pvwa_forbidden)
    wrong_platform = PlatformTokenAuth(vault.url, "airflow-svc@cyberark.cloud.1234", WRONG_PLATFORM_SECRET)
    evidence.expect_error(
        "platform wrong secret",
        lambda: PVWAClient(vault.pvwa_config(auth=wrong_platform, **fast), token_cache=TokenCache()).logon(),
    )
    vault.fault("pvwa.logoff", status=500, count=5)
    with PVWAClient(vault.pvwa_config(auth=pvwa_auth, **fast)) as client:
        client.retrieve_password("5_1")
        session = client._auth.cache.peek(client._auth.key)
        evidence.add_token(session.header if session else None)

    assert len(evidence.errors) >= 18
    finish(evidence, caplog)
