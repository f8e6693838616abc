"""``CyberArkHook`` against the dev server over HTTPS, with connections from ``AIRFLOW_CONN_*``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from airflow.sdk.log import redact
from cryptography.hazmat.primitives import serialization

from cyberark_ops import Credential, CyberArkHook
from cyberark_ops.client import AuthenticationFailed, ConfigurationError, Forbidden, NotFound
from tests.hooks.conftest import Connections


def test_constructing_the_hook_costs_no_vault_call(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    assert repr(hook) == "CyberArkHook(cyberark_conn_id='cyberark_conjur')"
    assert conns.calls() == []


def test_conjur_secret_is_returned_and_masked(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    value = hook.get_secret("prod/db/password")
    assert value == "Demo-PG-Passw0rd!"
    assert redact(f"connecting with {value}") == "connecting with ***"
    assert hook.get_secret("conjur:prod/api/key?version=1") == "demo-api-key-v1"


def test_twenty_conjur_secrets_cost_two_vault_calls(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    paths = [f"prod/batch/secret-{n:02d}" for n in range(1, 21)]
    values = hook.get_secrets(paths)
    assert values == {path: f"batch-value-{path[-2:]}" for path in paths}
    assert [e["action"] for e in conns.calls()] == ["conjur.authenticate", "conjur.batch"]


def test_get_secrets_mixes_batched_pinned_and_comma_ids(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    values = hook.get_secrets(["prod/db/username", "conjur:prod/api/key?version=2", "with,comma"])
    assert values == {
        "prod/db/username": "airflow_demo",
        "conjur:prod/api/key?version=2": "demo-api-key-v2",
        "with,comma": "comma-cannot-batch",
    }


def test_ccp_credential_with_client_certificate_and_reason(conns: Connections) -> None:
    hook = CyberArkHook(conns.ccp(), reason="nightly load")
    credential = hook.get_credential("Safe=DB-Prod;Object=pg-prod")
    assert isinstance(credential, Credential)
    assert (credential.username, credential.address, credential.port, credential.database) == (
        "etl_user",
        "127.0.0.1",
        5432,
        "sales",
    )
    assert credential.secret == "Pg-Pr0d-Dev!"
    assert "Pg-Pr0d-Dev!" not in repr(credential)
    assert redact(credential.secret) == "***"
    (call,) = conns.calls("ccp")
    assert call["reason"].startswith("airflow")
    assert "nightly load" in call["reason"]


def test_pvwa_credential_logs_on_and_off_per_fetch(conns: Connections) -> None:
    hook = CyberArkHook(conns.pvwa())
    assert hook.get_secret("DB-Prod/pg-prod") == "Pg-Pr0d-Dev!"
    actions = [e["action"] for e in conns.calls("pvwa")]
    assert actions[0] == "pvwa.logon"
    assert actions[-1] == "pvwa.logoff"
    assert "pvwa.retrieve_password" in actions


def test_privilege_cloud_uses_a_platform_token(conns: Connections) -> None:
    hook = CyberArkHook(conns.privilege_cloud())
    credential = hook.get_credential("privilege-cloud:DB-Prod/pg-prod")
    assert credential.secret == "Pg-Pr0d-Dev!"
    assert conns.calls()[0]["action"] == "pvwa.platform_token"


def test_test_connection_authenticates_only(conns: Connections) -> None:
    for conn_id in (conns.conjur(), conns.pvwa(), conns.privilege_cloud(), conns.ccp()):
        ok, message = CyberArkHook(conn_id).test_connection()
        assert ok, message
    fetched = {"conjur.retrieve", "conjur.batch", "ccp.get_password", "pvwa.retrieve_password"}
    assert not fetched & {e["action"] for e in conns.calls()}


def test_test_connection_reports_a_wrong_api_key_without_the_key(conns: Connections) -> None:
    wrong = "wrong-api-key-canary-7f3e"
    ok, message = CyberArkHook(conns.conjur(password=wrong)).test_connection()
    assert not ok
    assert "authenticat" in message.lower()
    assert wrong not in message


def test_errors_name_the_object_and_are_typed(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    with pytest.raises(NotFound, match="prod/db/nope"):
        hook.get_secret("prod/db/nope")
    with pytest.raises(Forbidden):
        hook.get_secret("prod/restricted/audit-key")
    with pytest.raises(AuthenticationFailed):
        CyberArkHook(conns.conjur("bad_key", password="not-the-key")).get_secret("prod/db/password")


def test_a_reference_for_another_api_is_refused(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    with pytest.raises(ConfigurationError, match="not for conjur"):
        hook.get_secret("ccp:Safe=DB-Prod;Object=pg-prod")
    assert conns.calls() == []


def test_bad_connections_get_clear_errors(conns: Connections) -> None:
    with pytest.raises(ConfigurationError, match="api"):
        CyberArkHook(conns.add("weird", login="x", password="y", api="vault9000")).get_secret("a")
    with pytest.raises(ConfigurationError, match="app_id"):
        CyberArkHook(conns.add("no_app", login=None, password=None, api="ccp")).get_secret("Safe=A;Object=b")
    with pytest.raises(ConfigurationError, match="password field"):
        hook = CyberArkHook(conns.add("inline", login="u", password=None, api="pvwa", password_x=1, secret="s3"))
        hook.get_secret("DB-Prod/pg-prod")


def test_one_structured_log_line_per_fetch_without_the_value(
    conns: Connections, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = CyberArkHook(conns.conjur())
    value = hook.get_secret("prod/db/password")
    with pytest.raises(NotFound):
        hook.get_secret("prod/db/nope")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CyberArk fetch")]
    assert lines[0].startswith("CyberArk fetch api=conjur action=get_secret object=conjur:prod/db/password")
    assert "outcome=success" in lines[0]
    assert "outcome=NotFound" in lines[1]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert value not in everything


def test_connection_secrets_are_masked_when_used(conns: Connections) -> None:
    key = "api-key-in-extra-canary-91ab"
    hook = CyberArkHook(conns.conjur("extra_key", password=None, api_key=key))
    with pytest.raises(AuthenticationFailed) as raised:
        hook.get_secret("prod/db/password")
    assert key not in str(raised.value)
    assert redact(f"key={key}") == "key=***"


def test_ccp_with_an_encrypted_client_key(conns: Connections, tmp_path: Path) -> None:
    passphrase = "key-passphrase-canary-55d1"
    key = serialization.load_pem_private_key(Path(conns.info["client_key"]).read_bytes(), password=None)
    encrypted = tmp_path / "client-key-encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    good = CyberArkHook(conns.ccp("ccp_enc", client_key=str(encrypted), client_key_password=passphrase))
    assert good.get_secret("Safe=DB-Prod;Object=pg-prod") == "Pg-Pr0d-Dev!"
    assert redact(passphrase) == "***"
    bad = CyberArkHook(conns.ccp("ccp_bad", client_key=str(encrypted), client_key_password="wrong-passphrase"))
    with pytest.raises(ConfigurationError, match="client_cert") as raised:
        bad.get_secret("Safe=DB-Prod;Object=pg-prod")
    assert "wrong-passphrase" not in str(raised.value)
    assert passphrase not in repr(bad.settings)


def test_a_bad_rate_limit_budget_is_a_clear_configuration_error(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur("budget", rate_limit_per_second="fast"))
    with pytest.raises(ConfigurationError, match="rate_limit_per_second"):
        hook.get_secret("prod/db/password")
    assert conns.calls() == []


def test_pvwa_connections_have_no_long_lived_client(conns: Connections) -> None:
    with pytest.raises(ConfigurationError, match="per fetch"):
        CyberArkHook(conns.pvwa()).get_conn()
    assert conns.calls() == []
