"""The fault matrix (issue 15): every fault the dev server can play, for each API and each way in.

Each case runs in-process, where the semantics are those of a task: ``CyberArkHook``, a
``VaultedSqlOperator``'s ``execute`` (on SQLite; on MariaDB for the rotation), a function under
``@with_cyberark_secret``, and ``CyberArkSecretsBackend``'s lookups. The fault comes from the dev
server's knobs (faults, latency, clock, rotation, revocation) or from the network (a closed port,
a listener that never accepts, a certificate from another CA). The outcome is asserted, not only
recorded: success (after the retries the audit log shows), or a failure whose message names the
API, the object and the remedy, and holds no form of any secret. After every case the vault's
objects hold exactly the versions they should, and the SQLite target only whole transactions.

One real Airflow run (``test_airflow_task_retry_succeeds_once_the_fault_clears``) proves that
Airflow's own task retry recovers once a persistent fault has cleared.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import itertools
import json
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops import CyberArkHook, VaultedSqlOperator, with_cyberark_secret
from cyberark_ops.client import PROCESS_TOKEN_CACHE, CyberArkError
from cyberark_ops.client.pacing import MACHINE_WIDE
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.knobs import Fault
from cyberark_ops.devserver.seed import demo_seed
from cyberark_ops.devserver.tls import ensure_tls_files
from cyberark_ops.scrub import leak_forms
from cyberark_ops.secrets import CyberArkSecretsBackend, reset_backend_state
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import ccp_connection, connection, find_leaks, run_dags, stored_places
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN, PVWA_PASSWORD, PVWA_USER
from tests.guarantees import report
from tests.operators.conftest import CANARY, need_server, set_my_password

# The rotation cases set the MariaDB role flt_my's password: xdist runs them as one unit (tests/conftest.py).
# The other cases mostly wait on the faults' real timeouts.
pytestmark = [pytest.mark.database_roles, pytest.mark.waits]

APIS = ("conjur", "ccp", "pvwa")
API_NAMES = {"conjur": "Conjur", "ccp": "CCP", "pvwa": "PVWA"}
WAYS = ("hook", "operator", "decorator", "backend")
WAY_NAMES = {
    "hook": "CyberArkHook",
    "operator": "VaultedSqlOperator",
    "decorator": "@with_cyberark_secret",
    "backend": "CyberArkSecretsBackend (cache_ttl_seconds=0)",
}

# -- the vault: the demo seed plus one object per API that the matrix fetches ---------------------------

CONJUR_VAR = "prod/db/faults-password"
ACCOUNT = "flt-maria"
ACCOUNT_TARGET = f"vault:DB-Prod/{ACCOUNT}"
DB_USER = "flt_my"
CONJUR_VALUE = f"{CANARY}-cj"
VAULT_VALUE = f"{CANARY}-va"
REVOKED_HOST = "airflow/revoked"
REVOKED_KEY = "3zq8r1m0x7k2c9v4b6n5t1y8u3i0o2p7a5s9d4f6g1h8j3k0l2m7q"
LOCKED_USER, LOCKED_PASSWORD = "locked_user", "Locked-Dev-Pass1"
REFS = {"conjur": CONJUR_VAR, "ccp": f"ccp:Safe=DB-Prod;Object={ACCOUNT}", "pvwa": f"pvwa:DB-Prod/{ACCOUNT}"}
MISSING = {
    "conjur": "prod/db/faults-missing",
    "ccp": "ccp:Safe=DB-Prod;Object=flt-missing",
    "pvwa": "pvwa:DB-Prod/flt-missing",
}
# The endpoint that hands out the secret: where a fault hurts most (PVWA's is not idempotent).
FETCH_ENDPOINT = {"conjur": "conjur.[rb][ea]t*", "ccp": "ccp.get_password", "pvwa": "pvwa.retrieve_password"}

FETCH_ACTIONS = ("retrieve", "batch", "get_password", "retrieve_password")
# Short enough that a fault costs a fraction of a second; CCP must give up on the Vault before we do.
MATRIX_EXTRAS: dict[str, Any] = {
    "connect_timeout": 0.5,
    "max_retries": 1,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "deadline": 10,
}
# CCP needs read_timeout above its whole-second connection_timeout; the others can time out sooner.
# Not lower: a loaded CI machine must not time out on answers that were never delayed.
READ_TIMEOUT = {"conjur": 1.0, "ccp": 1.2, "pvwa": 1.0}
SLOW = 0.3  # seconds of latency beyond read_timeout
CHANGE_WINDOW = 1.0
CCP_EXTRAS = {"connection_timeout": 1, "password_change_wait": 0.4, "password_change_retries": 4}


def faults_seed() -> dict[str, Any]:
    seed = copy.deepcopy(demo_seed())
    conjur = seed["conjur"]
    conjur["hosts"].append({"id": REVOKED_HOST, "api_key": REVOKED_KEY})
    conjur["variables"].append({"id": CONJUR_VAR, "value": CONJUR_VALUE})
    conjur["permits"].append(
        {"role": f"host:{REVOKED_HOST}", "privileges": ["read", "execute"], "resources": [CONJUR_VAR]}
    )
    seed["vault"]["accounts"].append(
        {
            "name": ACCOUNT,
            "safe": "DB-Prod",
            "userName": DB_USER,
            "address": "127.0.0.1",
            "platformId": "MySQL",
            "secret": VAULT_VALUE,
            "properties": {"Port": 3306, "Database": "test"},
        }
    )
    return seed


# -- what a case saw -----------------------------------------------------------------------------------


@dataclass
class Seen:
    value: str | None = None
    """The secret the way in handed over (None for the operator: it keeps it to itself)."""
    error: BaseException | None = None
    note: str = ""


class Lab:
    """The dev server, the connections and backends pointing at it, and the per-case resets."""

    def __init__(self, server: DevServer, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.app = server.app
        self.info = server.info()
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        self.db = tmp / "target.db"
        with sqlite3.connect(self.db) as db:
            db.execute("create table loads (n integer not null)")
        monkeypatch.setenv("AIRFLOW_CONN_FLT_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(self.db)}))
        monkeypatch.setenv(
            "AIRFLOW_CONN_FLT_MARIA",
            json.dumps(
                {
                    "conn_type": "mysql",
                    "host": "127.0.0.1",
                    "port": 3306,
                    "schema": "test",
                    "login": DB_USER,
                    "extra": {"client": "mysql-connector-python"},
                }
            ),
        )
        (tmp / "conjur.key").write_text(HOST_API_KEY)
        (tmp / "pvwa.pw").write_text(PVWA_PASSWORD)
        (tmp / "locked.pw").write_text(LOCKED_PASSWORD)
        self.other_ca = str(ensure_tls_files(tmp / "other-ca").ca_cert)
        self.rotations = itertools.count(1)
        self.revoked_key = REVOKED_KEY
        """The revoked host's key as the connections know it: each revocation rotates it."""
        self.secrets = {
            "conjur api key": HOST_API_KEY,
            "revoked api key": REVOKED_KEY,
            "pvwa password": PVWA_PASSWORD,
            "locked password": LOCKED_PASSWORD,
        }

    # -- state -----------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.app.knobs.clear_faults()
        for glob in list(self.app.knobs.latency):
            self.app.knobs.set_latency(glob, 0)
        MACHINE_WIDE.forget()
        PROCESS_TOKEN_CACHE.clear()
        reset_backend_state()

    def versions(self) -> dict[str, list[str]]:
        """Every stored version of the matrix's objects, oldest first (what must never be lost)."""
        conjur = self.app.conjur
        cj = [conjur.read(CONJUR_VAR, v)[0] for v in conjur.versions(CONJUR_VAR)]
        account = self.app.vault.account(self.account_id, self.app.clock.now())
        assert account is not None
        return {
            "conjur": [b.decode() for b in cj if b is not None],
            "vault": [v.value for v in account.versions],
        }

    @property
    def account_id(self) -> str:
        return next(a.id for a in self.app.vault.accounts(self.app.clock.now()) if a.name == ACCOUNT)

    def current(self, api: str) -> str:
        return self.versions()["conjur" if api == "conjur" else "vault"][-1]

    def rows(self) -> int:
        with sqlite3.connect(self.db) as db:
            return int(db.execute("select count(*) from loads").fetchone()[0])

    def calls(self, since: int) -> list[dict[str, Any]]:
        return [e for e in self.app.audit.events(since) if not str(e["action"]).startswith("dev.")]

    def last_seq(self) -> int:
        events = self.app.audit.events()
        return int(events[-1]["seq"]) if events else 0

    def rotate(self, api: str, change_window: float = 0.0) -> str:
        """A CPM rotation to a new value (kept in ``secrets`` for the leak search)."""
        value = f"{CANARY}-rot{next(self.rotations)}"
        self.secrets[f"rotated {value[-5:]}"] = value
        target = f"conjur:{CONJUR_VAR}" if api == "conjur" else ACCOUNT_TARGET
        self.app.rotate(target, value=value, change_window=change_window)
        return value

    # -- connections and backends -----------------------------------------------------------------------

    def conn(self, api: str, *, url: str | None = None, **extra: Any) -> str:
        conn_id = f"flt_{api}"
        login: str | None
        password: str | None
        if api == "conjur":
            login, password = extra.pop("login", HOST_LOGIN), extra.pop("password", HOST_API_KEY)
            settings = {"api": "conjur", "account": self.info["conjur_account"]}
        elif api == "ccp":
            login, password = None, None
            settings = {
                "api": "ccp",
                "app_id": "AirflowProd",
                "client_cert": self.info["client_cert"],
                "client_key": self.info["client_key"],
                **CCP_EXTRAS,
            }
        else:
            login, password = extra.pop("login", PVWA_USER), extra.pop("password", PVWA_PASSWORD)
            settings = {"api": "pvwa"}
        conn = {
            "conn_type": "cyberark",
            "host": url or self.info["url"],
            "login": login,
            "password": password,
            "extra": {
                "ca_bundle": self.info["ca_cert"],
                **MATRIX_EXTRAS,
                "read_timeout": READ_TIMEOUT[api],
                **settings,
                **extra,
            },
        }
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    def backend(self, api: str, *, url: str | None = None, **extra: Any) -> CyberArkSecretsBackend:
        transport = {
            "url": url or self.info["url"],
            "ca_bundle": self.info["ca_cert"],
            **MATRIX_EXTRAS,
            "read_timeout": READ_TIMEOUT[api],
        }
        # No value cache: each lookup reaches the vault, as the first lookup of a task process does.
        caches = {"cache_ttl_seconds": 0, "negative_cache_ttl_seconds": 0}
        if api == "conjur":
            settings: dict[str, Any] = {
                "api": "conjur",
                "login": HOST_LOGIN,
                "api_key_file": str(self.tmp / "conjur.key"),
                "account": self.info["conjur_account"],
                "variables_path": "{variable}",
            }
        elif api == "ccp":
            settings = {
                "api": "ccp",
                "app_id": "AirflowProd",
                "client_cert": self.info["client_cert"],
                "client_key": self.info["client_key"],
                "connections_path": "ccp:Safe=DB-Prod;Object={conn_id}",
                "conn_type": "mysql",
                **CCP_EXTRAS,
            }
        else:
            settings = {
                "api": "pvwa",
                "login": PVWA_USER,
                "password_file": str(self.tmp / "pvwa.pw"),
                "connections_path": "pvwa:DB-Prod/{conn_id}",
                "conn_type": "mysql",
            }
        return CyberArkSecretsBackend(**{**transport, **caches, **settings, **extra})


