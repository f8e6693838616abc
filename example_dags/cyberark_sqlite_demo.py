"""Demo: a task fetches credentials just in time through ``CyberArkHook`` and queries SQLite.

Run it with ``bash .ci/demo`` (dev server + a real Airflow scheduler on SQLite), or with the
connections ``cyberark-ops devserver --print-connections`` prints: ``cyberark_conjur`` points at the
dev server's Conjur API; the DAG itself holds no secret.
"""

from __future__ import annotations

import logging
import sqlite3

import pendulum
from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@dag(
    dag_id="cyberark_sqlite_demo",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "demo"],
)
def cyberark_sqlite_demo() -> None:
    @task
    def load_and_query() -> list[list[object]]:
        from cyberark_ops import CyberArkHook

        hook = CyberArkHook("cyberark_conjur", reason="nightly sales load")
        # One authentication and one batch request, whatever the number of variables.
        secrets = hook.get_secrets(["demo/sqlite/path", "prod/db/username", "prod/db/password"])
        db_path = secrets["demo/sqlite/path"]
        password = secrets["prod/db/password"]
        # Deliberately careless: Airflow's masker turns the value into *** in the task log.
        log.info("fetched the DB user %s with password %s", secrets["prod/db/username"], password)
        with sqlite3.connect(db_path) as db:
            db.execute("create table if not exists sales (region text, amount integer)")
            db.execute("delete from sales")
            db.executemany(
                "insert into sales values (?, ?)", [("emea", 120), ("amer", 340), ("apac", 95), ("emea", 60)]
            )
            rows = db.execute("select region, sum(amount) from sales group by region order by region").fetchall()
        log.info("query returned %d rows", len(rows))
        return [list(row) for row in rows]

    load_and_query()


cyberark_sqlite_demo()
