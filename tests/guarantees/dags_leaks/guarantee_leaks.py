"""Every way into cyberark-ops, each task trying as hard as it can to leak what it fetched.

No canary is written here: the values live only in the dev server (and in the target databases),
so a hit in ``dag_code`` or ``serialized_dag`` would be a real leak, not this file. What a task
tries: log the value at every level (raw, ``%r``, URL-quoted, inside a traceback), print it to
stdout and stderr, raise it, return it (alone, in a dict, in DB rows), render it into a templated
field, log it again from a failure callback, and log the connection URIs a driver would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any
from urllib.parse import quote, quote_plus

import attrs
import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, BaseHook, Variable, task

from cyberark_ops import CyberArkHook, VaultedSqlOperator, scrub, vaulted, with_cyberark_secret

log = logging.getLogger("careless")

# Bound when the DAG file is imported, before any task runs: the handler keeps the sys.stderr of
# that moment, which no later replacement of sys.stderr reaches.
bound_at_import = logging.getLogger("bound_at_import")
bound_at_import.addHandler(logging.StreamHandler())
bound_at_import.propagate = False

HOOK_REF = "demo/guarantee/hook"
LONG_REF = "demo/guarantee/long"
PG_REF = "ccp:Safe=VaultedOps;Object=gt-pg"
MY_REF = "ccp:Safe=VaultedOps;Object=gt-maria"
LITE_REF = "ccp:Safe=VaultedOps;Object=gt-lite"
FD_REF = "demo/guarantee/fd"
BACKEND_CONN = "gt_backend"
BACKEND_VAR = "gt_var"
HOSTILE_REF = "demo/guarantee/hostile"
CALLBACK_REF = "demo/guarantee/callback"
NESTED_REF = "demo/guarantee/nested"
XCOM_TYPES_REF = "demo/guarantee/xcom_types"
EXC_ATTRS_REF = "demo/guarantee/exc_attrs"
JSON_ROW_REF = "ccp:Safe=VaultedOps;Object=gt-json"
BACKEND_REPR_CONN = "gt_backend_repr"


def careless(value: str) -> None:
    """Everything a careless task does with a secret, on every channel a task has."""
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        log.log(level, "raw %s repr %r", value, value)
    log.info("quoted %s and %s", quote(value, safe=""), quote_plus(value))
    log.info("in a dict %s", {"password": value, "nested": [[value]]})
    try:
        raise RuntimeError(f"caught {value!r}")
    except RuntimeError:
        log.exception("traceback of a caught error")
    print("printed", value, repr(value))
    print("to stderr", value, file=sys.stderr)
    sys.stdout.write(value[:3])  # one line written in pieces
    sys.stdout.write(value[3:] + " <- split write\n")
    sys.stdout.flush()


def environ_hits(value: str) -> int:
    """Occurrences in the environment of this task process, its supervisor and the executor's worker."""
    hits, pid = 0, os.getpid()
    for _ in range(3):
        with open(f"/proc/{pid}/environ", "rb") as env:
            hits += env.read().count(value.encode())
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return hits


def callback_leaks(context: dict[str, Any]) -> None:
    """A failure callback that logs the exception and fetches the secret again to log it."""
    log.error("callback saw %r", context.get("exception"))
    value = CyberArkHook("gt_conjur").get_secret(HOOK_REF)
    log.error("callback refetched %s", value)
    print("callback printed", value)


def hostile(value: str) -> None:
    """What escapes the value more than once, or quotes it by its surroundings."""
    log.info("payload %r", json.dumps({"password": value, "note": 'has "quotes"'}))
    log.info("nested payload %r", [json.dumps([value])])
    log.info("in a longer string %r", f'say "{value}" now')  # repr writes the value's ' as \'
    bound_at_import.warning("handler bound at import %s %r", value, value)
    print("printed in pieces", value[:4], end="")  # one line, two print calls
    print(value[4:], "end", flush=True)


