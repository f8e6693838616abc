"""Conjur secrets with no API key anywhere: the worker's AWS, Azure or Google Cloud identity is its
Conjur identity (Conjur's authn-iam, authn-azure and authn-gcp authenticators).

One task per cloud; keep the one for the cloud your workers run in. Each task names a connection
whose login is the Conjur host the cloud identity maps to and whose Extra picks the authenticator,
for example (docs/apis/conjur.md lists the host annotations each one needs):

* ``cyberark_conjur_aws``: ``{"account": "myorg", "auth_method": "authn-iam", "service_id": "prod"}``
  with login ``host/aws/prod/<aws account id>/<iam role name>``. The worker's AWS credentials come
  from botocore's chain (environment, shared profile, container or instance role); install
  ``cyberark-ops[aws]``.
* ``cyberark_conjur_azure``: ``{"account": "myorg", "auth_method": "authn-azure", "service_id": "prod"}``
  (plus ``azure_client_id`` for a user-assigned identity), login the host annotated with the VM's
  subscription, resource group and identity.
* ``cyberark_conjur_gcp``: ``{"account": "myorg", "auth_method": "authn-gcp"}``, login the host
  annotated with the instance's project or service account.

``cyberark-ops doctor --conn-id <id>`` shows which cloud identity a worker has and the Conjur host it
maps to. The Conjur variable ``cloud/db/password`` is the database password each task needs.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from cyberark_ops import with_cyberark_secret

PASSWORD = "cloud/db/password"


@dag(
    dag_id="cyberark_cloud_identity",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cyberark-ops", "example"],
)
def cyberark_cloud_identity() -> None:
    @task
    @with_cyberark_secret(vault_conn_id="cyberark_conjur_aws", password=PASSWORD, reason="nightly export (AWS)")
    def export_on_aws(password: str) -> dict[str, Any]:
        return {"cloud": "aws", "password_length": len(password)}

    @task
    def export_on_azure() -> dict[str, Any]:
        from cyberark_ops import CyberArkHook

        password = CyberArkHook("cyberark_conjur_azure", reason="nightly export (Azure)").get_secret(PASSWORD)
        return {"cloud": "azure", "password_length": len(password)}

    @task
    @with_cyberark_secret(vault_conn_id="cyberark_conjur_gcp", password=PASSWORD, reason="nightly export (GCP)")
    def export_on_gcp(password: str) -> dict[str, Any]:
        return {"cloud": "gcp", "password_length": len(password)}

    export_on_aws()
    export_on_azure()
    export_on_gcp()


cyberark_cloud_identity()
