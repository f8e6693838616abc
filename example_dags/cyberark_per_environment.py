"""Per-environment paths: one DAG file for dev, staging and prod, the vault path chosen at run time.

The environment comes from the Airflow variable ``deployment_env``, else the ``DEPLOYMENT_ENV``
environment variable, else ``dev``. It is read inside the task, so a DAG file parsed in one place
fetches what the worker's deployment is entitled to. An unknown value fails the task before any
vault call.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Variable, dag, task

ENVIRONMENTS = ("dev", "staging", "prod")


@dag(
    dag_id="cyberark_per_environment",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
)
def cyberark_per_environment() -> None:
    @task
    def check_database_password() -> dict[str, Any]:
        from cyberark_ops import CyberArkHook

        env = Variable.get("deployment_env", default=os.environ.get("DEPLOYMENT_ENV", "dev"))
        if env not in ENVIRONMENTS:
            raise ValueError(f"deployment_env is {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
        path = f"demo/{env}/db/password"
        with CyberArkHook("cyberark_conjur", reason=f"{env} nightly load") as hook:
            password = hook.get_secret(path)
        return {"env": env, "path": path, "length": len(password)}

    check_database_password()


cyberark_per_environment()
