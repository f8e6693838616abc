"""One DAG for the fault matrix's real-path test: each task meets a persistent 503 on its first try.

The dev server answers 503 to every fetch of one try (a fault with a count), so that try fails with
a typed error; with a one-second ``retry_delay`` the next try finds the fault cleared and succeeds.
``retries=2``: a try lost for another reason (a task process killed on an overloaded machine) must
not use up the one retry the test is about. One way in per API: the hook on Conjur, ``VaultedSqlOperator``
on CCP, ``@with_cyberark_secret`` on PVWA.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from cyberark_ops import CyberArkHook, VaultedSqlOperator, with_cyberark_secret

RETRY = {"retries": 2, "retry_delay": timedelta(seconds=1)}

with DAG("cyberark_faults_retry", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):

    @task(task_id="conjur_hook", **RETRY)
    def conjur_hook() -> str:
        secret = CyberArkHook("flt_conjur").get_secret("prod/db/faults-password")
        return "fetched" if secret else "empty"

    VaultedSqlOperator(
        task_id="ccp_operator",
        vault_conn_id="flt_ccp",
        credential_ref="ccp:Safe=DB-Prod;Object=flt-maria",
        conn_id="flt_sqlite",
        sql="select 'fetched'",
        **RETRY,
    )

    @task(task_id="pvwa_decorator", **RETRY)
    @with_cyberark_secret(vault_conn_id="flt_pvwa", secret="pvwa:DB-Prod/flt-maria")
    def pvwa_decorator(secret: str) -> str:
        return "fetched" if secret else "empty"

    conjur_hook()
    pvwa_decorator()
