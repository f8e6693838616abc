"""Connection settings a hostile or careless user writes, refused by the hook with the field named:
extras that are not a JSON object, non-finite numbers, rate budgets out of range, a binary API key
file, ids with CR/LF or surrounding whitespace, a huge id (short error, short log line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cyberark_ops import CyberArkHook
from cyberark_ops.client import ConfigurationError
from tests.hooks.conftest import Connections
from tests.versions import needs_airflow

# Airflow 3.1 builds an env-var connection with core's Connection, which refuses such extras itself;
# the secrets chain swallows that and reports the conn_id as undefined, so the hook never sees them.
hook_sees_bad_extras = needs_airflow("3.2", "3.1 refuses a non-object extra before the hook reads it")


def _raw_connection(conns: Connections, monkeypatch: pytest.MonkeyPatch, conn_id: str, extra: str) -> str:
    conn = {"conn_type": "cyberark", "host": conns.info["url"], "login": "host/x", "password": "k", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


@hook_sees_bad_extras
@pytest.mark.parametrize("extra", ["[1, 2]", '"abc"', "42", "null"])
def test_extras_that_are_json_but_not_an_object_are_named(
    conns: Connections, monkeypatch: pytest.MonkeyPatch, extra: str
) -> None:
    hook = CyberArkHook(_raw_connection(conns, monkeypatch, "shape", extra))
    with pytest.raises(ConfigurationError, match="extra: must be a JSON object") as raised:
        hook.get_secret("prod/db/password")
    assert raised.value.field == "extra"


@hook_sees_bad_extras
def test_unparseable_extras_are_named(conns: Connections, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = CyberArkHook(_raw_connection(conns, monkeypatch, "broken", '{"account": "demo",'))
    with pytest.raises(ConfigurationError, match="extra: is not valid JSON"):
        hook.get_secret("prod/db/password")


@pytest.mark.parametrize("value", ["NaN", "inf", "-inf", 1e12, True, "1e999"])
def test_non_finite_numbers_in_extras_are_refused(conns: Connections, value: object) -> None:
    hook = CyberArkHook(conns.conjur("numbers", deadline=value))
    with pytest.raises(ConfigurationError) as raised:
        hook.get_secret("prod/db/password")
    assert raised.value.field == "deadline"
    assert conns.calls() == []


@pytest.mark.parametrize("value", [1e-9, 0, -1, "NaN", "inf", 1e9])
def test_rate_budgets_out_of_range_are_refused(conns: Connections, value: object) -> None:
    hook = CyberArkHook(conns.conjur("budget", rate_limit_per_second=value))
    with pytest.raises(ConfigurationError, match="rate_limit_per_second"):
        hook.get_secret("prod/db/password")


def test_a_binary_api_key_file_is_a_configuration_error(conns: Connections, tmp_path: Path) -> None:
    key_file = tmp_path / "key.bin"
    key_file.write_bytes(b"\xff\xfe\x00binary")
    hook = CyberArkHook(conns.conjur("binary", password=None, api_key_file=str(key_file)))
    with pytest.raises(ConfigurationError, match="api_key_file") as raised:
        hook.get_secret("prod/db/password")
    assert raised.value.field == "api_key_file"


@pytest.mark.parametrize("path", ["prod/db/password\n", "prod/db/password\r\n", " prod/db/password"])
def test_ids_with_crlf_or_whitespace_are_refused_not_stripped(conns: Connections, path: str) -> None:
    hook = CyberArkHook(conns.conjur())
    with pytest.raises(ConfigurationError):
        hook.get_secret(path)
    assert [e for e in conns.calls() if e["action"] == "conjur.retrieve"] == []


def test_a_huge_id_gives_a_short_error_and_a_short_log_line(
    conns: Connections, caplog: pytest.LogCaptureFixture
) -> None:
    hook = CyberArkHook(conns.conjur())
    with pytest.raises(ConfigurationError) as raised:
        hook.get_secret("a" * 100_000)
    assert len(str(raised.value)) < 400
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)