def callback_digs(context: dict[str, Any]) -> None:
    """A failure callback that logs the exception, its attributes and its context with %r."""
    error = context.get("exception")
    log.error("callback saw %r", error)
    log.error("its output %r and context %r", getattr(error, "output", None), getattr(error, "__context__", None))


@attrs.define
class Login:
    """An attrs class: Airflow's serializer stores it, ``scrub`` does not walk it."""

    user: str
    password: str


class Token:
    """An object Airflow's serializer stores through ``serialize()``."""

    __version__ = 1

    def __init__(self, value: str) -> None:
        self.value = value

    def serialize(self) -> dict[str, Any]:
        return {"value": self.value}

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> Token:
        return Token(data["value"])


class JsonRowSql(VaultedSqlOperator):
    """Selects a JSON document holding the password; common-sql logs the rows (``Operator output is``)."""

    def fetch_credential(self):  # type: ignore[no-untyped-def]
        cred = super().fetch_credential()
        self.parameters = (cred.secret,)
        return cred


def failing_child(value: str) -> None:
    try:
        {}[value]  # the context: a KeyError holding the value
    except KeyError:
        subprocess.run(["/bin/sh", "-c", 'printf %s "$0"; exit 3', value], check=True, capture_output=True)


class CarelessSql(VaultedSqlOperator):
    """Logs the secret and the URIs a driver would log, and returns the secret with the rows."""

    def fetch_credential(self):  # type: ignore[no-untyped-def]
        cred = super().fetch_credential()
        careless(cred.secret)
        self._careless = cred.secret
        return cred

    def _execute_vaulted(self, context):  # type: ignore[no-untyped-def]
        hook = self.get_db_hook()
        log.info("driver uri %s", hook.get_uri())
        log.info("connection uri %s", hook.get_connection(hook.get_conn_id()).get_uri())
        rows = super()._execute_vaulted(context)
        return {"rows": rows, "secret": self._careless, "environ_hits": environ_hits(self._careless)}


