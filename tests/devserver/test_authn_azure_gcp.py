"""authn-azure and authn-gcp against the IMDS and GCE metadata stand-ins, over real HTTPS: a token is
taken from the stand-in as a workload would, then posted to Conjur. Host annotations decide, with
Conjur's codes in the audit log (docs/cyberark-apis.md §8.2, §8.3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from cyberark_ops.devserver import DevServer, SeedError
from tests.conftest import DevClient

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUBSCRIPTION = "0a1b2c3d-1111-2222-3333-444455556666"
SYSTEM_OID = "11111111-2222-3333-4444-555555555555"
SYSTEM_CLIENT = "aaaaaaaa-2222-3333-4444-555555555555"
USER_OID = "66666666-2222-3333-4444-555555555555"
USER_CLIENT = "bbbbbbbb-2222-3333-4444-555555555555"
PROVIDER = f"https://sts.windows.net/{TENANT}/"
RESOURCE = "https://management.azure.com/"

AZ = "authn-azure"
HOSTS = [
    {
        "id": "azure/system",
        "annotations": {
            f"{AZ}/subscription-id": SUBSCRIPTION,
            f"{AZ}/resource-group": "rg-vms",
            f"{AZ}/system-assigned-identity": SYSTEM_OID,
        },
    },
    {
        "id": "azure/user",
        "annotations": {
            f"{AZ}/subscription-id": SUBSCRIPTION,
            f"{AZ}/resource-group": "rg-ids",
            f"{AZ}/user-assigned-identity": "airflow-identity",
        },
    },
    {
        "id": "azure/other-identity",
        "annotations": {
            f"{AZ}/subscription-id": SUBSCRIPTION,
            f"{AZ}/resource-group": "rg-ids",
            f"{AZ}/user-assigned-identity": "another-identity",
        },
    },
    {"id": "azure/vm-only", "annotations": {f"{AZ}/subscription-id": SUBSCRIPTION, f"{AZ}/resource-group": "rg-vms"}},
    {"id": "azure/no-group", "annotations": {f"{AZ}/subscription-id": SUBSCRIPTION}},
    {
        "id": "azure/both",
        "annotations": {
            f"{AZ}/subscription-id": SUBSCRIPTION,
            f"{AZ}/resource-group": "rg-vms",
            f"{AZ}/system-assigned-identity": SYSTEM_OID,
            f"{AZ}/user-assigned-identity": "airflow-identity",
        },
    },
    {
        "id": "azure/unknown",
        "annotations": {f"{AZ}/subscription-id": SUBSCRIPTION, f"{AZ}/resource-group": "rg-vms", f"{AZ}/colour": "red"},
    },
    {
        "id": "azure/specific",
        "annotations": {
            f"{AZ}/subscription-id": SUBSCRIPTION,
            f"{AZ}/resource-group": "wrong",
            f"{AZ}/prod/resource-group": "rg-vms",
        },
    },
    {
        "id": "azure/other-sub",
        "annotations": {
            f"{AZ}/subscription-id": "ffffffff-1111-2222-3333-444455556666",
            f"{AZ}/resource-group": "rg-vms",
        },
    },
    {"id": "gcp/vm", "annotations": {"authn-gcp/project-id": "my-project-1", "authn-gcp/instance-name": "vm-01"}},
    {
        "id": "gcp/email",
        "annotations": {
            "authn-gcp/service-account-email": "airflow@my-project-1.iam.gserviceaccount.com",
            "authn-gcp/service-account-id": "109876543210",
        },
    },
    {"id": "gcp/instance-only", "annotations": {"authn-gcp/instance-name": "vm-01"}},
    {"id": "gcp/wrong", "annotations": {"authn-gcp/project-id": "another-project"}},
    {"id": "gcp/unknown", "annotations": {"authn-gcp/project-id": "my-project-1", "authn-gcp/zone": "x"}},
    {"id": "gcp/barred", "annotations": {"authn-gcp/project-id": "my-project-1"}},
]
PERMITTED = [h["id"] for h in HOSTS if h["id"] != "gcp/barred"]
SEED: dict[str, Any] = {
    "conjur": {
        "account": "acme",
        "hosts": HOSTS,
        "authn_azure": [
            {"service_id": "prod", "provider_uri": PROVIDER.rstrip("/")},
            {
                "service_id": "other-tenant",
                "provider_uri": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
            },
        ],
        "authn_gcp": {"enabled_hosts": PERMITTED},
    },
    "cloud": {
        "azure_vms": [
            {
                "name": "vm-01",
                "subscription_id": SUBSCRIPTION,
                "resource_group": "rg-vms",
                "tenant_id": TENANT,
                "system_assigned": {"oid": SYSTEM_OID, "client_id": SYSTEM_CLIENT},
                "user_assigned": [
                    {"name": "airflow-identity", "resource_group": "rg-ids", "oid": USER_OID, "client_id": USER_CLIENT}
                ],
            },
            {
                "name": "vm-02",
                "subscription_id": SUBSCRIPTION,
                "resource_group": "rg-vms",
                "tenant_id": TENANT,
                "user_assigned": [
                    {"name": "a", "oid": USER_OID, "client_id": "cccccccc-2222-3333-4444-555555555555"},
                    {"name": "b", "oid": USER_OID, "client_id": "dddddddd-2222-3333-4444-555555555555"},
                ],
            },
        ],
        "gcp_instances": [
            {
                "instance_name": "vm-01",
                "project_id": "my-project-1",
                "service_account_email": "airflow@my-project-1.iam.gserviceaccount.com",
                "service_account_id": "109876543210",
            }
        ],
    },
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[DevClient]:
    with DevServer(SEED) as server:
        client = DevClient(server)
        yield client
        client.close()


def imds(client: DevClient, vm: str = "vm-01", *, headers: Any = None, **query: str) -> Any:
    params = {"api-version": "2018-02-01", "resource": RESOURCE, **query}
    return client.get(
        f"/azure-imds/{vm}/metadata/identity/oauth2/token",
        params={k: v for k, v in params.items() if v},
        headers={"Metadata": "true"} if headers is None else headers,
    )


def azure_token(client: DevClient, **query: str) -> str:
    response = imds(client, **query)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def azure_login(client: DevClient, host: str, token: str, service: str = "prod") -> Any:
    return client.post(
        f"/authn-azure/{service}/acme/{quote('host/' + host, safe='')}/authenticate", data={"jwt": token}
    )


def detail(client: DevClient, action: str) -> str:
    return str(client.server.app.audit.events(action=action)[-1].get("detail"))


def claims_of(token: str) -> dict[str, Any]:
    import base64

    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


# -- Azure ----------------------------------------------------------------------------------------


def test_imds_issues_tokens_with_the_real_claim_shapes(cloud: DevClient) -> None:
    answer = imds(cloud).json()
    assert answer["token_type"] == "Bearer"
    assert answer["resource"] == RESOURCE
    assert answer["expires_in"] == "3600"
    claims = claims_of(answer["access_token"])
    assert claims["iss"] == PROVIDER
    assert claims["oid"] == SYSTEM_OID
    assert claims["xms_mirid"] == (
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-vms/providers/Microsoft.Compute/virtualMachines/vm-01"
    )
    user = claims_of(azure_token(cloud, client_id=USER_CLIENT))
    assert user["xms_mirid"].endswith(
        "/resourcegroups/rg-ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/airflow-identity"
    )
    assert user["oid"] == USER_OID


@pytest.mark.parametrize(
    ("vm", "headers", "query", "message"),
    [
        ("vm-01", {}, {}, "Required metadata header not specified"),
        ("vm-01", None, {"api-version": ""}, "api-version"),
        ("vm-01", None, {"resource": ""}, "resource"),
        ("vm-01", None, {"client_id": "eeeeeeee-2222-3333-4444-555555555555"}, "Identity not found"),
        ("vm-02", None, {}, "Multiple user assigned identities"),
        ("vm-99", None, {}, "Identity not found"),
    ],
)
def test_imds_refuses_as_imds_does(
    cloud: DevClient, vm: str, headers: Any, query: dict[str, str], message: str
) -> None:
    response = imds(cloud, vm, headers=headers, **query)
    assert response.status_code == 400
    assert message in response.json()["error_description"]


@pytest.mark.parametrize(
    ("host", "client_id"),
    [("azure/system", ""), ("azure/user", USER_CLIENT), ("azure/vm-only", ""), ("azure/specific", "")],
)
def test_a_matching_managed_identity_authenticates(cloud: DevClient, host: str, client_id: str) -> None:
    response = azure_login(cloud, host, azure_token(cloud, client_id=client_id))
    assert response.status_code == 200, detail(cloud, "conjur.authenticate_azure")
    assert cloud.server.app.audit.events(action="conjur.authenticate_azure")[-1]["identity"] == f"host/{host}"


@pytest.mark.parametrize(
    ("host", "client_id", "code"),
    [
        ("azure/user", "", "CONJ00049E Resource restriction 'resource-group'"),
        ("azure/other-identity", USER_CLIENT, "CONJ00049E Resource restriction 'user-assigned-identity'"),
        ("azure/system", USER_CLIENT, "CONJ00049E Resource restriction 'resource-group'"),
        ("azure/no-group", "", "CONJ00057E Role does not have the required constraints: '[\"resource-group\"]'"),
        ("azure/both", "", "CONJ00055E"),
        ("azure/unknown", "", "CONJ00050E Resource type 'colour'"),
        ("azure/other-sub", "", "CONJ00049E Resource restriction 'subscription-id'"),
        ("azure/ghost", "", "CONJ00007E"),
    ],
)
def test_annotations_that_do_not_match_are_refused(cloud: DevClient, host: str, client_id: str, code: str) -> None:
    response = azure_login(cloud, host, azure_token(cloud, client_id=client_id))
    assert response.status_code == 401
    assert response.content == b""
    assert detail(cloud, "conjur.authenticate_azure").startswith(code)


def test_azure_tokens_from_another_issuer_or_key_are_refused(cloud: DevClient) -> None:
    token = azure_token(cloud)
    assert azure_login(cloud, "azure/system", token, service="other-tenant").status_code == 401
    assert detail(cloud, "conjur.authenticate_azure").startswith("CONJ00035E")
    forged = cloud.admin("POST", "/conjur/jwt", json={"claims": claims_of(token)}).json()["jwt"]
    assert azure_login(cloud, "azure/system", forged).status_code == 401
    assert detail(cloud, "conjur.authenticate_azure").startswith("CONJ00035E")
    assert azure_login(cloud, "azure/system", "").status_code == 400
    assert azure_login(cloud, "azure/system", "not-a-jwt").status_code == 401
    assert detail(cloud, "conjur.authenticate_azure").startswith("CONJ00077E")


def test_an_expired_azure_token_gets_conjurs_json_message(make_server: Any) -> None:
    server = make_server(SEED)
    client = DevClient(server)
    token = azure_token(client)
    server.app.clock.advance(3601)
    response = azure_login(client, "azure/system", token)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "CONJ00016E Token expired"}}
    client.close()


# -- GCP ------------------------------------------------------------------------------------------


def gce(client: DevClient, audience: str, *, full: bool = True, instance: str = "vm-01", headers: Any = None) -> Any:
    params = {"audience": audience, **({"format": "full"} if full else {})}
    return client.get(
        f"/gcp-metadata/{instance}/computeMetadata/v1/instance/service-accounts/default/identity",
        params=params,
        headers={"Metadata-Flavor": "Google"} if headers is None else headers,
    )


def gcp_login(
    client: DevClient, host: str, *, full: bool = True, account: str = "acme", audience: str | None = None
) -> Any:
    token = gce(client, audience or f"conjur/{account}/host/{host}", full=full)
    assert token.status_code == 200, token.text
    return client.post("/authn-gcp/acme/authenticate", data={"jwt": token.text})


def test_gce_metadata_issues_google_shaped_tokens(cloud: DevClient) -> None:
    claims = claims_of(gce(cloud, "conjur/acme/host/gcp/vm").text)
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == "conjur/acme/host/gcp/vm"
    assert claims["email"] == "airflow@my-project-1.iam.gserviceaccount.com"
    assert claims["sub"] == "109876543210"
    assert claims["google"]["compute_engine"]["project_id"] == "my-project-1"
    assert claims["google"]["compute_engine"]["instance_name"] == "vm-01"
    assert "google" not in claims_of(gce(cloud, "x", full=False).text)
    assert gce(cloud, "x", headers={}).status_code == 403
    assert gce(cloud, "").status_code == 400
    assert gce(cloud, "x", instance="vm-99").status_code == 404


@pytest.mark.parametrize("host", ["gcp/vm", "gcp/email"])
def test_a_matching_gce_instance_authenticates(cloud: DevClient, host: str) -> None:
    response = gcp_login(cloud, host)
    assert response.status_code == 200, detail(cloud, "conjur.authenticate_gcp")
    assert cloud.server.app.audit.events(action="conjur.authenticate_gcp")[-1]["identity"] == f"host/{host}"


@pytest.mark.parametrize(
    ("host", "kwargs", "status", "code"),
    [
        ("gcp/vm", {"full": False}, 401, "CONJ00068E Claim 'google.compute_engine.project_id' is missing"),
        ("gcp/instance-only", {}, 401, "CONJ00069E"),
        ("gcp/wrong", {}, 401, "CONJ00049E Resource restriction 'project-id'"),
        ("gcp/unknown", {}, 401, "CONJ00050E Resource type 'zone'"),
        ("gcp/barred", {}, 403, "CONJ00006E"),
        ("gcp/ghost", {}, 401, "CONJ00007E"),
        ("gcp/vm", {"account": "other"}, 401, "CONJ00070E"),
        ("gcp/vm", {"audience": "host/gcp/vm"}, 401, "CONJ00067E"),
    ],
)
def test_gcp_tokens_that_do_not_fit_are_refused(
    cloud: DevClient, host: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = gcp_login(cloud, host, **kwargs)
    assert response.status_code == status
    assert response.content == b""
    assert detail(cloud, "conjur.authenticate_gcp").startswith(code)


def test_authn_gcp_takes_no_login_in_the_url(cloud: DevClient) -> None:
    token = gce(cloud, "conjur/acme/host/gcp/vm").text
    assert (
        cloud.post(f"/authn-gcp/acme/{quote('host/gcp/vm', safe='')}/authenticate", data={"jwt": token}).status_code
        == 404
    )


def test_authenticators_lists_azure_and_gcp(cloud: DevClient) -> None:
    listed = cloud.get("/authenticators").json()
    assert {"authn-azure/prod", "authn-azure/other-tenant", "authn-gcp"} <= set(listed["enabled"])


@pytest.mark.parametrize(
    ("section", "where"),
    [
        (
            {
                "azure_vms": [
                    {
                        "name": "v",
                        "subscription_id": "nope",
                        "resource_group": "r",
                        "tenant_id": TENANT,
                        "system_assigned": {"oid": SYSTEM_OID, "client_id": SYSTEM_CLIENT},
                    }
                ]
            },
            "cloud.azure_vms[0].subscription_id",
        ),
        (
            {"azure_vms": [{"name": "v", "subscription_id": SUBSCRIPTION, "resource_group": "r", "tenant_id": TENANT}]},
            "cloud.azure_vms[0]",
        ),
        (
            {"gcp_instances": [{"instance_name": "VM", "project_id": "my-project-1", "service_account_email": "a@b"}]},
            "cloud.gcp_instances[0].instance_name",
        ),
        (
            {
                "gcp_instances": [
                    {
                        "instance_name": "vm",
                        "project_id": "my-project-1",
                        "service_account_email": "a@b",
                        "service_account_id": "abc",
                    }
                ]
            },
            "cloud.gcp_instances[0].service_account_id",
        ),
    ],
)
def test_cloud_seed_errors_name_the_field(section: dict[str, Any], where: str) -> None:
    with pytest.raises(SeedError) as error:
        DevServer({"cloud": section})
    assert where in str(error.value)


def test_an_azure_service_needs_a_provider_uri() -> None:
    with pytest.raises(SeedError, match=r"conjur\.authn_azure\[0\]\.provider_uri"):
        DevServer({"conjur": {"authn_azure": [{"service_id": "prod"}]}})
