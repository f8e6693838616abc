"""``@with_cyberark_secret`` in-process against the dev server (behaviour only; leaks: see the real-path test)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from cyberark_ops import Credential, Secret, scrub, with_cyberark_secret
from tests.hooks.conftest import Connections

PASSWORD = "Demo-PG-Passw0rd!"


def test_signature_hides_injected_and_call_scrubs_return(conns: Connections) -> None:
    conn = conns.conjur()

    @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password", user="prod/db/username")
    def fn(n: int, password: str, user: str) -> dict[str, Any]:
        assert isinstance(password, str)
        return {"n": n, "pw": password, "rows": [(user, password)], "nested": [[{"k": f"x{password}y"}]]}

    assert list(inspect.signature(fn).parameters) == ["n"]
    assert fn.__name__ == "fn"
    assert fn(3) == {"n": 3, "pw": "***", "rows": [("***", "***")], "nested": [[{"k": "x***y"}]]}
    assert len(scrub.registry()) == 0
    assert [e["action"] for e in conns.calls()].count("conjur.batch") == 1


def test_credential_and_exception_is_scrubbed_and_registry_cleared(conns: Connections) -> None:
    conn = conns.ccp()

    @with_cyberark_secret(vault_conn_id=conn, cred=Secret("Safe=DB-Prod;Object=pg-prod", as_credential=True))
    def fn(cred: Credential) -> None:
        raise ValueError(f"bad {cred.secret!r}")

    with pytest.raises(ValueError) as info:
        fn()
    assert "***" in str(info.value)
    assert len(scrub.registry()) == 0


def test_above_task_makes_no_call_at_parse_time(conns: Connections) -> None:
    from airflow.sdk import dag, task

    conn = conns.conjur()

    @dag(schedule=None)
    def d() -> None:
        @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password")
        @task
        def t(password: str) -> str:
            return password

        t()

    d()
    assert conns.calls() == []


def test_a_short_secret_is_refused_without_its_value(conns: Connections) -> None:
    conn = conns.conjur()

    @with_cyberark_secret(vault_conn_id=conn, port="prod/db/port")
    def fn(port: str) -> str:
        return port

    with pytest.raises(scrub.SecretTooShort) as info:
        fn()
    assert "5432" not in str(info.value)
    assert len(scrub.registry()) == 0

    @with_cyberark_secret(vault_conn_id=conn, allow_short_secret=True, port="prod/db/port")
    def ok(port: str) -> str:
        return port

    assert ok() == "***"


def test_above_task_virtualenv_is_refused_at_parse_time() -> None:
    from airflow.sdk import task

    from cyberark_ops.client import ConfigurationError

    with pytest.raises(ConfigurationError, match="another interpreter"):

        @with_cyberark_secret(password="prod/db/password")
        @task.virtualenv
        def t(password: str) -> None: ...


def test_an_async_function_is_refused_when_decorated() -> None:
    import pytest as _pytest

    from cyberark_ops import with_cyberark_secret
    from cyberark_ops.client import ConfigurationError as _ConfigurationError

    async def fetch_report(token: str) -> str:
        return token

    with _pytest.raises(_ConfigurationError, match="async functions are not supported yet"):
        with_cyberark_secret(token="prod/api/key")(fetch_report)
