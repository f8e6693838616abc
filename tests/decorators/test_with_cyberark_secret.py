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

    # Issue 24: a value that short is never searched for (it occurs in ordinary data), so the
    # function's return value comes back as it is; the warning says so.
    assert ok() == "5432"


def test_above_task_virtualenv_is_refused_at_parse_time() -> None:
    from airflow.sdk import task

    from cyberark_ops.client import ConfigurationError

    with pytest.raises(ConfigurationError, match="another interpreter"):

        @with_cyberark_secret(password="prod/db/password")
        @task.virtualenv
        def t(password: str) -> None: ...


def test_an_async_function_gets_its_secrets_and_a_scrubbed_result(conns: Connections) -> None:
    import asyncio

    conn = conns.conjur()

    @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password")
    async def report(n: int, password: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"n": n, "pw": password}

    assert inspect.iscoroutinefunction(report)
    assert list(inspect.signature(report).parameters) == ["n"]
    assert asyncio.run(report(2)) == {"n": 2, "pw": "***"}
    assert len(scrub.registry()) == 0

    @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password")
    async def fails(password: str) -> None:
        raise RuntimeError(f"login failed for {password}")

    with pytest.raises(RuntimeError) as info:
        asyncio.run(fails())
    assert PASSWORD not in str(info.value) and "***" in str(info.value)
    assert len(scrub.registry()) == 0


def test_each_secret_can_name_its_own_vault_connection(conns: Connections) -> None:
    conjur, ccp = conns.conjur(), conns.ccp()

    @with_cyberark_secret(
        vault_conn_id=conjur,
        password="prod/db/password",
        pg=Secret("Safe=DB-Prod;Object=pg-prod", as_credential=True, vault_conn_id=ccp),
    )
    def fn(password: str, pg: Credential) -> tuple[str, str | None, bool]:
        return password, pg.username, pg.secret != password

    assert fn() == ("***", "etl_user", True)
    assert {e["api"] for e in conns.calls()} == {"conjur", "ccp"}


def test_under_a_source_shipping_task_decorator_is_refused_at_parse_time() -> None:
    from airflow.sdk import task

    from cyberark_ops.client import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"under @task\.virtualenv"):

        @task.virtualenv(requirements=[])
        @with_cyberark_secret(password="prod/db/password")
        def below_venv(password: str) -> None: ...

    with pytest.raises(ConfigurationError, match=r"under @task\.external_python"):

        @task.external_python(python="/usr/bin/python3")
        @with_cyberark_secret(password="prod/db/password")
        def below_external(password: str) -> None: ...

    with pytest.raises(ConfigurationError, match="another interpreter"):

        @with_cyberark_secret(password="prod/db/password")
        @task.external_python(python="/usr/bin/python3")
        def above_external(password: str) -> None: ...

    # @task.docker / @task.kubernetes come with providers not installed here: the check reads the
    # decorator names in the source, so stand-ins with those names are refused the same way.
    stand_in = type("Task", (), {"docker": staticmethod(lambda f: f), "kubernetes": staticmethod(lambda f: f)})()
    with pytest.raises(ConfigurationError, match=r"under @stand_in\.docker"):

        @stand_in.docker
        @with_cyberark_secret(password="prod/db/password")
        def below_docker(password: str) -> None: ...

    with pytest.raises(ConfigurationError, match=r"under @stand_in\.kubernetes"):

        @stand_in.kubernetes
        @with_cyberark_secret(password="prod/db/password")
        def below_kubernetes(password: str) -> None: ...


def test_task_cyberark_is_registered_and_plain_task_still_works(conns: Connections) -> None:
    from airflow.sdk import dag, task

    conn = conns.conjur()

    @dag(schedule=None)
    def d() -> None:
        @task.cyberark(secrets={"password": "prod/db/password"}, vault_conn_id=conn, retries=2)
        def vaulted_task(n: int, password: str) -> list[Any]:
            return [n, password]

        @task
        def plain(x: list[Any]) -> int:
            return len(x)

        plain(vaulted_task(1))

    built = d()
    assert conns.calls() == [], "nothing fetched at parse time"
    op: Any = built.get_task("vaulted_task")
    assert op.retries == 2 and type(op).__name__ == "_PythonDecoratedOperator"
    assert list(inspect.signature(op.python_callable).parameters) == ["n"]
    assert op.python_callable(5) == [5, "***"]
    assert built.get_task("plain").python_callable([1, 2]) == 2
