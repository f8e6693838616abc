"""No trace of a credential anywhere in Airflow, for every way into cyberark-ops, on the real path.

One stack (api-server + scheduler with LocalExecutor, parallelism 4, + dag-processor; shared with
other modules' DAGs, ``tests/airflow/shared_stack.py``) runs ``dags_leaks/guarantee_leaks.py``: the
hook, ``@with_cyberark_secret`` (with a 4 KB value and in a failing task with a failure callback),
the secrets backend for a connection and a variable (in code and in templated fields),
``VaultedSqlOperator`` on SQLite, PostgreSQL and MariaDB, the generic ``vaulted()`` wrapper, and a
``BashOperator`` given the secret in its environment; and the hostile cases of issue 24: values
escaped two or three times (common-sql's ``Operator output is`` line of a JSON row, ``%r`` of
``json.dumps``, a callback's ``%r`` of an exception holding ``repr(secret)``, ``Returned value
was:`` of ``repr(conn)``), ``repr`` quoting by the surrounding string, a log handler bound at import
time, nested ``task_scope``, XCom of attrs classes and of objects with ``serialize()``, exceptions
with the secret in attributes and context, and writes straight to file descriptors. Each feature
fetches its own canary, so a hit names the feature; the hostile canaries hold a tab, a non-BMP
emoji, ``'`` without ``"``, ``{{ ds }}``, ``$HOME``, backticks, ``\\1`` and ``%41``, one of them 2
KB long. The search uses ``scrub.leak_forms``, compositions of up to three escapes included.
Afterwards every form of every canary is searched in every file under ``AIRFLOW_HOME`` (task logs,
and the scheduler's, dag-processor's and api-server's consoles), in every table of the metadata DB,
and in the environment of the processes that were not meant to receive it. ``dag.test()`` would
prove nothing here: it never masks."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.connections import demo_conjur_connection
from cyberark_ops.scrub import leak_forms
from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import FAST_EXTRAS, DagRun, ccp_connection, find_leaks, stored_places
from tests.airflow.shared_stack import StackPart, shared_stack_part
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN
from tests.guarantees import report
from tests.masking import masked_as_one
from tests.operators.conftest import set_my_password, set_pg_password, vaulted_seed

pytestmark = [pytest.mark.airflow, pytest.mark.database_roles]

DAG_ID = "guarantee_leaks"
OWN_LOGS = f"logs/dag_id={DAG_ID}/"
DAGS = Path(__file__).resolve().parent / "dags_leaks"
# Database users of their own, so no other test's password for them races with this one.
PG_USER = "gt_pg"
MY_USER = "gt_my"
SPECIALS = "@:/%+\"'\\&#?=; \n"
"""Every character the issue names, newline included."""


def canary(feature: str, length: int = 0) -> str:
    """A canary per feature: its name, every special character, unicode; padded to ``length``."""
    value = f"gT-{feature}-c@n:ry/pw%2B+\"q'\\&#x?y=z;sp ace\n{feature}-next-line-é✓ключ-Zk9"
    assert set(SPECIALS) <= set(value)
    while len(value) < length:
        value += f"|{len(value):05d}{SPECIALS}é✓"
    return value[:length] if length else value


CALLBACK = "failure callback %r of an exception holding repr(secret)"
HOSTILE = "\t😀'{{ ds }}$HOME`\\1%41"
"""What the hostile canaries hold besides their name: a tab, a non-BMP emoji, ``'`` without ``"``,
Jinja markers, ``$HOME`` and backticks, ``\\1`` and ``%41``."""


def hostile(feature: str, length: int = 0) -> str:
    """A canary escaped differently by every escape (and ``repr`` quoting by its surroundings)."""
    value = f"hT-{feature}-t\tab😀it's {{{{ ds }}}} $HOME `id` \\1 %41-Zk9"
    assert set(HOSTILE) <= set(value) and '"' not in value
    while len(value) < length:
        value += f"|{len(value):05d}\t😀'{{{{ ds }}}}$HOME`id`\\1%41"
    return value[:length] if length else value


CANARIES = {
    "hook": canary("hook"),
    "decorator (4 KB)": canary("long", 4096),
    "backend connection": canary("backend-conn"),
    "backend variable": canary("backend-var"),
    "VaultedSqlOperator on SQLite": canary("sqlite"),
    "VaultedSqlOperator on PostgreSQL, vaulted(), BashOperator env": canary("postgres"),
    "VaultedSqlOperator on MariaDB": canary("mariadb"),
    "common-sql output line (a JSON row)": hostile("json-row"),
    "logged composed, quoted by its surroundings, by an import-time handler": hostile("hostile"),
    CALLBACK: hostile("callback"),
    "Returned value was: repr(conn)": hostile("conn-repr"),
    "nested task_scope (2 KB)": hostile("nested", 2048),
    "XCom of an attrs class and of serialize()": hostile("xcom-types"),
    "exception attributes and context (decorator)": hostile("exc-attrs"),
}
JSON_ROW = "common-sql output line (a JSON row)"
IMPORT_HANDLER = "logged composed, quoted by its surroundings, by an import-time handler"
POSTGRES = "VaultedSqlOperator on PostgreSQL, vaulted(), BashOperator env"
MARIADB = "VaultedSqlOperator on MariaDB"
USERNAMES = {POSTGRES: PG_USER, MARIADB: MY_USER}
FD_CANARY = canary("fd")
"""Written by the task straight to file descriptor 1, and by a child process: the measured limit."""
SUCCEEDING = (
    "hook_conjur",
    "writes_to_file_descriptors",
    "decorator_long",
    "backend_connection_and_variable",
    "templated_field",
    "sql_sqlite",
    "sql_postgres",
    "sql_mariadb",
    "generic_wrapper",
    "bash_env",
    "hostile_hook",
    "returns_connection_repr",
    "nested_scopes",
    "xcom_attrs",
    "xcom_serialize",
    "sql_json_row",
)
FAILING = ("raises", "raises_repr", "exception_attributes")
EXPECTED_STATES = {**dict.fromkeys(SUCCEEDING, "success"), **dict.fromkeys(FAILING, "failed")}


def _seed(lite_db: Path) -> dict[str, Any]:
    seed = copy.deepcopy(vaulted_seed())
    accounts = seed["vault"]["accounts"]
    template = next(a for a in accounts if a["name"] == "vop-pg")
    maria = next(a for a in accounts if a["name"] == "vop-maria")
    accounts += [
        {**copy.deepcopy(template), "name": "gt-pg", "userName": PG_USER, "secret": CANARIES[POSTGRES]},
        {**copy.deepcopy(maria), "name": "gt-maria", "userName": MY_USER, "secret": CANARIES[MARIADB]},
        {
            **copy.deepcopy(template),
            "name": "gt-lite",
            "userName": "gt_lite",
            "address": str(lite_db),
            "secret": CANARIES["VaultedSqlOperator on SQLite"],
        },
        {
            **copy.deepcopy(template),
            "name": "gt-json",
            "userName": "gt_json",
            "address": str(lite_db),
            "secret": CANARIES[JSON_ROW],
        },
    ]
    backend_conn = {
        "conn_type": "postgres",
        "host": "db.invalid",
        "login": "gt",
        "password": CANARIES["backend connection"],
    }
    seed["conjur"]["variables"] += [
        {"id": "demo/guarantee/hook", "value": CANARIES["hook"]},
        {"id": "demo/guarantee/long", "value": CANARIES["decorator (4 KB)"]},
        {"id": "demo/guarantee/fd", "value": FD_CANARY},
        {"id": "airflow/dev/connections/gt_backend", "value": json.dumps(backend_conn)},
        {"id": "demo/guarantee/vars/gt_var", "value": CANARIES["backend variable"]},
        {"id": "demo/guarantee/hostile", "value": CANARIES[IMPORT_HANDLER]},
        {
            "id": "demo/guarantee/callback",
            "value": CANARIES["failure callback %r of an exception holding repr(secret)"],
        },
        {"id": "demo/guarantee/nested", "value": CANARIES["nested task_scope (2 KB)"]},
        {"id": "demo/guarantee/xcom_types", "value": CANARIES["XCom of an attrs class and of serialize()"]},
        {"id": "demo/guarantee/exc_attrs", "value": CANARIES["exception attributes and context (decorator)"]},
        {
            "id": "airflow/dev/connections/gt_backend_repr",
            "value": json.dumps({**backend_conn, "password": CANARIES["Returned value was: repr(conn)"]}),
        },
    ]
    return seed


@dataclass
class LeakRun:
    dag_run: DagRun
    places: dict[str, bytes]
    cli_connection: str
    """What ``airflow connections get gt_backend`` printed (it resolves through the backend)."""


def _files_under(home: Path) -> dict[str, bytes]:
    """Every file Airflow (or its consoles) left under AIRFLOW_HOME, the metadata DB aside, but the
    task logs of the other DAGs on the shared stack (their modules search them)."""
    return {
        place: path.read_bytes()
        for path in sorted(home.rglob("*"))
        if path.is_file() and not path.name.startswith("airflow.db")
        for place in [str(path.relative_to(home))]
        if not place.startswith("logs/dag_id=") or place.startswith(OWN_LOGS)
    }


@shared_stack_part
def _leak_part(base: Path, resources: contextlib.ExitStack) -> StackPart:
    set_pg_password(CANARIES[POSTGRES], user=PG_USER)
    set_my_password(CANARIES[MARIADB], user=MY_USER)
    base.mkdir()
    lite_db = base / "lite.db"
    seed = _seed(lite_db)
    server = resources.enter_context(DevServer(seed, state_dir=base / "devserver"))
    info = server.info()
    conjur = demo_conjur_connection(info, seed, key_dir=base)
    conjur["extra"].update(FAST_EXTRAS)
    ccp = json.loads(ccp_connection(server))
    key_file = base / "backend.api-key"
    key_file.write_text(HOST_API_KEY)
    key_file.chmod(0o600)
    backend_kwargs = {
        "url": info["url"],
        "ca_bundle": info["ca_cert"],
        **FAST_EXTRAS,
        "api": "conjur",
        "login": HOST_LOGIN,
        "api_key_file": str(key_file),
        "account": info["conjur_account"],
        "env": "dev",
        "connections_path": "airflow/{env}/connections/{conn_id}",
        "variables_path": "demo/guarantee/vars/{variable}",
        "connections_lookup_pattern": "^gt_backend(_repr)?$",
        "variables_lookup_pattern": "^gt_",
    }

    def finish(stack: AirflowStack, runs: Mapping[str, DagRun]) -> LeakRun:
        cli_connection = stack.cli("connections", "get", "gt_backend", "-o", "json")
        places = {**_files_under(stack.home), **stored_places(stack, [DAG_ID])}
        return LeakRun(runs[DAG_ID], places, cli_connection)

    return StackPart(
        dag_files={path.name: path.read_text() for path in sorted(DAGS.glob("*.py"))},
        env={
            # Connection ids of its own: the stack is shared (tests/airflow/shared_stack.py).
            "AIRFLOW_CONN_GT_CONJUR": json.dumps(conjur),
            "AIRFLOW_CONN_GT_CCP": json.dumps(ccp),
            "AIRFLOW_CONN_GT_SQLITE": json.dumps({"conn_type": "sqlite", "host": str(lite_db)}),
            "AIRFLOW__SECRETS__BACKEND": "cyberark_ops.secrets.CyberArkSecretsBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(backend_kwargs),
        },
        dag_ids=(DAG_ID,),
        finish=finish,
    )


@pytest.fixture(scope="module")
def run(shared_stack_runs: dict[str, Any]) -> LeakRun:
    return cast(LeakRun, shared_stack_runs[__name__])


def _forms(name: str, value: str) -> dict[str, str]:
    return {f"{name}: {form}": text for form, text in leak_forms(value, username=USERNAMES.get(name)).items()}


def test_every_way_in_runs_and_returns_only_scrubbed_values(run: LeakRun) -> None:
    dag_run = run.dag_run
    assert dag_run.task_states == EXPECTED_STATES, dag_run.explain()
    assert dag_run.xcom("hook_conjur") == {"alone": "***", "rows": [["x", "***"]], "environ_hits": 0}
    long = dag_run.xcom("decorator_long")
    assert long == {"alone": "***", "in_dict": {"k": "***"}, "length": 4096, "environ_hits": 0}
    assert dag_run.xcom("backend_connection_and_variable") == {"password": "***", "variable": "***", "environ_hits": 0}
    both = CANARIES["backend connection"] + CANARIES["backend variable"]
    assert dag_run.xcom("templated_field") == hashlib.sha256(both.encode()).hexdigest()[:16]
    for task_id, first_row in (("sql_sqlite", ["lite"]), ("sql_postgres", [PG_USER])):
        assert dag_run.xcom(task_id) == {"rows": [first_row], "secret": "***", "environ_hits": 0}
    mariadb = dag_run.xcom("sql_mariadb")
    assert mariadb["rows"][0][0].startswith(f"{MY_USER}@") and mariadb["secret"] == "***"
    assert dag_run.xcom("generic_wrapper") == [[PG_USER]]
    pg = CANARIES[POSTGRES]
    # The child got the secret (its hash matches); the task process, its parent, had it 0 times.
    assert dag_run.xcom("bash_env") == "0"
    bash_log = b"".join(p.read_bytes() for p in dag_run.stack.task_log_files(DAG_ID) if "bash_env" in str(p))
    assert hashlib.sha256(pg.encode()).hexdigest()[:16].encode() in bash_log
    # Stored after the XCom backend serialized them: types scrub does not walk, redacted all the same.
    assert dag_run.xcom("xcom_attrs") == {"user": "svc", "password": "***"}
    assert dag_run.xcom("xcom_serialize") == {"value": 'Bearer "***"'}
    # An inner task_scope ended before the task returned: the outer value is redacted still.
    assert dag_run.xcom("nested_scopes") == {"alone": "***", "repr": '"***"', "length": 2048}
    conn_repr = dag_run.xcom("returns_connection_repr")["conn"]
    assert conn_repr.startswith("Connection(") and "***" in conn_repr
    assert dag_run.xcom("sql_json_row") == [['{"password":"***","note":"has \\"quotes\\""}']]


# What the tasks try, and the masked line each attempt must leave in the task logs (the control
# that the attempt really ran), with how many times at least.
CARELESS = ("hook_conjur", "decorator_long", "raises", "backend_connection_and_variable", "sql_sqlite", "sql_postgres")
ATTEMPTS = (
    ("log it at every level (stdlib logging, raw and %r)", "task logs", "raw *** repr '***'", 4 * len(CARELESS)),
    ("log it URL-quoted (quote, quote_plus)", "task logs", "quoted *** and ***", len(CARELESS)),
    ("log a dict holding it, nested", "task logs", "in a dict {'password': '***', 'nested': [['***']]}", 1),
    ("log the traceback of an exception whose message holds it", "task logs", "caught '***'", len(CARELESS)),
    # (print's line may reach the supervisor as two when its patterns mask the value line by line)
    ("print it to stdout", "task logs", "printed ***", len(CARELESS)),
    ("print it to stderr", "task logs", "to stderr ***", len(CARELESS)),
    ("write one line in pieces (the secret split over two writes)", "task logs", "*** <- split write", len(CARELESS)),
    ("raise an exception holding it, raw and URL-quoted", "task logs", "cannot log in with '***' / ***", 1),
    ("log it again from a failure callback (a fresh fetch)", "task logs", "callback refetched ***", 1),
    ("log the URIs a driver would (hook.get_uri, Connection.get_uri)", "task logs", "driver uri ", 3),
    ("log the backend's connection URI", "task logs", "uri postgres://gt:***@db.invalid", 1),
    ("return it alone, in a dict and in DB rows", "table xcom", '"alone": "***"', 2),
    ("log a JSON payload with %r: JSON, then repr, then the log line", "task logs", "payload '{", 1),
    ("log it in a longer string holding a double quote (repr escapes its ')", "task logs", "longer string 'say ", 1),
    ("log it through a handler bound when the DAG file was imported", "task logs", "handler bound at import ***", 1),
    ("print one line with two print calls", "task logs", "printed in pieces *** end", 1),
    ("log rows holding a JSON document (common-sql's output line)", "task logs", "Operator output is: [[(", 1),
    ("log %r of the exception in a failure callback", "task logs", "callback saw RuntimeError(", 1),
    ("log the output and context of a failed command in a callback", "task logs", "its output b'***'", 1),
    ("return repr(conn): PythonOperator logs the returned value", "task logs", "Returned value was: {'conn': ", 1),
    ("render a composed form into a templated field", "table rendered_task_instance_fields", "GT_COMPOSED", 1),
    (
        "render it into a templated field (conn and var templates)",
        "table rendered_task_instance_fields",
        '"GT_CONN_PASSWORD": "***", "GT_VARIABLE": "***"',
        1,
    ),
)


def test_the_tasks_did_try_to_leak(run: LeakRun) -> None:
    """Controls: each attempt left its trace where it went, masked; the console got the lines too."""
    logs = masked_as_one(b"".join(data for place, data in run.places.items() if place.startswith(OWN_LOGS)))
    console = masked_as_one(run.places["process-logs/scheduler.log"])
    for attempt, where, evidence, at_least in ATTEMPTS:
        found = (logs if where == "task logs" else masked_as_one(run.places[where])).count(evidence.encode())
        report.record(
            "attempts",
            attempt,
            {"attempt": attempt, "evidence": f"`{evidence}` in {where}", "seen": found, "expected": f">= {at_least}"},
        )
        assert found >= at_least, (attempt, found)
    if b"task.stdout" in console:  # LocalExecutor copies task output there (3.3; 3.1 does not)
        assert console.count(b"printed ***") >= len(CARELESS), "the console got the task lines, redacted"
        assert console.count(b"handler bound at import ***") >= 1, "and the import-time handler's, redacted"


def test_no_form_of_any_canary_anywhere(run: LeakRun) -> None:
    forms = {key: text for name, value in CANARIES.items() for key, text in _forms(name, value).items()}
    leaks = find_leaks(run.places, forms)
    places = sorted(run.places)
    files = [p for p in places if not p.startswith(("table ", "sqlite dump"))]
    tables = [p.removeprefix("table ") for p in places if p.startswith("table ")]
    assert {
        "xcom",
        "rendered_task_instance_fields",
        "connection",
        "variable",
        "dag_run",
        "log",
        "task_instance",
    } <= set(tables)
    assert "process-logs/scheduler.log" in files and "process-logs/dag-processor.log" in files
    for name, value in CANARIES.items():
        report.record(
            "canaries",
            name,
            {
                "way in": name,
                "length": len(value),
                "special characters": _specials(value),
                "unicode": " ".join(sorted({c for c in value if ord(c) > 127})),
            },
        )
    for form, text in leak_forms(CANARIES["hook"], username="user").items():
        report.record("forms", form, {"form": form, "example (hook canary, first 40 characters)": repr(text[:40])})
    for kind in sorted({_generic(place) for place in files}):
        count = sum(_generic(place) == kind for place in files)
        report.record("places", f"file {kind}", {"place": f"file under AIRFLOW_HOME: `{kind}`", "searched": count})
    report.record(
        "places", "tables", {"place": f"every table of the metadata DB: {', '.join(tables)}", "searched": len(tables)}
    )
    report.record("places", "sqlite dump", {"place": "a full dump of the metadata DB (`iterdump`)", "searched": 1})
    report.record(
        "places",
        "environ",
        {
            "place": "`/proc/<pid>/environ` of each task process, its supervisor and the executor's worker "
            "(the BashOperator's child is the one process meant to receive its secret)",
            "searched": 3 * len(SUCCEEDING),
        },
    )
    expected = run.dag_run.task_states == EXPECTED_STATES
    for name, value in CANARIES.items():
        hits = [leak for leak in leaks if leak.startswith(f"{name}: ")]
        report.record(
            "leaks",
            name,
            {
                "way in": name,
                "tasks": "ended as expected" if expected else str(run.dag_run.task_states),
                "places searched": len(run.places),
                "forms searched": len(_forms(name, value)),
                "hits": len(hits),
            },
        )
    assert leaks == []


def _specials(value: str) -> str:
    shown = " ".join(sorted({c for c in value if c.isascii() and not c.isalnum() and c.strip()}))
    named = [name for char, name in ((" ", "space"), ("\n", "newline"), ("\t", "tab")) if char in value]
    markers = [marker for marker in ("{{ ds }}", "$HOME", "\\1", "%41") if marker in value]
    return " ".join([shown, *named, *markers, *(['no "'] if '"' not in value else [])])


def _generic(place: str) -> str:
    """A log path without its run id and timestamps, so the page lists kinds of file, not runs."""
    place = re.sub(r"run_id=[^/]+", "run_id=…", place)
    place = re.sub(r"task_id=[^/]+", "task_id=<task>", place)
    return re.sub(r"\d{4}-\d{2}-\d{2}", "<date>", place)


def test_what_bypasses_pythons_streams_is_redacted_at_the_file_descriptor(run: LeakRun) -> None:
    """Bytes a task writes to file descriptor 1 itself, or that a child process writes to the
    descriptors it inherited, never pass through Python's ``sys.stdout``: the task process points
    the descriptors at a redacting pipe once a secret is registered, so neither the task log file
    nor the executor's console copy holds them."""
    hits = find_leaks(run.places, _forms("fd", FD_CANARY))
    assert hits == []
    logs = b"".join(data for place, data in run.places.items() if place.startswith(OWN_LOGS))
    assert b"fd write ***" in logs and b"child echo ***" in logs, "the writes happened, redacted"
    report.record(
        "limits",
        "fd writes",
        {
            "what": "bytes written to file descriptors 1 and 2 directly (os.write, C extensions) or by child "
            "processes that inherit them (subprocess without capture)",
            "where it stays in clear": "nowhere once the task registered a secret (measured: "
            f"{len(hits)} hits); before the first registration nothing is redirected, and a child started "
            "then keeps the original descriptors",
            "task log file": "redacted in the task process (every form), then masked by the supervisor",
            "remedy": "fetch before starting long-lived children; capture a child's output (BashOperator, "
            "subprocess.run(capture_output=True)) and log it",
        },
    )


