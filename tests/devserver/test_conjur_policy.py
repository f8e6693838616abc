"""Conjur policy loads over real HTTPS (docs/cyberark-apis.md §8.4): what a migration writes (a branch
with variables, a group permitted to read them, hosts granted the group), then reads with the same
authorization rules as any other read."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.conjur.policy import PolicyInvalid
from cyberark_ops.devserver.conjur.state import ConjurModel
from tests.conftest import DevClient

ADMIN_KEY = "admin-api-key-0123456789"
WORKER_KEY = "worker-api-key-0123456789"
SEED: dict[str, Any] = {
    "conjur": {
        "account": "myorg",
        "users": [{"id": "admin", "api_key": ADMIN_KEY}],
        "hosts": [{"id": "airflow/worker", "api_key": WORKER_KEY}],
    }
}
MIGRATION = b"""
- !policy
  id: airflow
  body:
  - !group readers
  - !variable
    id: connections/warehouse
    annotations: {cyberark-ops/source: migrate}
  - !variable variables/api_token
  - !permit
    role: !group readers
    privileges: [read, execute]
    resources: [!variable connections/warehouse, !variable variables/api_token]
  - !host loader
- !grant
  role: !group airflow/readers
  member: !host airflow/worker
"""


@pytest.fixture
def conjur(make_server: Callable[..., DevServer]) -> Iterator[DevClient]:
    client = DevClient(make_server(SEED))
    yield client
    client.close()


def token(client: DevClient, login: str, api_key: str) -> dict[str, str]:
    response = client.post(f"/authn/myorg/{quote(login, safe='')}/authenticate", data=api_key)
    assert response.status_code == 200, response.text
    return {"Authorization": f'Token token="{base64.b64encode(response.content).decode()}"'}


def load(
    client: DevClient, auth: dict[str, str], body: bytes, *, method: str = "POST", policy: str = "root", query: str = ""
) -> requests.Response:
    return client.request(method, f"/policies/myorg/policy/{policy}{query}", data=body, headers=auth)


def read(client: DevClient, auth: dict[str, str], var_id: str) -> requests.Response:
    return client.get(f"/secrets/myorg/variable/{quote(var_id, safe='')}", headers=auth)


def test_a_migration_policy_then_values_then_reads_through_the_group(conjur: DevClient) -> None:
    admin = token(conjur, "admin", ADMIN_KEY)
    loaded = load(conjur, admin, MIGRATION)
    assert loaded.status_code == 201, loaded.text
    body = loaded.json()
    assert body["version"] == 1
    assert list(body["created_roles"]) == ["myorg:host:airflow/loader"]
    loader_key = body["created_roles"]["myorg:host:airflow/loader"]["api_key"]
    assert read(conjur, admin, "airflow/connections/warehouse").status_code == 404  # declared, no value yet
    value = '{"conn_type": "postgres", "password": "p@ss w0rd"}'
    stored = conjur.post(
        "/secrets/myorg/variable/airflow%2Fconnections%2Fwarehouse", data=value.encode(), headers=admin
    )
    assert stored.status_code == 201
    worker = token(conjur, "host/airflow/worker", WORKER_KEY)
    assert read(conjur, worker, "airflow/connections/warehouse").text == value
    loader = token(conjur, "host/airflow/loader", loader_key)
    assert read(conjur, loader, "airflow/connections/warehouse").status_code == 404  # not in the group
    assert (
        conjur.post("/secrets/myorg/variable/airflow%2Fconnections%2Fwarehouse", data=b"x", headers=worker).status_code
        == 403
    )
    event = conjur.server.app.audit.events(action="conjur.load_policy")[-1]
    assert event["detail"] == "version=1;created_roles=1"
    assert loader_key not in json.dumps(conjur.server.app.audit.events())


def test_patch_grants_and_revokes_and_put_replaces_a_branch(conjur: DevClient) -> None:
    admin = token(conjur, "admin", ADMIN_KEY)
    assert load(conjur, admin, MIGRATION).status_code == 201
    for var_id in ("airflow/connections/warehouse", "airflow/variables/api_token"):
        conjur.post(f"/secrets/myorg/variable/{quote(var_id, safe='')}", data=b"v4lue", headers=admin)
    worker = token(conjur, "host/airflow/worker", WORKER_KEY)
    revoke = b"- !revoke\n  role: !group airflow/readers\n  member: !host airflow/worker\n"
    assert load(conjur, admin, revoke, method="POST").status_code == 422
    assert load(conjur, admin, revoke, method="PATCH").status_code == 201
    assert read(conjur, worker, "airflow/variables/api_token").status_code == 404
    regrant = b"- !grant\n  role: !group readers\n  member: !host /airflow/worker\n"
    assert load(conjur, admin, regrant, method="PATCH", policy="airflow").status_code == 201
    assert read(conjur, worker, "airflow/variables/api_token").text == "v4lue"
    replace = b"""