with DAG("guarantee_leaks", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):

    @task
    def hook_conjur() -> dict[str, Any]:
        value = CyberArkHook("gt_conjur").get_secret(HOOK_REF)
        careless(value)
        return {"alone": value, "rows": [("x", value)], "environ_hits": environ_hits(value)}

    @task
    @with_cyberark_secret(vault_conn_id="gt_conjur", long=LONG_REF)
    def decorator_long(long: str) -> dict[str, Any]:
        careless(long)
        return {"alone": long, "in_dict": {"k": long}, "length": len(long), "environ_hits": environ_hits(long)}

    @task(retries=0, on_failure_callback=callback_leaks)
    @with_cyberark_secret(vault_conn_id="gt_conjur", value=HOOK_REF)
    def raises(value: str) -> None:
        careless(value)
        raise ValueError(f"cannot log in with {value!r} / {quote(value, safe='')}")

    @task
    def backend_connection_and_variable() -> dict[str, Any]:
        conn = BaseHook.get_connection(BACKEND_CONN)
        variable = Variable.get(BACKEND_VAR)
        careless(conn.password)
        careless(variable)
        log.info("connection %r uri %s", conn, conn.get_uri())
        return {
            "password": conn.password,
            "variable": variable,
            "environ_hits": environ_hits(conn.password) + environ_hits(variable),
        }

    # Templated fields render the backend's values; the rendered fields are stored in the DB.
    BashOperator(
        task_id="templated_field",
        env={
            "GT_CONN_PASSWORD": "{{ conn.gt_backend.password }}",
            "GT_VARIABLE": "{{ var.value.gt_var }}",
            "GT_COMPOSED": "{{ [[var.value.gt_var] | string] }}",  # repr of a repr
        },
        bash_command='printf %s "$GT_CONN_PASSWORD$GT_VARIABLE" | sha256sum | cut -c1-16',
    )

    CarelessSql(
        task_id="sql_sqlite",
        vault_conn_id="gt_ccp",
        credential_ref=LITE_REF,
        conn_id="gt_sqlite",
        sql="select 'lite'",
    )
    CarelessSql(
        task_id="sql_postgres",
        vault_conn_id="gt_ccp",
        credential_ref=PG_REF,
        conn_type="postgres",
        sql="select current_user",
    )
    CarelessSql(
        task_id="sql_mariadb",
        vault_conn_id="gt_ccp",
        credential_ref=MY_REF,
        conn_type="mysql",
        conn_extra={"client": "mysql-connector-python"},
        sql="select current_user()",
    )
    vaulted(SQLExecuteQueryOperator)(
        task_id="generic_wrapper",
        vault_conn_id="gt_ccp",
        credential_ref=PG_REF,
        conn_id="gt_target",
        target_conn_id="gt_target",
        conn_type="postgres",
        sql="select current_user",
    )
    vaulted(BashOperator)(
        task_id="bash_env",
        vault_conn_id="gt_ccp",
        credential_ref=PG_REF,
        secret_env="GT_SECRET",
        bash_command=(
            'printf %s "$GT_SECRET" | sha256sum | cut -c1-16; '
            'tr "\\\\0" "\\\\n" < /proc/$PPID/environ | grep -c "^GT_SECRET=" || true'
        ),
    )

    @task
    def writes_to_file_descriptors() -> str:
        """Bytes that never pass through Python's streams: what the task process cannot redact."""
        value = CyberArkHook("gt_conjur").get_secret(FD_REF)
        os.write(1, f"fd write {value}\n".encode())
        subprocess.run(["/bin/echo", "child echo", value], check=True)
        return "written"

    @task
    def hostile_hook() -> str:
        hostile(CyberArkHook("gt_conjur").get_secret(HOSTILE_REF))
        return "logged"

    @task(retries=0, on_failure_callback=callback_digs)
    def raises_repr() -> None:
        value = CyberArkHook("gt_conjur").get_secret(CALLBACK_REF)
        raise RuntimeError(f"cannot log in with {value!r}")

    @task
    def returns_connection_repr() -> dict[str, Any]:
        # PythonOperator logs "Done. Returned value was: ..." before anything can scrub it.
        conn = BaseHook.get_connection(BACKEND_REPR_CONN)
        return {"conn": repr(conn)}

    @task
    def nested_scopes() -> dict[str, Any]:
        value = CyberArkHook("gt_conjur").get_secret(NESTED_REF)

        def helper() -> str:  # the pattern docs/scrubbing.md shows, in a helper
            with scrub.task_scope():
                password = CyberArkHook("gt_conjur").get_secret(HOOK_REF)
                return scrub.scrub(f"helper used {password}")

        helper()
        return {"alone": value, "repr": repr(value), "length": len(value)}

    @task
    def xcom_attrs() -> Login:
        return Login("svc", CyberArkHook("gt_conjur").get_secret(XCOM_TYPES_REF))

    @task
    def xcom_serialize() -> Token:
        return Token(f"Bearer {CyberArkHook('gt_conjur').get_secret(XCOM_TYPES_REF)!r}")

    @task(retries=0, on_failure_callback=callback_digs)
    @with_cyberark_secret(vault_conn_id="gt_conjur", value=EXC_ATTRS_REF)
    def exception_attributes(value: str) -> None:
        failing_child(value)

    JsonRowSql(
        task_id="sql_json_row",
        vault_conn_id="gt_ccp",
        credential_ref=JSON_ROW_REF,
        conn_id="gt_sqlite",
        sql="""select json_object('password', ?, 'note', 'has "quotes"')""",
        show_return_value_in_logs=True,
    )

    hook_conjur()
    writes_to_file_descriptors()
    decorator_long()
    raises()
    backend_connection_and_variable()
    hostile_hook()
    raises_repr()
    returns_connection_repr()
    nested_scopes()
    xcom_attrs()
    xcom_serialize()
    exception_attributes()