# -- the four ways in ----------------------------------------------------------------------------------

INSERTS = ["insert into loads (n) values (1)", "insert into loads (n) values (2)"]


def _operator_class(between: Callable[[], None] | None) -> type[VaultedSqlOperator]:
    class FaultsSql(VaultedSqlOperator):
        """Lets the CPM act right after the fetch, before the database sees the login."""

        def fetch_credential(self) -> Any:
            cred = super().fetch_credential()
            if between is not None and not getattr(self, "_between_done", False):
                self._between_done = True
                between()
            return cred

    return FaultsSql


def fetch(
    lab: Lab,
    api: str,
    way: str,
    ref: str,
    conn_kwargs: dict[str, Any],
    between: Callable[[], None] | None = None,
    use: Callable[[str], None] | None = None,
) -> str | None:
    """One fetch through ``way``; ``between`` runs after the fetch, ``use`` gets the value."""
    if way == "hook":
        hook = CyberArkHook(lab.conn(api, **conn_kwargs))
        try:
            value = hook.get_secret(ref)
        finally:
            hook.close()
        if between:
            between()
        if use:
            use(value)
        return value
    if way == "operator":
        on_maria = use is not None
        op = _operator_class(between)(
            task_id=f"faults_{api}",
            vault_conn_id=lab.conn(api, **conn_kwargs),
            credential_ref=ref,
            conn_id="flt_maria" if on_maria else "flt_sqlite",
            conn_extra={"client": "mysql-connector-python"} if on_maria else None,
            sql="select current_user()" if on_maria else INSERTS,
        )
        op.execute({})
        return None
    if way == "decorator":
        got: list[str] = []

        @with_cyberark_secret(vault_conn_id=lab.conn(api, **conn_kwargs), secret=ref)
        def task_body(secret: str) -> str:
            got.append(secret)
            if between:
                between()
            if use:
                use(secret)
            return "done"

        assert task_body() == "done"
        return got[0]
    backend = lab.backend(api, **conn_kwargs)
    if api == "conjur":
        value = backend.get_variable(ref)
    else:
        conn = backend.get_connection(_object_name(ref))
        value = None if conn is None else conn.password
    if value is not None:
        if between:
            between()
        if use:
            use(value)
    return value


