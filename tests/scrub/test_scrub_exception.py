"""``scrub.scrub_exception``: in place, type and frames kept; and every way in uses it.

The ways in are the real ones against the dev server (and PostgreSQL for the operators); the
exceptions are those a careless task, a database or the backend really raise.
"""

from __future__ import annotations

import copy
import json
import subprocess
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from cyberark_ops import CyberArkHook, VaultedSqlOperator, scrub, vaulted, with_cyberark_secret
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.seed import demo_seed
from cyberark_ops.secrets import CyberArkSecretsBackend, VaultLookupFailed, reset_backend_state
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN
from tests.hooks.conftest import Connections
from tests.operators.conftest import CANARY, PG_REF, set_pg_password, vaulted_seed

# Sets the passwords of the shared test database roles: run apart from other processes (.ci/pytest-split).
pytestmark = pytest.mark.database_roles

SECRET = "xS-c@n\tary😀it's{{ ds }}$HOME`id`\\1%41-Zk9"


def _everything(error: BaseException) -> str:
    """All the text an exception can show: the formatted chain, and the repr of every attribute."""
    parts = ["".join(traceback.format_exception(type(error), error, error.__traceback__))]
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts += [repr(current), str(current), repr(current.args), repr(getattr(current, "__notes__", None))]
        parts += [repr(value) for value in vars(current).values()]
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "\n".join(parts)


def _absent(error: BaseException, value: str) -> None:
    text = _everything(error)
    for name, form in scrub.leak_forms(value).items():
        assert form not in text, name