- !group readers
- !variable connections/warehouse
- !permit {role: !group readers, privileges: [read], resource: !variable connections/warehouse}
"""
    assert load(conjur, admin, replace, method="PUT", policy="airflow").status_code == 201
    assert read(conjur, admin, "airflow/variables/api_token").status_code == 404
    assert read(conjur, admin, "airflow/connections/warehouse").text == "v4lue"
    assert conjur.server.app.conjur.find_role("host", "airflow/loader") is None


def test_dry_run_changes_nothing(conjur: DevClient) -> None:
    admin = token(conjur, "admin", ADMIN_KEY)
    dry = load(conjur, admin, MIGRATION, query="?dryRun=true")
    assert dry.status_code == 200
    assert dry.json() == {"created_roles": {}, "version": 0}
    assert conjur.server.app.conjur.find_role("host", "airflow/loader") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"- !permit {role: !group nope, privileges: [read], resource: !variable x}", "not found in account 'myorg'"),
        (b"- !variable x\n- !delete {record: !variable x}", "may not contain deletion statements"),
        (b"- !webservice authn", "does not load !webservice"),
        (b"- !variable {id: x, colour: red}", "unknown field 'colour'"),
        (b"- !permit {role: !group g, privileges: [fly], resource: !variable x}", "privileges must be"),
        (b"- !variable ../escape", "a non-empty id is required"),
        (b"- plain", "expected a tagged statement"),
        (b"- !variable x\n  : [", "not valid YAML"),
        (b"\xff\xfe", "not UTF-8"),
        (b"a: &a [x]\nb: [*a, *a]", "aliases"),
        (b"[" * 100_000, "not valid YAML"),
    ],
)
def test_policies_conjur_refuses_get_422_and_the_server_keeps_answering(
    conjur: DevClient, body: bytes, message: str
) -> None:
    response = load(conjur, token(conjur, "admin", ADMIN_KEY), body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "policy_invalid"
    assert message in response.json()["error"]["message"]
    assert conjur.get("/").status_code == 200


def test_an_empty_policy_body_is_a_validation_error(conjur: DevClient) -> None:
    response = load(conjur, token(conjur, "admin", ADMIN_KEY), b"")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


def test_only_visible_policies_can_be_loaded(conjur: DevClient) -> None:
    worker = token(conjur, "host/airflow/worker", WORKER_KEY)
    assert load(conjur, worker, MIGRATION).status_code == 404
    assert load(conjur, token(conjur, "admin", ADMIN_KEY), b"- !variable x", policy="never/loaded").status_code == 404
    assert load(conjur, {}, MIGRATION).status_code == 401


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_bytes_load_or_are_refused_with_policy_invalid(body: bytes) -> None:
    model = ConjurModel.from_seed(SEED["conjur"], "conjur", state_dir=Path("/nonexistent"))
    admin = model.find_role("user", "admin")
    assert admin is not None
    with contextlib.suppress(PolicyInvalid):
        model.load_policy("PATCH", "root", body, caller=admin, dry_run=False)


def test_a_group_member_lists_and_reads_many_with_one_walk_of_its_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group closure walks every group; listing resources or reading a batch computes it once
    per call, not once per variable (a host in a group over many variables stays cheap)."""
    model = ConjurModel.from_seed(SEED["conjur"], "conjur", state_dir=tmp_path)
    admin, worker = model.role_for_login("admin"), model.role_for_login("host/airflow/worker")
    assert admin is not None and worker is not None
    assert model.load_policy("POST", "root", MIGRATION, caller=admin, dry_run=False) is not None
    walks: list[str] = []
    walk = model._role_keys
    monkeypatch.setattr(model, "_role_keys", lambda role: walks.append(role.key) or walk(role))
    listed = model.resources(worker, "variable", None)
    assert [r["id"] for r in listed] == [
        "myorg:variable:airflow/connections/warehouse",
        "myorg:variable:airflow/variables/api_token",
    ]
    assert walks == ["host:airflow/worker"]
    walks.clear()
    ids = ["airflow/connections/warehouse", "airflow/variables/api_token", "airflow/missing"]
    assert {var_id: privileges for var_id, (privileges, _) in model.read_many(worker, ids).items()} == {
        "airflow/connections/warehouse": frozenset({"read", "execute"}),
        "airflow/variables/api_token": frozenset({"read", "execute"}),
    }
    assert walks == ["host:airflow/worker"]