def _object_name(ref: str) -> str:
    return ref.rsplit("=", 1)[-1] if ref.startswith("ccp:") else ref.rsplit("/", 1)[-1]


# -- network faults that are no dev server knob ----------------------------------------------------------


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"https://127.0.0.1:{port}"


@contextlib.contextmanager
def never_accepting() -> Iterator[str]:
    """A listener whose backlog is full: the kernel drops new SYNs, so connecting times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        try:
            yield f"https://127.0.0.1:{port}"
        finally:
            for filler in fillers:
                filler.close()


# -- the matrix ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultCase:
    key: str
    label: str
    not_for: dict[str, str]
    """API -> why this fault cannot happen there."""


FAULTS = (
    FaultCase("01-server-down", "server down (connection refused)", {}),
    FaultCase("02-connect-timeout", "connect timeout (SYN never answered)", {}),
    FaultCase("03-slow-response", f"slow response (answers {SLOW:g}s after read_timeout)", {}),
    FaultCase("04-http-500", "HTTP 500 once", {}),
    FaultCase("05-http-502", "HTTP 502 once", {}),
    FaultCase("06-http-503", "HTTP 503 once", {}),
    FaultCase("07-429-retry-after", "HTTP 429 once, Retry-After: 1", {}),
    FaultCase("08-429-no-retry-after", "HTTP 429 once, no Retry-After", {}),
    FaultCase(
        "09-token-expired",
        "token expired mid-task (dev clock +1300s between two fetches)",
        {"ccp": "CCP authenticates the application on every request (AppID, client certificate): no token to expire"},
    ),
    FaultCase("10-revoked-identity", "revoked identity", {}),
    FaultCase("11-http-403", "HTTP 403 on the fetch", {}),
    FaultCase("12-not-found", "404: the object does not exist", {}),
    FaultCase("13-malformed-json", "malformed JSON (200, truncated body)", {}),
    FaultCase("14-wrong-content-type", "wrong content type (200, HTML page)", {}),
    FaultCase("15-tls-other-ca", "TLS certificate from another CA", {}),
    FaultCase("16-rotation-before-use", "rotation between fetch and use (MariaDB login)", {}),
    FaultCase(
        "17-password-change",
        f"PasswordChangeInProcess (CPM change window {CHANGE_WINDOW:g}s)",
        {"conjur": "Conjur has no CPM change window: a new version replaces the value atomically"},
    ),
)
CASES = [
    pytest.param(api, way, fault, id=f"{api}-{way}-{fault.key}")
    for fault in FAULTS
    for api in APIS
    if api not in fault.not_for
    for way in WAYS
]
REVOKED_HOW = {
    "conjur": "its API key rotated and every token revoked mid-task",
    "ccp": "its AppID disabled",
    "pvwa": "the Vault user locked",
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("faults")
    with DevServer(faults_seed(), state_dir=tmp / "devserver") as server, pytest.MonkeyPatch.context() as mp:
        yield Lab(server, tmp, mp)
    reset_backend_state()
    PROCESS_TOKEN_CACHE.clear()


SHAPES = (
    (re.compile(r"127\.0\.0\.1:[0-9]+"), "127.0.0.1:<port>"),
    (re.compile(r"[0-9]+\.[0-9]+s\b"), "<t>s"),
    (re.compile(r"'/[^']*\.pem'"), "'<ca.pem>'"),
    (re.compile(r"id=[0-9]+_[0-9]+|'[0-9]+_[0-9]+'|/[0-9]+_[0-9]+/"), "<account id>"),
)


def shape(message: str) -> str:
    """The message with what changes from run to run (ports, durations, paths) replaced."""
    for pattern, replacement in SHAPES:
        message = pattern.sub(replacement, message)
    return message


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _summary(calls: list[dict[str, Any]]) -> str:
    """``retrieve 503, retrieve 200``: the vault calls of a case, from the audit log."""
    return ", ".join(f"{str(c['action']).split('.', 1)[1]} {c['status']}" for c in calls)


@pytest.mark.parametrize(("api", "way", "fault"), CASES)
def test_fault(lab: Lab, api: str, way: str, fault: FaultCase, caplog: pytest.LogCaptureFixture) -> None:
    lab.reset()
    ref = REFS[api]
    expected_versions = lab.versions()
    rows = lab.rows()
    start = lab.last_seq()
    expect_ok = False
    expected_value: str | None = lab.current(api)
    remedy = ""
    seen = Seen()
    conn: dict[str, Any] = {}
    endpoint = FETCH_ENDPOINT[api]
    knobs = lab.app.knobs
    pvwa_fetch = api == "pvwa"  # its retrieve is not idempotent: never resent after a 5xx or a timeout

    def run(**kwargs: Any) -> None:
        try:
            seen.value = fetch(lab, api, way, ref, conn, **kwargs)
        except Exception as error:
            seen.error = error

    with contextlib.ExitStack() as stack:
        key = fault.key
        if key == "01-server-down":
            conn["url"] = stack.enter_context(closed_port())
            remedy = "check that base_url is right and the server is up"
        elif key == "02-connect-timeout":
            conn["url"] = stack.enter_context(never_accepting())
            remedy = "check that base_url is right and the server is up"
        elif key == "03-slow-response":
            knobs.set_latency(endpoint, READ_TIMEOUT[api] + SLOW)
            # The server still answers the request the client gave up on: let it land in this case.
            stack.callback(time.sleep, SLOW + 0.2)
            remedy = "check that base_url is right and the server is up"
        elif key in ("04-http-500", "05-http-502", "06-http-503"):
            knobs.add_fault(Fault(endpoint=endpoint, status=int(key[-3:]), count=1))
            expect_ok = not pvwa_fetch
            remedy = "retry the task once the server is healthy"
        elif key.startswith(("07-429", "08-429")):
            knobs.add_fault(
                Fault(endpoint=endpoint, status=429, count=1, retry_after=1 if key.startswith("07") else None)
            )
            expect_ok = True
        elif key == "09-token-expired":
            run()  # the first fetch of the task: a token (Conjur) or session (backend on PVWA) to keep
            assert seen.error is None, seen.error
            lab.app.clock.advance(1300)
            start, rows = lab.last_seq(), lab.rows()
            expect_ok = True
        elif key == "10-revoked-identity":
            if api == "conjur":
                conn["login"] = f"host/{REVOKED_HOST}"
                if way == "backend":
                    key_file = lab.tmp / "revoked.key"
                    key_file.write_text(lab.revoked_key)
                    conn["api_key_file"] = str(key_file)
                else:
                    conn["password"] = lab.revoked_key
                run()  # a token is cached...
                assert seen.error is None, seen.error
                role = lab.app.conjur.find_role("host", REVOKED_HOST)
                assert role is not None
                lab.revoked_key = lab.app.conjur.rotate_api_key(role)  # ...then the identity is revoked
                lab.secrets[f"revoked api key {lab.revoked_key[:4]}"] = lab.revoked_key
                lab.app.revoke_tokens()
                start, rows = lab.last_seq(), lab.rows()
                remedy = "the API key"
            elif api == "ccp":
                conn["app_id"] = "AirflowDisabled"
                remedy = "check the AppID"
            else:
                conn["login"] = LOCKED_USER
                conn.update(
                    {"password_file": str(lab.tmp / "locked.pw")} if way == "backend" else {"password": LOCKED_PASSWORD}
                )
                remedy = "ask the Vault administrator"
        elif key == "11-http-403":
            knobs.add_fault(Fault(endpoint=endpoint, status=403))
            remedy = "privilege|lacks"
        elif key == "12-not-found":
            ref = MISSING[api]
            remedy = "check (the|its)"
        elif key == "13-malformed-json" or key == "14-wrong-content-type":
            knobs.add_fault(Fault(endpoint=endpoint, kind="malformed" if key.startswith("13") else "content_type"))
            remedy = "check that base_url points at"
        elif key == "15-tls-other-ca":
            conn["ca_bundle"] = lab.other_ca
            remedy = "check ca_bundle"
        elif key == "16-rotation-before-use":
            need_server(3306, "MariaDB")
            set_my_password(lab.current(api), user=DB_USER)
            rotated: list[str] = []

            def cpm() -> None:
                rotated.append(lab.rotate(api))
                set_my_password(rotated[-1], user=DB_USER)

            def login(value: str) -> None:
                import mysql.connector

                mysql.connector.connect(
                    host="127.0.0.1", port=3306, user=DB_USER, password=value, database="test"
                ).close()

            run(between=cpm, use=login)
            expected_versions["conjur" if api == "conjur" else "vault"].append(rotated[0])
            if way != "operator":
                # The way in hands the value over and is done: the caller's login fails. The next
                # try (Airflow's task retry, a new process) fetches anew.
                assert seen.error is not None and "Access denied" in str(seen.error), seen.error
                first = seen.error
                seen.error = None
                reset_backend_state()
                PROCESS_TOKEN_CACHE.clear()
                run(use=login)
                seen.note = f"the login with the fetched value fails ({type(first).__name__}: {shape(str(first))}); "
                seen.note += "the next fetch (the task's retry) gets the rotated value and logs in"
                _assert_clean(lab, first, caplog)
            expected_value = rotated[0]
            expect_ok = True
        elif key == "17-password-change":
            new = lab.rotate(api, change_window=CHANGE_WINDOW)
            expected_versions["vault"].append(new)
            # CCP flags the change and the client waits it out; PVWA's retrieve shows no flag and
            # answers the value still current in the Vault.
            expected_value = new if api == "ccp" else expected_value
            expect_ok = True
        if key != "16-rotation-before-use":
            run()
    if fault.key == "17-password-change":
        lab.app.clock.advance(CHANGE_WINDOW + 1)  # let a PVWA-side change finish before counting versions
    calls = lab.calls(start)
    outcome = _judge(lab, api, way, fault, seen, expect_ok, expected_value, remedy, calls, caplog)
    assert lab.versions() == expected_versions, "the vault lost or half-changed a version"
    if way == "operator" and fault.key != "16-rotation-before-use":
        assert lab.rows() == rows + (len(INSERTS) if expect_ok else 0), "partial writes in the SQLite target"
    elif way == "operator":
        assert lab.rows() == rows
    report.record(
        "faults",
        f"{fault.key} {api} {way}",
        {"API": API_NAMES[api], "way in": WAY_NAMES[way], "fault": _label(api, fault), "outcome": outcome},
    )


def _label(api: str, fault: FaultCase) -> str:
    if fault.key == "10-revoked-identity":
        return f"revoked identity ({REVOKED_HOW[api]})"
    return fault.label


def _assert_clean(lab: Lab, error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    text = "\n".join(f"{e!s}\n{e!r}" for e in _chain(error)) + "\n" + caplog.text
    hits = [
        f"{form} of {name}"
        for name, value in {**lab.secrets, "conjur value": CONJUR_VALUE, "vault value": VAULT_VALUE}.items()
        for form, shown_ in leak_forms(value).items()
        if len(shown_) >= 5 and shown_ in text
    ]
    assert hits == [], f"secret in the failure or the logs: {hits}"


def _judge(
    lab: Lab,
    api: str,
    way: str,
    fault: FaultCase,
    seen: Seen,
    expect_ok: bool,
    expected_value: str | None,
    remedy: str,
    calls: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> str:
    """Asserts the outcome and returns its description for the report."""
    retries = sum(1 for c in calls if c["status"] >= 400 or c["fault"])
    if seen.error is not None:
        _assert_clean(lab, seen.error, caplog)
    if fault.key == "12-not-found" and way == "backend":
        assert seen.error is None and seen.value is None, seen.error
        return "None: Airflow goes on to its next secrets backend (the id is not in this vault); calls: " + _summary(
            calls
        )
    if expect_ok:
        assert seen.error is None, f"expected success, got {type(seen.error).__name__}: {seen.error}"
        if way != "operator":
            assert seen.value == expected_value, "the way in handed over another value than the vault's"
        detail = f"calls: {_summary(calls)}"
        if seen.note:
            return f"{seen.note}; {detail}"
        if fault.key == "17-password-change":
            if api == "ccp":
                return f"success: the new value, after {len(calls) - 1} wait(s) of password_change_wait; {detail}"
            return f"success: the value still current, as PVWA flags no change in progress; {detail}"
        if fault.key == "16-rotation-before-use":
            fetches = [c for c in calls if str(c["action"]).split(".", 1)[1] in FETCH_ACTIONS]
            assert len(fetches) == 2 and "fetching the credential again once" in caplog.text
            return f"success: MariaDB rejected the first login, the operator fetched again once and logged in; {detail}"
        if retries == 0 and api == "pvwa" and way != "backend":
            return f"success: each fetch logs on and off, so no session outlives it; {detail}"
        return f"success after {retries} failed call(s); {detail}"
    assert seen.error is not None, f"expected a failure, got success ({_summary(calls)})"
    message = str(seen.error)
    assert isinstance(seen.error, CyberArkError) or type(seen.error).__name__ == "VaultLookupFailed", (
        f"a raw {type(seen.error).__name__} reached the task: {message}"
    )
    assert API_NAMES[api] in message, f"the message does not name the API: {message}"
    assert re.search(remedy, message, re.IGNORECASE), f"no remedy ({remedy!r}) in: {message}"
    object_name = _object_name(MISSING[api] if fault.key == "12-not-found" else REFS[api])
    assert object_name in message, f"the message does not name the object {object_name!r}: {message}"
    return f"fails ({type(seen.error).__name__}): {shape(message)}"


def test_inapplicable_faults_say_why() -> None:
    for fault in FAULTS:
        for api, why in fault.not_for.items():
            assert api in APIS and why
            for way in WAYS:
                report.record(
                    "faults",
                    f"{fault.key} {api} {way}",
                    {"API": API_NAMES[api], "way in": WAY_NAMES[way], "fault": fault.label, "outcome": f"n/a ({why})"},
                )


# -- the real path: Airflow's own task retry once the fault clears ---------------------------------------

DAGS = Path(__file__).resolve().parent / "dags_faults"
RETRY_DAG = "cyberark_faults_retry"
RETRY_TASKS = {"conjur_hook": "conjur", "ccp_operator": "ccp", "pvwa_decorator": "pvwa"}
RETRY_WAYS = {"conjur": "hook", "ccp": "operator", "pvwa": "decorator"}
RETRY_MAX = 1
# Every fetch of one try: max_retries + 1 attempts, or one for PVWA's retrieve (never resent).
FIRST_TRY_ATTEMPTS = {"conjur": RETRY_MAX + 1, "ccp": RETRY_MAX + 1, "pvwa": 1}


@pytest.mark.airflow
def test_airflow_task_retry_succeeds_once_the_fault_clears(tmp_path: Path) -> None:
    with DevServer(faults_seed(), state_dir=tmp_path / "devserver") as server:
        info = server.info()
        for api in APIS:
            server.app.knobs.add_fault(Fault(endpoint=FETCH_ENDPOINT[api], status=503, count=FIRST_TRY_ATTEMPTS[api]))
        common = {"max_retries": RETRY_MAX}
        env = {
            "AIRFLOW_CONN_FLT_CONJUR": connection(
                server, login=HOST_LOGIN, password=HOST_API_KEY, api="conjur", account=info["conjur_account"], **common
            ),
            "AIRFLOW_CONN_FLT_CCP": ccp_connection(server, **common),
            "AIRFLOW_CONN_FLT_PVWA": connection(server, login=PVWA_USER, password=PVWA_PASSWORD, api="pvwa", **common),
            "AIRFLOW_CONN_FLT_SQLITE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "target.db")}),
        }
        stack = AirflowStack(tmp_path / "home", DAGS, env)
        dag_run = run_dags(stack, [RETRY_DAG], timeout=240)[RETRY_DAG]
        calls = [e for e in server.app.audit.events() if not str(e["action"]).startswith("dev.")]
    with sqlite3.connect(stack.home / "airflow.db") as db:
        tries = dict(
            db.execute(
                "select task_id, try_number from task_instance where dag_id=? and run_id=?",
                (RETRY_DAG, dag_run.run_id),
            ).fetchall()
        )
    assert dag_run.state == "success", dag_run.explain()
    assert dag_run.task_states == dict.fromkeys(RETRY_TASKS, "success"), dag_run.explain()
    assert all(tries[task_id] >= 2 for task_id in RETRY_TASKS), f"each task needed a retry: {tries}"
    logs = {path: path.read_text(errors="replace") for path in stack.task_log_files(RETRY_DAG)}
    forms = {
        **{f"conjur {k}": v for k, v in leak_forms(CONJUR_VALUE).items()},
        **{f"vault {k}": v for k, v in leak_forms(VAULT_VALUE, username=DB_USER).items()},
    }
    assert find_leaks(stored_places(stack, [RETRY_DAG]), forms) == []
    for task_id, api in RETRY_TASKS.items():
        failed = [
            path.name
            for path, text in logs.items()
            if task_id in str(path) and "HTTP 503" in text and f"{API_NAMES[api]} " in text and REFS[api] in text
        ]
        assert failed, f"no try of {task_id} failed naming {API_NAMES[api]}, the 503 and {REFS[api]}"
        fetches = [c for c in calls if fnmatch.fnmatchcase(str(c["action"]), FETCH_ENDPOINT[api])]
        statuses = [c["status"] for c in fetches]
        assert statuses == [503] * FIRST_TRY_ATTEMPTS[api] + [200], (task_id, statuses)
        report.record(
            "faults",
            f"18-airflow-retry {api} {RETRY_WAYS[api]}",
            {
                "API": API_NAMES[api],
                "way in": f"{WAY_NAMES[RETRY_WAYS[api]]} in a real DAG run (LocalExecutor)",
                "fault": f"HTTP 503 on every fetch of one try ({FIRST_TRY_ATTEMPTS[api]} answer(s))",
                "outcome": f"the try that met the 503 failed naming {API_NAMES[api]}, the 503 and the reference; "
                f"Airflow's retry (retry_delay=1s) succeeded on try {tries[task_id]}; "
                f"fetch answers: {', '.join(map(str, statuses))}",
            },
        )