def test_a_handler_bound_at_import_reaches_no_console_and_no_log_with_a_form(run: LeakRun) -> None:
    """A ``logging.StreamHandler()`` created when the DAG file is imported keeps the ``sys.stderr``
    of that moment; its lines go to file descriptor 2, redacted at the descriptor."""
    forms = _forms(IMPORT_HANDLER, CANARIES[IMPORT_HANDLER])
    console = {"process-logs/scheduler.log": run.places["process-logs/scheduler.log"]}
    logs = {place: data for place, data in run.places.items() if place.startswith(OWN_LOGS)}
    assert find_leaks({**console, **logs}, forms) == []
    assert b"handler bound at import ***" in b"".join(logs.values())


def test_the_connections_cli_prints_what_the_backend_returns(run: LeakRun) -> None:
    """A measured limit: ``airflow connections get`` shows a connection in full, password included,
    wherever it comes from; with the backend configured, that is the vault's value."""
    password = CANARIES["backend connection"]
    shown = [form for form, text in leak_forms(password).items() if text in run.cli_connection]
    assert shown, "Airflow's CLI printed the password (if this fails, Airflow changed: update the limit)"
    report.record(
        "limits",
        "connections cli",
        {
            "what": "`airflow connections get <conn_id>` on a machine configured with the secrets backend",
            "where it stays in clear": f"the command's output ({', '.join(shown)} form)",
            "task log file": "not involved",
            "remedy": "give operators of the CLI no backend_kwargs credentials; use `cyberark-ops doctor`, which "
            "never prints values, to check a connection",
        },
    )
