"""``@with_cyberark_secret``: a TaskFlow task calls an HTTP API with a token kept in Conjur.

The token is fetched when the task runs (never when the DAG is parsed), injected as the ``token``
argument, masked in the task log in every form it leaks in, and scrubbed from the return value: an
API that echoes the token back cannot put it into XCom.

The API is yours: the Airflow variable ``inventory_api_url`` is the URL of an HTTP endpoint that
accepts ``Authorization: Bearer <token>`` with the value of the Conjur variable ``prod/api/key``
(for an internal API with a private CA, the optional variable ``inventory_api_ca_bundle`` names the
CA file; unset, the system trust store is used). Against the dev server,
``cyberark-ops devserver --print-connections`` prints both variables: its ``/demo/inventory``
endpoint stands in for the API and echoes the token back.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Variable, dag, task

from cyberark_ops import with_cyberark_secret


@dag(
    dag_id="cyberark_http_token",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
)
def cyberark_http_token() -> None:
    @task
    @with_cyberark_secret(vault_conn_id="cyberark_conjur", token="prod/api/key", reason="inventory sync")
    def sync_inventory(token: str) -> dict[str, Any]:
        import requests

        url = Variable.get("inventory_api_url")
        verify = Variable.get("inventory_api_ca_bundle", default=None) or True
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10, verify=verify)
        response.raise_for_status()
        return {"status": response.status_code, **response.json()}

    sync_inventory()


cyberark_http_token()
