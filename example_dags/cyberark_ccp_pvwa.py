"""CCP with a client certificate and a Reason, and PVWA / Privilege Cloud, through ``CyberArkHook``.

``cyberark_ccp`` authenticates with the client certificate its AppID requires; ``cyberark_pvwa``
logs in to PVWA (for Privilege Cloud, the same code with a ``privilege-cloud`` connection). Each
retrieval carries a reason naming the DAG, the task and the run, visible in the Vault's audit.

A plain ``@task`` does not scrub its return value, so these tasks return only the accounts'
non-secret parts; the values themselves are masked in the task log by the hook.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task


def describe(account: Any) -> dict[str, Any]:
    return {"user": account.username, "address": account.address, "has_secret": bool(account.secret)}


@dag(
    dag_id="cyberark_ccp_pvwa",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
)
def cyberark_ccp_pvwa() -> None:
    @task
    def from_ccp() -> dict[str, Any]:
        from cyberark_ops import CyberArkHook

        with CyberArkHook("cyberark_ccp", reason="quarterly reconciliation") as hook:
            return describe(hook.get_credential("ccp:Safe=DB-Prod;Object=pg-prod"))

    @task
    def from_pvwa() -> dict[str, Any]:
        from cyberark_ops import CyberArkHook

        with CyberArkHook("cyberark_pvwa", reason="quarterly reconciliation") as hook:
            return describe(hook.get_credential("pvwa:DB-Prod/pg-prod"))

    from_ccp()
    from_pvwa()


cyberark_ccp_pvwa()
