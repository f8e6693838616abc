"""One short-secret policy for every way in: the hook, the vaulted operators, the decorator and the
secrets backend go through the fetch core, so a value Airflow would not mask gets the same limit
(``[logging] min_length_masked_secret``, read once by the registry) and the same message, a warning
where the way in allows it and ``SecretTooShort`` where it refuses it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from airflow.providers.standard.operators.bash import BashOperator

from cyberark_ops import CyberArkHook, scrub, vaulted, with_cyberark_secret
from cyberark_ops.fetch import short_secret_message
from cyberark_ops.secrets import CyberArkSecretsBackend, reset_backend_state
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN
from tests.hooks.conftest import Connections

SHORT_REF = "prod/db/port"
SHORT_VALUE = "5432"
"""The dev server's seeded Conjur variable: four characters, under Airflow's default of five."""


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    scrub.clear()
    reset_backend_state()
    yield
    scrub.clear()
    reset_backend_state()


def _refusals(conn: str) -> dict[str, Callable[[], object]]:
    """Each way in, configured to refuse a short value."""

    @with_cyberark_secret(vault_conn_id=conn, port=SHORT_REF)
    def decorated(port: str) -> str:
        return port

    operator = vaulted(BashOperator)(task_id="short", vault_conn_id=conn, credential_ref=SHORT_REF, bash_command="true")
    return {
        "hook": lambda: CyberArkHook(conn, allow_short_secret=False).get_secret(SHORT_REF),
        "operator": operator.fetch_credential,
        "decorator": decorated,
    }


def _backend(conns: Connections, tmp_path: Path) -> CyberArkSecretsBackend:
    key_file = tmp_path / "conjur-api-key"
    key_file.write_text(HOST_API_KEY)
    return CyberArkSecretsBackend(
        url=conns.info["url"],
        ca_bundle=conns.info["ca_cert"],
        api="conjur",
        login=HOST_LOGIN,
        api_key_file=str(key_file),
        account=conns.info["conjur_account"],
        variables_path="prod/db/{variable}",
    )


def _allowances(conns: Connections, conn: str, tmp_path: Path) -> dict[str, Callable[[], object]]:
    """Each way in, configured (or by default) to accept a short value with a warning."""

    @with_cyberark_secret(vault_conn_id=conn, allow_short_secret=True, port=SHORT_REF)
    def decorated(port: str) -> str:
        return port

    operator = vaulted(BashOperator)(
        task_id="short_ok", vault_conn_id=conn, credential_ref=SHORT_REF, bash_command="true", allow_short_secret=True
    )
    return {
        "hook": lambda: CyberArkHook(conn).get_secret(SHORT_REF),
        "operator": lambda: operator.fetch_credential().secret,
        "decorator": decorated,
        "backend": lambda: _backend(conns, tmp_path).get_variable("port"),
    }


def _expected(conn: str) -> str:
    source = str(CyberArkHook(conn).resolve_ref(SHORT_REF))
    return short_secret_message(source, len(SHORT_VALUE), scrub.registry().min_length())


def test_every_refusing_way_in_raises_one_message(conns: Connections) -> None:
    conn = conns.conjur()
    expected = _expected(conn)
    messages = {}
    for way, call in _refusals(conn).items():
        with pytest.raises(scrub.SecretTooShort) as info:
            call()
        assert info.value.field == "allow_short_secret", way
        messages[way] = str(info.value)
    assert set(messages.values()) == {f"{expected}; rotate it to a longer value, or pass allow_short_secret=True"}
    assert all(SHORT_VALUE not in message for message in messages.values())


def test_every_allowing_way_in_warns_once_with_one_message(
    conns: Connections, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = conns.conjur()
    expected = _expected(conn)
    for way, call in _allowances(conns, conn, tmp_path).items():
        scrub.clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert call() == SHORT_VALUE, way
        warned = [r.getMessage() for r in caplog.records if "characters" in r.getMessage()]
        assert warned == [expected], way


def test_one_limit_for_every_way_in(conns: Connections, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lower the setting and the value is long enough everywhere: refused nowhere, warned nowhere."""
    monkeypatch.setenv("AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET", str(len(SHORT_VALUE)))
    scrub.clear()  # the registry reads the setting once until cleared
    assert scrub.registry().min_length() == len(SHORT_VALUE)
    conn = conns.conjur()
    refusals = _refusals(conn)
    assert refusals["hook"]() == SHORT_VALUE
    assert getattr(refusals["operator"](), "secret", None) == SHORT_VALUE
    assert refusals["decorator"]() == "***", "long enough now: searched for, so scrubbed from the return value"
    allowances = _allowances(conns, conn, tmp_path)
    assert allowances.pop("decorator")() == "***"
    for way, call in allowances.items():
        assert call() == SHORT_VALUE, way