@pytest.fixture
def conns(make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    """The dev server's demo seed, as ``tests/hooks`` has it."""
    yield Connections(make_server(), monkeypatch)


@pytest.fixture
def vault(make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    """The dev server with the operators' PostgreSQL account, as ``tests/operators`` has it."""
    found = Connections(make_server(vaulted_seed()), monkeypatch)
    found.ccp()
    yield found


@pytest.fixture
def registered() -> Iterator[scrub.Registry]:
    registry = scrub.Registry(mask=False)
    registry.register(SECRET, allow_short=True)
    yield registry
    registry.clear()


def _failing_subprocess(value: str) -> None:
    try:
        {}[value]  # a KeyError with the value, as the context
    except KeyError:
        try:
            subprocess.run(
                ["/bin/sh", "-c", 'printf %s "$0"; printf %s "$0" >&2; exit 3', value], check=True, capture_output=True
            )
        except subprocess.CalledProcessError as error:
            error.add_note(f"while logging in with {value!r}")
            raise


def test_in_place_args_notes_attributes_and_chains_type_and_frames_kept(registered: scrub.Registry) -> None:
    with pytest.raises(subprocess.CalledProcessError) as caught:
        _failing_subprocess(SECRET)
    error = caught.value
    frames_before = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert SECRET.encode() in error.output and isinstance(error.__context__, KeyError)
    assert scrub.scrub_exception(error, registered) is error
    assert type(error) is subprocess.CalledProcessError and error.returncode == 3
    assert [frame.name for frame in traceback.extract_tb(error.__traceback__)] == frames_before
    assert "_failing_subprocess" in frames_before
    assert error.output == b"***" and error.stderr == b"***" and error.cmd[-1] == "***"
    assert error.__notes__ == ['while logging in with "***"']
    assert error.__context__.args == ("***",)
    _absent(error, SECRET)


def test_an_exception_from_a_raise_from_none_loses_its_hidden_context(registered: scrub.Registry) -> None:
    """Raised ``from None``, the context is hidden from tracebacks on purpose, and what it holds may
    never have been registered (a ``JSONDecodeError``'s ``.doc`` is the whole document)."""
    document = '{"password": "' + SECRET + '"'
    with pytest.raises(ValueError) as caught:
        try:
            json.loads(document)
        except ValueError:
            raise ValueError("the stored connection is not JSON") from None
    assert caught.value.__context__ is not None
    scrub.scrub_exception(caught.value, registered)
    assert caught.value.__context__ is None and caught.value.__suppress_context__


class OwnStr(Exception):
    """A class whose message is built from data the scrub cannot reach."""

    def __init__(self, value: str) -> None:
        super().__init__("login failed")
        self._parts = (lambda: value,)

    def __str__(self) -> str:
        return f"login failed with {self._parts[0]()}"


class Slotted(Exception):
    __slots__ = ("secret",)


def test_text_out_of_reach_is_shown_scrubbed_and_slots_are_scrubbed(registered: scrub.Registry) -> None:
    error = OwnStr(SECRET)
    assert scrub.scrub_exception(error, registered) is error
    assert isinstance(error, OwnStr) and type(error).__name__ == "OwnStr"
    assert str(error) == "login failed with ***"
    _absent(error, SECRET)
    slotted = Slotted("x")
    slotted.secret = f"pw={SECRET}"
    scrub.scrub_exception(slotted, registered)
    assert slotted.secret == "pw=***"


def test_a_clean_exception_is_left_alone(registered: scrub.Registry) -> None:
    error = ValueError("nothing secret", 3)
    assert scrub.scrub_exception(error, registered) is error and error.args == ("nothing secret", 3)


# -- every way in -----------------------------------------------------------------------------------


def test_the_decorator_reraises_the_same_exception_scrubbed(conns: Connections) -> None:
    conn = conns.conjur()

    @with_cyberark_secret(vault_conn_id=conn, password="prod/db/password")
    def careless(password: str) -> None:
        _failing_subprocess(password)

    with pytest.raises(subprocess.CalledProcessError) as caught:
        careless()
    error = caught.value
    assert "_failing_subprocess" in [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert error.output == b"***" and isinstance(error.__context__, KeyError)
    _absent(error, "Demo-PG-Passw0rd!")


def test_the_hook_scrubs_what_it_raises(conns: Connections) -> None:
    """A value passed where a reference belongs: the error names the reference, which is the secret."""
    hook = CyberArkHook(conns.conjur())
    value = hook.get_secret("prod/db/password")
    with pytest.raises(Exception) as caught:
        hook.get_secret(f"prod/db/{value}")
    assert "***" in str(caught.value)
    _absent(caught.value, value)
    scrub.clear()


def test_the_vaulted_operators_scrub_what_the_database_raises(vault: Connections) -> None:
    """PostgreSQL quotes the value it could not cast: the password, in the driver's exception."""
    set_pg_password(CANARY)
    literal = "'" + CANARY.replace("'", "''") + "'"
    operators: list[Callable[[], Any]] = [
        lambda: VaultedSqlOperator(
            task_id="sql",
            vault_conn_id="cyberark_ccp",
            credential_ref=PG_REF,
            conn_type="postgres",
            sql=f"select {literal}::int",
        ),
        lambda: vaulted(SQLExecuteQueryOperator)(
            task_id="generic",
            vault_conn_id="cyberark_ccp",
            credential_ref=PG_REF,
            conn_type="postgres",
            conn_id="gt_nowhere",
            target_conn_id="gt_nowhere",
            sql=f"select {literal}::int",
        ),
    ]
    for build in operators:
        with pytest.raises(Exception) as caught:
            build().execute({})
        assert type(caught.value).__module__.startswith("psycopg"), "the driver's exception type is kept"
        assert "***" in str(caught.value)
        _absent(caught.value, CANARY)
        assert len(scrub.registry()) == 0


def test_the_secrets_backend_raises_without_the_document(make_server: Callable[..., DevServer], tmp_path: Path) -> None:
    """A stored connection that is not JSON: the parse error's ``.doc`` (the whole document, password
    included) must not travel with the backend's error."""
    seed = copy.deepcopy(demo_seed())
    seed["conjur"]["variables"].append(
        {"id": "airflow/dev/connections/broken", "value": '{"conn_type": "postgres", "password": "' + SECRET + '"'}
    )
    server = make_server(seed)
    info = server.info()
    key = tmp_path / "key"
    key.write_text(HOST_API_KEY)
    reset_backend_state()
    backend = CyberArkSecretsBackend(
        url=info["url"],
        ca_bundle=info["ca_cert"],
        api="conjur",
        login=HOST_LOGIN,
        api_key_file=str(key),
        account=info["conjur_account"],
        env="dev",
        connections_path="airflow/{env}/connections/{conn_id}",
    )
    try:
        with pytest.raises(VaultLookupFailed) as caught:
            backend.get_conn_value("broken")
    finally:
        reset_backend_state()
    assert caught.value.__context__ is None
    _absent(caught.value, SECRET)
