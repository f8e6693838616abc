"""The plan: which entries hold a secret, the exact path the backend reads for each id, and a
policy that declares exactly those ids whatever characters they hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberark_ops.devserver.conjur.policy import Grant, Permit, Record, parse
from cyberark_ops.migrate import Held, Plan, PlanError, conjur_policy, make_plan, planned_path, yaml_quoted
from cyberark_ops.secrets import CyberArkSecretsBackend

KWARGS: dict[str, Any] = {
    "url": "https://conjur.example.com",
    "api": "conjur",
    "account": "myorg",
    "login": "host/airflow/worker",
    "api_key_file": "/run/key",
    "env": "prod",
    "connections_path": "airflow/{env}/connections/{conn_id}",
    "variables_path": "airflow/{env}/variables/{variable}",
}
# Ids as Airflow users write them, and then some: any text at all.
any_id = st.text(min_size=1, max_size=60)
airflowish_id = st.from_regex(r"[\w#!():/\\.-]{1,40}", fullmatch=True)


def held(kind: str, item: str, fields: tuple[str, ...] = ("password",), **kw: Any) -> Held:
    return Held(kind, item, kw.pop("source", "db"), "{}", fields, kw.pop("conn_type", "postgres"))


def test_secrets_are_planned_and_the_rest_is_left_with_a_reason() -> None:
    plan = make_plan(
        [
            held("connection", "warehouse"),
            held("connection", "http_api", ("extra.api_key",)),
            held("connection", "plain_http", ()),
            held("connection", "cyberark_conjur", conn_type="cyberark"),
            held("connection", "env_db", source="env"),
            held("variable", "api_token", ("value",)),
            held("variable", "region", ()),
            held("variable", "bucket_name", ()),
            held("connection", "skip_me"),
        ],
        KWARGS,
        airflow_group="airflow/readers",
        include=["variable:bucket_*"],
        exclude=["skip_*"],
    )
    planned = {e.key: e for e in plan.entries}
    assert sorted(planned) == [
        "connection:env_db",
        "connection:http_api",
        "connection:warehouse",
        "variable:api_token",
        "variable:bucket_name",
    ]
    assert planned["connection:warehouse"].path == "airflow/prod/connections/warehouse"
    assert planned["connection:warehouse"].on_remove == "strip"
    assert planned["connection:env_db"].on_remove == "env"
    assert planned["variable:api_token"].variable_id == "airflow/prod/variables/api_token"
    assert planned["variable:api_token"].on_remove == "delete"
    reasons = {x.id: x.reason for x in plan.left}
    assert "no secret" in reasons["plain_http"] and "no secret" in reasons["region"]
    assert "cyberark connection" in reasons["cyberark_conjur"]
    assert "--exclude" in reasons["skip_me"]


def test_the_plan_round_trips_through_its_file_and_holds_no_value(tmp_path: Path) -> None:
    canary = "CANARY-value-9f3a"
    plan = make_plan(
        [Held("connection", "db", "db", json.dumps({"password": canary}), ("password",), "postgres")],
        KWARGS,
        airflow_group="airflow/readers",
    )
    path = tmp_path / "plan.json"
    plan.write(path)
    assert canary not in path.read_text()
    assert Plan.read(path) == plan
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{", "not JSON"), ('{"version": 7}', "not a version 1"), ('{"version": 1}', "malformed")],
)
def test_a_bad_plan_file_is_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(PlanError, match=problem):
        Plan.read(path)


def test_two_ids_on_one_path_are_refused() -> None:
    kwargs = {**KWARGS, "variables_path": "airflow/{env}/connections/{variable}"}
    with pytest.raises(PlanError, match="same path"):
        make_plan([held("connection", "x"), held("variable", "x", ("value",))], kwargs, airflow_group="g")


def test_other_apis_and_bad_kwargs_are_refused_by_name() -> None:
    with pytest.raises(PlanError, match="--backend-kwargs"):
        make_plan([], {**KWARGS, "connections_path": "x/{nope}"}, airflow_group="g")
    pvwa = {
        "url": "https://pvwa",
        "api": "pvwa",
        "login": "u",
        "password_file": "/p",
        "connections_path": "S/{conn_id}",
    }
    with pytest.raises(PlanError, match="--platform-id: required for api 'pvwa'"):
        make_plan([], pvwa, airflow_group="g")
    ccp = {"url": "https://ccp", "api": "ccp", "app_id": "A", "connections_path": "Safe=S;Object={conn_id}"}
    with pytest.raises(PlanError, match="migrate writes into Conjur, PVWA or Privilege Cloud"):
        make_plan([], ccp, airflow_group="g")


@settings(max_examples=300, deadline=None)
@given(st.one_of(any_id, airflowish_id), st.sampled_from(["connection", "variable"]))
def test_a_planned_path_is_what_the_backend_template_gives_and_a_valid_conjur_id(kind_id: str, kind: str) -> None:
    backend = CyberArkSecretsBackend(**KWARGS)
    found = planned_path(backend, kind, kind_id)
    if isinstance(found, str):
        return
    path, variable_id = found
    section = "connections" if kind == "connection" else "variables"
    assert path == variable_id == f"airflow/prod/{section}/{kind_id}"
    # The policy declares exactly this id, whatever it holds.
    (record,) = [s for s in parse(conjur_policy([variable_id], "g").encode(), "root") if isinstance(s, Record)][1:]
    assert record.ref.id == variable_id


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_yaml_quoting_reads_back_as_the_same_text(text: str) -> None:
    import yaml

    assert yaml.safe_load(yaml_quoted(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[^\x00-\x1f]{1,30}", fullmatch=True), min_size=1, max_size=5, unique=True))
def test_hostile_ids_cannot_add_statements_to_the_policy(ids: list[str]) -> None:
    """Quotes, ``- !host``, ``#``, ``:``, newlines spelt as U+2028: each id stays one scalar, so the
    policy holds the group, the variables, one permit and nothing else."""
    ids = [i for i in ids if i.strip("/") and ".." not in i.split("/") and not i.startswith("/")]
    if not ids:
        return
    statements = parse(conjur_policy(ids, "airflow/readers", ["host/airflow/worker"]).encode(), "root")
    records = [s for s in statements if isinstance(s, Record)]
    assert [r.ref.key for r in records] == ["group:airflow/readers", *(f"variable:{i}" for i in ids)]
    (permit,) = [s for s in statements if isinstance(s, Permit)]
    assert permit.privileges == ("read", "execute")
    assert [r.id for r in permit.resources] == ids
    (grant,) = [s for s in statements if isinstance(s, Grant)]
    assert grant.members[0].key == "host:airflow/worker"
    assert len(statements) == len(ids) + 3


def test_a_bad_grant_target_is_named() -> None:
    with pytest.raises(PlanError, match="--grant-to 'airflow'"):
        conjur_policy(["x"], "g", ["airflow"])
