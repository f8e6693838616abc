"""One dev server seed for the cloud authenticators (authn-iam, authn-azure, authn-gcp) shared by the
client, hook, secrets backend, doctor and example DAG tests: AWS identities the STS stand-in knows,
an Azure VM with a system- and a user-assigned identity, a GCE instance, and the Conjur hosts whose
ids or annotations map them (docs/cyberark-apis.md §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cyberark_ops.devserver import DevServer

ACCOUNT = "myorg"
AWS_ACCOUNT = "188945769008"
ROLE_KEY = "ASIAQ3EGRMPLEEXAMPLE"
ROLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
ROLE_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE+session/token=="
ROLE_ARN = f"arn:aws:sts::{AWS_ACCOUNT}:assumed-role/airflow-worker/i-0abc123"
OTHER_KEY = "AKIAQ3EGRMPLEOTHER01"
OTHER_SECRET = "other-secret-access-key-012345678"
OTHER_ARN = f"arn:aws:iam::{AWS_ACCOUNT}:user/someone-else"

IAM_HOST = f"host/aws/prod/{AWS_ACCOUNT}/airflow-worker"
AZURE_HOST = "host/azure/airflow-vm"
AZURE_USER_HOST = "host/azure/airflow-identity"
AZURE_WRONG_HOST = "host/azure/wrong-group"
GCP_HOST = "host/gcp/airflow-vm"
GCP_WRONG_HOST = "host/gcp/wrong-project"

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUBSCRIPTION = "0a1b2c3d-1111-2222-3333-444455556666"
SYSTEM_OID = "11111111-2222-3333-4444-555555555555"
USER_OID = "66666666-2222-3333-4444-555555555555"
USER_CLIENT = "bbbbbbbb-2222-3333-4444-555555555555"
GCP_PROJECT = "my-project-1"
GCP_EMAIL = "airflow@my-project-1.iam.gserviceaccount.com"

VARIABLE = "cloud/db/password"
VALUE = "Cloud-Fetched-Passw0rd-7781"
"""A canary long enough to be masked (leak tests search for it)."""

_AZ = "authn-azure"
SEED: dict[str, Any] = {
    "conjur": {
        "account": ACCOUNT,
        "hosts": [
            {"id": IAM_HOST.removeprefix("host/")},
            {
                "id": AZURE_HOST.removeprefix("host/"),
                "annotations": {
                    f"{_AZ}/subscription-id": SUBSCRIPTION,
                    f"{_AZ}/resource-group": "rg-airflow",
                    f"{_AZ}/system-assigned-identity": SYSTEM_OID,
                },
            },
            {
                "id": AZURE_USER_HOST.removeprefix("host/"),
                "annotations": {
                    f"{_AZ}/subscription-id": SUBSCRIPTION,
                    f"{_AZ}/resource-group": "rg-ids",
                    f"{_AZ}/user-assigned-identity": "airflow-identity",
                },
            },
            {
                "id": AZURE_WRONG_HOST.removeprefix("host/"),
                "annotations": {f"{_AZ}/subscription-id": SUBSCRIPTION, f"{_AZ}/resource-group": "rg-other"},
            },
            {
                "id": GCP_HOST.removeprefix("host/"),
                "annotations": {"authn-gcp/project-id": GCP_PROJECT, "authn-gcp/service-account-email": GCP_EMAIL},
            },
            {"id": GCP_WRONG_HOST.removeprefix("host/"), "annotations": {"authn-gcp/project-id": "another-project"}},
        ],
        "variables": [{"id": VARIABLE, "value": VALUE}, {"id": "cloud/db/username", "value": "cloud_reader"}],
        "permits": [
            {"role": host.replace("/", ":", 1), "privileges": ["read", "execute"], "resources": ["cloud/*"]}
            for host in (IAM_HOST, AZURE_HOST, AZURE_USER_HOST, GCP_HOST)
        ],
        "authn_iam": [{"service_id": "prod"}],
        "authn_azure": [{"service_id": "prod", "provider_uri": f"https://sts.windows.net/{TENANT}/"}],
        "authn_gcp": {},
    },
    "cloud": {
        "aws_identities": [
            {"access_key_id": ROLE_KEY, "secret_access_key": ROLE_SECRET, "arn": ROLE_ARN, "session_token": ROLE_TOKEN},
            {"access_key_id": OTHER_KEY, "secret_access_key": OTHER_SECRET, "arn": OTHER_ARN},
        ],
        "azure_vms": [
            {
                "name": "airflow-vm",
                "subscription_id": SUBSCRIPTION,
                "resource_group": "rg-airflow",
                "tenant_id": TENANT,
                "system_assigned": {"oid": SYSTEM_OID, "client_id": "aaaaaaaa-2222-3333-4444-555555555555"},
                "user_assigned": [
                    {"name": "airflow-identity", "resource_group": "rg-ids", "oid": USER_OID, "client_id": USER_CLIENT}
                ],
            }
        ],
        "gcp_instances": [
            {
                "instance_name": "airflow-vm",
                "project_id": GCP_PROJECT,
                "service_account_email": GCP_EMAIL,
                "service_account_id": "109876543210",
            }
        ],
    },
}

CLOUD_SECRETS = (ROLE_SECRET, ROLE_TOKEN, OTHER_SECRET)


def azure_metadata_url(server: DevServer) -> str:
    return f"{server.info()['url']}/azure-imds/airflow-vm"


def gcp_metadata_url(server: DevServer) -> str:
    return f"{server.info()['url']}/gcp-metadata/airflow-vm"


def sts_url(server: DevServer) -> str:
    return f"{server.info()['url']}/aws-sts"


def aws_env(
    monkeypatch: Any, tmp_path: Path, *, key: str = ROLE_KEY, secret: str = ROLE_SECRET, token: str | None = ROLE_TOKEN
) -> None:
    """botocore's chain sees these keys in the environment and nothing else: no shared files, and
    never the instance metadata service (169.254.169.254)."""
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)


def isolate_aws(monkeypatch: Any, tmp_path: Path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-absent"))
