"""The emulated Vault over real HTTPS: CCP GetPassword, PVWA REST and the Privilege Cloud token flow."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cyberark_ops.devserver import DevServer, SeedError
from cyberark_ops.devserver.tls import CLIENT_CERT_SUBJECT, issue_client_certificate
from cyberark_ops.devserver.vault.state import VaultModel
from tests.conftest import DevClient

CCP = "/AIMWebService/api/Accounts"
PVWA = "/PasswordVault/API"
TOKEN_URL = "/oauth2/platformtoken"
SEED_FILE = Path(__file__).parents[2] / "cyberark_ops" / "devserver" / "vault" / "demo_seed.yaml"
DEMO_VAULT: dict[str, Any] = yaml.safe_load(SEED_FILE.read_text("utf-8"))["vault"]

SVC = ("svc_airflow", "Airflow-Dev-Pass1")
PCLOUD_ID, PCLOUD_SECRET = "airflow-svc@cyberark.cloud.1234", "Pcloud-Dev-Secret1"
PG_SECRET = "Pg-Pr0d-Dev!"
SPECIAL_SECRET = "p@ss w0rd;&%+=?#\"'\\/<>|`$(x)ü€"
UNAUTHORIZED = {"ErrorCode": "PASWS006E", "ErrorMessage": "The session token is missing, invalid or expired."}


# -- fixtures and helpers ----------------------------------------------------------------------------


def vault_seed(**changes: Any) -> dict[str, Any]:
    seed = copy.deepcopy(DEMO_VAULT)
    seed.update(changes)
    return {"vault": seed}


@pytest.fixture(scope="module")
def shared_server() -> Iterator[DevServer]:
    """One server for the tests that change nothing but sessions; each server costs ~0.5 s to stop."""
    server = DevServer(vault_seed()).start()
    yield server
    server.stop()


@pytest.fixture
def vc(shared_server: DevServer) -> Iterator[DevClient]:
    """A client of the shared server, without a client certificate."""
    dev = DevClient(shared_server)
    yield dev
    dev.close()


@pytest.fixture
def mtls(shared_server: DevServer) -> Iterator[DevClient]:
    """A client of the shared server presenting the default dev client certificate."""
    dev = DevClient(shared_server).with_client_cert()
    yield dev
    dev.close()


@pytest.fixture
def server(make_server: Callable[..., DevServer]) -> DevServer:
    """A fresh server, for tests that rotate, move the clock or revoke."""
    return make_server(vault_seed())


@pytest.fixture
def fresh(server: DevServer) -> Iterator[DevClient]:
    dev = DevClient(server).with_client_cert()
    yield dev
    dev.close()


def ccp(client: DevClient, **params: str) -> requests.Response:
    return client.get(CCP, params=params)


def prod(client: DevClient, **params: str) -> requests.Response:
    return ccp(client, AppID="AirflowProd", **params)


def logon(client: DevClient, user: str = SVC[0], password: str = SVC[1], method: str = "CyberArk") -> str:
    response = client.post(
        f"{PVWA}/auth/{method}/Logon",
        json={"username": user, "password": password, "concurrentSession": True},
    )
    assert response.status_code == 200, response.text
    token = response.json()
    assert isinstance(token, str)
    return token


def platform_token(client: DevClient, secret: str = PCLOUD_SECRET) -> requests.Response:
    return client.post(
        TOKEN_URL, data={"grant_type": "client_credentials", "client_id": PCLOUD_ID, "client_secret": secret}
    )


def pvwa(client: DevClient, method: str, path: str, token: str | None, **kwargs: Any) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = token
    return client.request(method, PVWA + path, headers=headers, **kwargs)


def assert_ccp_error(response: requests.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"ErrorCode", "ErrorMsg"}
    assert body["ErrorCode"] == code
    return body


def assert_pvwa_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ErrorCode"] == code
    assert isinstance(body["ErrorMessage"], str) and body["ErrorMessage"]
    return body


def events(server: DevServer, action: str) -> list[dict[str, Any]]:
    return server.app.audit.events(action=action)


# -- CCP ---------------------------------------------------------------------------------------------


def test_ccp_returns_flat_string_properties(mtls: DevClient) -> None:
    response = prod(mtls, Safe="DB-Prod", Object="pg-prod", Reason="airflow task")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert all(isinstance(v, str) for v in body.values())
    assert body == {
        "Content": PG_SECRET,
        "CreationMethod": "PVWA",
        "Address": "127.0.0.1",
        "Safe": "DB-Prod",
        "UserName": "etl_user",
        "Name": "pg-prod",
        "PolicyID": "PostgreSQL",
        "DeviceType": "Database",
        "Folder": "Root",
        "Port": "5432",
        "Database": "sales",
        "PasswordChangeInProcess": "False",
    }


def test_ccp_path_and_parameter_names_are_case_insensitive(vc: DevClient) -> None:
    response = vc.get(
        "/aimwebservice/API/accounts/?appid=AirflowNoCert&SAFE=App-Dev&object=sqlite-dev&REASON=x&folder=Root"
    )
    assert response.status_code == 200
    assert response.json()["LogonDomain"] == "DEV"


def test_ccp_only_answers_get(vc: DevClient) -> None:
    assert vc.post(CCP, params={"AppID": "AirflowNoCert"}).status_code == 405


def test_ccp_returns_special_characters_exactly(vc: DevClient) -> None:
    response = ccp(vc, AppID="AirflowNoCert", Safe="App-Dev", Object="api-special")
    assert response.json()["Content"] == SPECIAL_SECRET


@pytest.mark.parametrize("params", [{}, {"AppID": ""}, {"Safe": "DB-Prod", "Object": "pg-prod"}])
def test_ccp_missing_app_id(vc: DevClient, params: dict[str, str]) -> None:
    assert_ccp_error(ccp(vc, **params), 400, "AIMWS031E")


@pytest.mark.parametrize(
    "query",
    [
        "AppID=AirflowProd",
        "AppID=AirflowProd&Reason=only-a-reason",
        "AppID=AirflowProd&Query=Safe",
        "AppID=AirflowProd&Query=Safe%3DDB-Prod%3B%3DRoot",
        "AppID=AirflowProd&Query=Safe%3DA%3Bsafe%3DB",
        "AppID=AirflowProd&Safe=DB-Prod&Object=pg-prod&QueryFormat=Fuzzy",
        "AppID=AirflowProd&Safe=DB-Prod&Object=(unclosed&QueryFormat=Regexp",
        "AppID=AirflowProd&Safe=DB-Prod&Object=a%25b",
        "AppID=AirflowProd&Safe=DB-Prod&Object=a%26b",
        "AppID=AirflowProd&Safe=DB-Prod&Object=a%2Bb",
        "AppID=AirflowProd&Safe=DB-Prod&Object=a%3Bb",
        "AppID=AirflowProd&Safe=DB-Prod&Object=pg%0Aprod",
        "AppID=AirflowProd&Safe=DB-Prod&Object=pg%00prod",
        "AppID=AirflowProd&Safe=DB-Prod&safe=App-Dev&Object=pg-prod",
        "AppID=AirflowProd&Safe=DB-Prod&Object=pg-prod&FailRequestOnPasswordChange=maybe",
        "AppID=AirflowProd&Safe=DB-Prod&Object=pg-prod&ConnectionTimeout=soon",
        "AppID=Airflow%2BProd&Safe=DB-Prod&Object=pg-prod",
    ],
)
def test_ccp_invalid_query_format(mtls: DevClient, query: str) -> None:
    body = assert_ccp_error(mtls.get(f"{CCP}?{query}"), 400, "AIMWS030E")
    assert "ErrorMessage" not in body


def test_ccp_certificate_required_and_checked(vc: DevClient, shared_server: DevServer, tmp_path: Path) -> None:
    missing = assert_ccp_error(prod(vc, Safe="DB-Prod", Object="pg-prod"), 403, "APPAP306E")
    assert missing["ErrorMsg"].startswith("Authentication error for App ID [AirflowProd]. Reason: APPAP133E")

    cert, key = issue_client_certificate(shared_server.state_dir, "intruder", tmp_path)
    vc.session.cert = (str(cert), str(key))
    wrong = assert_ccp_error(prod(vc, Safe="DB-Prod", Object="pg-prod"), 403, "APPAP306E")
    assert "APPAP133E" in wrong["ErrorMsg"] and 'CertificateSN "' in wrong["ErrorMsg"]

    vc.with_client_cert()
    assert prod(vc, Safe="DB-Prod", Object="pg-prod").status_code == 200


def test_ccp_unknown_and_disabled_app_ids(mtls: DevClient) -> None:
    unknown = assert_ccp_error(ccp(mtls, AppID="NoSuchApp", Safe="DB-Prod", Object="pg-prod"), 403, "APPAP008E")
    assert unknown["ErrorMsg"] == "ITATS982E User NoSuchApp is not defined"
    disabled = assert_ccp_error(ccp(mtls, AppID="AirflowDisabled", Safe="DB-Prod", Object="pg-prod"), 403, "APPAP008E")
    assert "AirflowDisabled" in disabled["ErrorMsg"]


def test_ccp_app_id_lookup_ignores_case(mtls: DevClient) -> None:
    assert ccp(mtls, AppID="airflowprod", Safe="DB-Prod", Object="pg-prod").status_code == 200


def test_ccp_machine_and_any_certificate_rules(make_server: Callable[..., DevServer]) -> None:
    apps = [
        {"app_id": "ElsewhereOnly", "allowed_safes": ["App-Dev"], "allowed_machines": ["10.0.0.0/8"]},
        {"app_id": "Loopback", "allowed_safes": ["App-Dev"], "allowed_machines": ["10.0.0.0/8", "127.0.0.1"]},
        {"app_id": "AnyCert", "allowed_safes": ["App-Dev"], "require_certificate": True},
    ]
    server = make_server(vault_seed(ccp_applications=apps))
    plain, with_cert = DevClient(server), DevClient(server).with_client_cert()

    def get(client: DevClient, app: str) -> requests.Response:
        return ccp(client, AppID=app, Safe="App-Dev", Object="sqlite-dev")

    machine = assert_ccp_error(get(with_cert, "ElsewhereOnly"), 403, "APPAP306E")
    assert '"127.0.0.1" is unauthorized' in machine["ErrorMsg"]
    assert get(plain, "Loopback").status_code == 200
    assert_ccp_error(get(plain, "AnyCert"), 403, "APPAP306E")
    assert get(with_cert, "AnyCert").status_code == 200
    plain.close()
    with_cert.close()


def test_ccp_not_found_hides_forbidden_safes(mtls: DevClient) -> None:
    missing = assert_ccp_error(prod(mtls, Safe="DB-Prod", Object="nope"), 404, "APPAP004E")
    assert missing["ErrorMsg"].startswith(
        "Password object matching query [Safe=DB-Prod;Folder=Root;Object=nope] was not found"
        " (Diagnostic Info: 5). Please check that there is a password object"
    )
    # Exists, but AirflowNoCert may not use DB-Prod: the same answer, with the same wording.
    forbidden = assert_ccp_error(ccp(mtls, AppID="AirflowNoCert", Safe="DB-Prod", Object="pg-prod"), 404, "APPAP004E")
    assert forbidden["ErrorMsg"] == missing["ErrorMsg"].replace("Object=nope", "Object=pg-prod")
    assert_ccp_error(prod(mtls, Safe="Restricted", Object="break-glass"), 404, "APPAP004E")
    assert_ccp_error(prod(mtls, Safe="DB-Prod", Folder="Sub", Object="pg-prod"), 404, "APPAP004E")


def test_ccp_query_overrides_other_parameters(mtls: DevClient) -> None:
    response = prod(mtls, Safe="App-Dev", Object="bogus", Query="Safe=DB-Prod;Folder=Root;Object=pg-prod")
    assert response.json()["Name"] == "pg-prod"
    by_props = prod(mtls, Query="Safe=DB-Prod;UserName=report_ro;Port=3306")
    assert by_props.json()["Name"] == "mariadb-reporting"


def test_ccp_search_by_other_parameters(mtls: DevClient) -> None:
    assert prod(mtls, Safe="DB-Prod", UserName="ETL_USER", Address="127.0.0.1").json()["Name"] == "pg-prod"
    assert prod(mtls, Safe="DB-Prod", Database="reporting", PolicyID="MySQL").json()["Name"] == "mariadb-reporting"


def test_ccp_regexp_query_format(mtls: DevClient) -> None:
    found = prod(mtls, Safe="App-Dev", Object="^sqlite", QueryFormat="Regexp")
    assert found.status_code == 200 and found.json()["Name"] == "sqlite-dev"
    too_many = assert_ccp_error(prod(mtls, Safe="App-Dev", Object=".*", QueryFormat="regexp"), 400, "APPAP227E")
    assert too_many["ErrorMsg"].startswith(
        "Too many password objects matching query [Safe=App-Dev;Folder=Root;Object=.*]"
    )
    assert " and Safe=App-Dev;Folder=Root;Object=" in too_many["ErrorMsg"]
    assert too_many["ErrorMsg"].endswith("(Diagnostic Info: 41)")


def test_ccp_too_many_exact_matches(mtls: DevClient) -> None:
    body = assert_ccp_error(prod(mtls, Query="Safe=DB-Prod;Database=warehouse"), 400, "APPAP227E")
    assert "Object=etl-dual-a and Safe=DB-Prod;Folder=Root;Object=etl-dual-b" in body["ErrorMsg"]


def test_ccp_dual_account_returns_the_active_member(fresh: DevClient, server: DevServer) -> None:
    query = "Safe=DB-Prod;VirtualUsername=etl-dual"
    first = prod(fresh, Query=query).json()
    assert (first["Name"], first["DualAccountStatus"], first["Content"]) == (
        "etl-dual-a",
        "Active",
        "Dual-A-Dev-1",
    )
    assert first["VirtualUsername"] == "etl-dual" and first["GroupName"] == "etl-dual-group" and first["Index"] == "1"

    facts = server.app.rotate("vault:2_3", "Dual-A-Dev-2", change_window=30)
    assert facts["dual_account_active"] == "2_4"
    # The CPM flipped the group first: the app now gets the untouched member.
    during = prod(fresh, Query=query).json()
    assert (during["Name"], during["Content"], during["PasswordChangeInProcess"]) == (
        "etl-dual-b",
        "Dual-B-Dev-1",
        "False",
    )
    old = prod(fresh, Safe="DB-Prod", Object="etl-dual-a").json()
    assert (old["DualAccountStatus"], old["PasswordChangeInProcess"], old["Content"]) == (
        "Inactive",
        "True",
        "Dual-A-Dev-1",
    )
    server.app.clock.advance(31)
    after = prod(fresh, Safe="DB-Prod", Object="etl-dual-a").json()
    assert (after["Content"], after["PasswordChangeInProcess"]) == ("Dual-A-Dev-2", "False")
    assert prod(fresh, Query=query).json()["Name"] == "etl-dual-b"


def test_rotation_with_change_window(fresh: DevClient, server: DevServer) -> None:
    facts = server.app.rotate("vault:2_1", "Rotated-Value-1", change_window=30)
    assert "Rotated-Value-1" not in json.dumps(facts)
    assert facts["target"] == "vault:2_1" and facts["version"] == 2

    during = prod(fresh, Safe="DB-Prod", Object="pg-prod").json()
    assert (during["Content"], during["PasswordChangeInProcess"]) == (PG_SECRET, "True")
    failed = assert_ccp_error(
        prod(fresh, Safe="DB-Prod", Object="pg-prod", FailRequestOnPasswordChange="true"), 500, "APPAP282E"
    )
    assert failed["ErrorMsg"] == "Password [pg-prod] is currently being changed by the CPM."

    server.app.clock.advance(29)
    assert prod(fresh, Safe="DB-Prod", Object="pg-prod").json()["PasswordChangeInProcess"] == "True"
    server.app.clock.advance(2)
    after = prod(fresh, Safe="DB-Prod", Object="pg-prod", FailRequestOnPasswordChange="TRUE")
    assert after.status_code == 200
    assert (after.json()["Content"], after.json()["PasswordChangeInProcess"]) == ("Rotated-Value-1", "False")


def test_rotation_through_the_admin_api(fresh: DevClient) -> None:
    immediate = fresh.admin("POST", "/rotate", json={"target": "vault:DB-Prod/pg-prod", "value": "Admin-Set-1"})
    assert immediate.status_code == 200
    assert "Admin-Set-1" not in immediate.text
    assert prod(fresh, Safe="DB-Prod", Object="pg-prod").json()["Content"] == "Admin-Set-1"

    windowed = fresh.admin("POST", "/rotate", json={"target": "vault:2_1", "change_window": 30})
    assert windowed.status_code == 200 and windowed.json()["change_ends_at"] is not None
    assert prod(fresh, Safe="DB-Prod", Object="pg-prod").json()["PasswordChangeInProcess"] == "True"
    assert fresh.admin("POST", "/clock", json={"advance": 31}).status_code == 200
    after = prod(fresh, Safe="DB-Prod", Object="pg-prod").json()
    assert after["PasswordChangeInProcess"] == "False"
    assert after["Content"] not in ("Admin-Set-1", PG_SECRET)

    assert fresh.admin("POST", "/rotate", json={"target": "vault:99_99"}).status_code == 404
    negative = fresh.admin("POST", "/rotate", json={"target": "vault:2_1", "change_window": -1})
    assert negative.status_code == 400


def test_scheduled_rotation_reaches_ccp(fresh: DevClient, server: DevServer) -> None:
    scheduled = fresh.admin("POST", "/rotate", json={"target": "vault:2_1", "every": 60, "change_window": 10})
    assert scheduled.status_code == 201
    server.app.clock.advance(61)
    during = prod(fresh, Safe="DB-Prod", Object="pg-prod").json()
    assert (during["Content"], during["PasswordChangeInProcess"]) == (PG_SECRET, "True")
    server.app.clock.advance(10)
    after = prod(fresh, Safe="DB-Prod", Object="pg-prod").json()
    assert after["Content"] != PG_SECRET and after["PasswordChangeInProcess"] == "False"


def test_ccp_audit_entries(mtls: DevClient, shared_server: DevServer) -> None:
    since = shared_server.app.audit.last_seq
    prod(mtls, Safe="DB-Prod", Object="pg-prod", Reason="nightly load")
    prod(mtls, Safe="DB-Prod", Object="nope")
    ok, missing = shared_server.app.audit.events(since, action="ccp.get_password")
    assert ok["identity"] == "AirflowProd"
    assert ok["detail"] == f"cert={CLIENT_CERT_SUBJECT}"
    assert ok["object"] == "Safe=DB-Prod;Folder=Root;Object=pg-prod"
    assert ok["reason"] == "nightly load"
    assert (ok["status"], ok["outcome"], ok["api"]) == (200, "success", "ccp")
    assert (missing["status"], missing["outcome"]) == (404, "failure")
    assert PG_SECRET not in json.dumps([ok, missing])


# -- PVWA logon / logoff -----------------------------------------------------------------------------


def test_pvwa_logon_returns_a_long_json_string(vc: DevClient) -> None:
    response = vc.post(f"{PVWA}/auth/CyberArk/Logon", json={"username": "svc_airflow", "password": SVC[1]})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.text.startswith('"') and response.text.endswith('"')
    assert len(response.json()) >= 180
    # Path casing varies between clients; IIS does not care.
    token = logon(vc, method="cyberark")
    lower = vc.post("/passwordvault/api/Auth/CYBERARK/logon/", json={"username": "SVC_AIRFLOW", "password": SVC[1]})
    assert lower.status_code == 200 and lower.json() != token


def test_pvwa_logon_auth_types(vc: DevClient) -> None:
    assert logon(vc, "ldap_user", "Ldap-Dev-Pass1", method="LDAP")
    wrong_type = vc.post(f"{PVWA}/auth/CyberArk/Logon", json={"username": "ldap_user", "password": "Ldap-Dev-Pass1"})
    assert (
        assert_pvwa_error(wrong_type, 403, "PASWS013E")["ErrorMessage"]
        == "Authentication failure for User [ldap_user]."
    )
    radius = vc.post(f"{PVWA}/auth/RADIUS/Logon", json={"username": "svc_airflow", "password": SVC[1]})
    assert_pvwa_error(radius, 403, "PASWS013E")
    assert vc.post(f"{PVWA}/auth/Kerberos/Logon", json={}).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "svc_airflow", "password": "wrong"}, 403, "PASWS013E"),
        ({"username": "nobody", "password": "x"}, 403, "PASWS013E"),
        ({"username": "locked_user", "password": "Locked-Dev-Pass1"}, 500, "ITATS127E"),
        ({"username": "svc_airflow"}, 400, "PASWS167E"),
        ({"username": 7, "password": SVC[1]}, 400, "PASWS167E"),
        (["svc_airflow", SVC[1]], 400, "PASWS167E"),
    ],
)
def test_pvwa_logon_failures(vc: DevClient, body: Any, status: int, code: str) -> None:
    response = vc.post(f"{PVWA}/auth/CyberArk/Logon", json=body)
    error = assert_pvwa_error(response, status, code)
    assert SVC[1] not in json.dumps(error)


def test_pvwa_logon_bad_bodies(vc: DevClient) -> None:
    url = f"{PVWA}/auth/CyberArk/Logon"
    json_header = {"Content-Type": "application/json"}
    assert_pvwa_error(vc.post(url, data=b'{"username": "svc_airflow", ', headers=json_header), 400, "PASWS167E")
    assert_pvwa_error(vc.post(url, data=b"\xff\xfe\x00", headers=json_header), 400, "PASWS167E")
    assert_pvwa_error(vc.post(url, data=b"[" * 100_000, headers=json_header), 400, "PASWS167E")
    assert_pvwa_error(vc.post(url, headers=json_header), 400, "PASWS167E")
    form = vc.post(url, data={"username": "svc_airflow", "password": SVC[1]})
    assert form.status_code == 415 and form.json()["ErrorCode"]
    text = vc.post(
        url,
        data=json.dumps({"username": "svc_airflow", "password": SVC[1]}),
        headers={"Content-Type": "text/plain"},
    )
    assert text.status_code == 415


def test_pvwa_logoff_invalidates_the_session(vc: DevClient) -> None:
    token = logon(vc)
    assert pvwa(vc, "GET", "/Accounts", token).status_code == 200
    response = pvwa(vc, "POST", "/Auth/Logoff", token, json={})
    assert (response.status_code, response.json()) == (200, {})
    after = pvwa(vc, "GET", "/Accounts", token)
    assert (after.status_code, after.json()) == (401, UNAUTHORIZED)
    assert pvwa(vc, "POST", "/Auth/Logoff", token).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/Accounts"),
        ("GET", "/Accounts/2_1"),
        ("POST", "/Accounts/2_1/Password/Retrieve"),
        ("GET", "/Accounts/2_1/Secret/Versions"),
        ("POST", "/Auth/Logoff"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "", "not-a-token", "Bearer not-a-token", "Basic c3ZjOng="])
def test_pvwa_requires_a_valid_token(vc: DevClient, method: str, path: str, authorization: str | None) -> None:
    response = pvwa(vc, method, path, authorization)
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_pvwa_session_idle_timeout_follows_the_clock(fresh: DevClient, server: DevServer) -> None:
    token = logon(fresh)
    server.app.clock.advance(19 * 60)
    assert pvwa(fresh, "GET", "/Accounts", token).status_code == 200
    server.app.clock.advance(19 * 60)  # idle time restarts with each use
    assert pvwa(fresh, "GET", "/Accounts", token).status_code == 200
    server.app.clock.advance(20 * 60 + 1)
    assert pvwa(fresh, "GET", "/Accounts", token).json() == UNAUTHORIZED


def test_pvwa_token_ttl_knob(fresh: DevClient, server: DevServer) -> None:
    assert fresh.admin("PUT", "/token-ttl", json={"seconds": 60}).status_code == 200
    token = logon(fresh)
    server.app.clock.advance(61)
    assert pvwa(fresh, "GET", "/Accounts", token).status_code == 401
    issued = platform_token(fresh).json()
    assert issued["expires_in"] == 60


def test_revoke_ends_sessions_and_platform_tokens(fresh: DevClient) -> None:
    session = logon(fresh)
    bearer = "Bearer " + platform_token(fresh).json()["access_token"]
    revoked = fresh.admin("POST", "/tokens/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] >= 2
    assert pvwa(fresh, "GET", "/Accounts", session).status_code == 401
    assert pvwa(fresh, "GET", "/Accounts", bearer).status_code == 401


# -- PVWA accounts -----------------------------------------------------------------------------------


def test_pvwa_list_only_shows_listable_safes(vc: DevClient) -> None:
    body = pvwa(vc, "GET", "/Accounts", logon(vc)).json()
    assert body["count"] == 6 and "nextLink" not in body
    assert {a["safeName"] for a in body["value"]} == {"DB-Prod", "App-Dev"}
    pg = next(a for a in body["value"] if a["id"] == "2_1")
    assert pg["platformAccountProperties"] == {"Port": "5432", "Database": "sales"}
    assert (pg["name"], pg["userName"], pg["address"], pg["platformId"]) == (
        "pg-prod",
        "etl_user",
        "127.0.0.1",
        "PostgreSQL",
    )
    assert pg["secretType"] == "password" and isinstance(pg["createdTime"], int)
    assert PG_SECRET not in json.dumps(body)

    ldap = pvwa(vc, "GET", "/Accounts", logon(vc, "ldap_user", "Ldap-Dev-Pass1", "LDAP")).json()
    assert {a["safeName"] for a in ldap["value"]} == {"App-Dev"}


def test_pvwa_search_filter_and_sort(fresh: DevClient, server: DevServer) -> None:
    token = logon(fresh)

    def names(**params: str) -> list[str]:
        response = pvwa(fresh, "GET", "/Accounts", token, params=params)
        assert response.status_code == 200, response.text
        return [a["name"] for a in response.json()["value"]]

    assert names(search="dual") == ["etl-dual-a", "etl-dual-b"]
    assert names(search="etl 127.0.0.1", sort="name desc") == ["pg-prod", "etl-dual-b", "etl-dual-a"]
    assert names(search="dual", searchType="startswith") == []
    assert names(search="etl-d", searchType="StartsWith") == ["etl-dual-a", "etl-dual-b"]
    assert set(names(filter="safeName eq App-Dev")) == {"api-special", "sqlite-dev"}
    assert names(filter="safeName eq Restricted") == []
    assert names(FILTER="safeName eq DB-Prod", SEARCH="reporting") == ["mariadb-reporting"]

    server.app.clock.advance(100)
    server.app.rotate("vault:3_2", "New-Sqlite", change_window=0)
    since = int(server.app.clock.now()) - 10
    assert names(filter=f"safeName eq App-Dev AND modificationTime gte {since}") == ["sqlite-dev"]
    assert names(sort="safeName asc,name desc")[:2] == ["sqlite-dev", "api-special"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "1001"},
        {"limit": "0"},
        {"limit": "99999999999999999999"},
        {"offset": "-1"},
        {"limit": "ten"},
        {"searchType": "fuzzy"},
        {"filter": "platformId eq MySQL"},
        {"sort": "password asc"},
        {"sort": "name sideways"},
        {"sort": "name,userName,address,safeName"},
    ],
)
def test_pvwa_list_rejects_bad_parameters(vc: DevClient, params: dict[str, str]) -> None:
    body = assert_pvwa_error(pvwa(vc, "GET", "/Accounts", logon(vc), params=params), 400, "PASWS167E")
    assert body["Details"]


def test_pvwa_pagination_follows_next_link(vc: DevClient) -> None:
    token = logon(vc)
    first = pvwa(vc, "GET", "/Accounts", token, params={"limit": "2", "filter": "safeName eq DB-Prod"}).json()
    assert first["count"] == 4 and len(first["value"]) == 2
    assert first["nextLink"] == "api/Accounts?offset=2&limit=2&filter=safeName%20eq%20DB-Prod"
    seen = [a["id"] for a in first["value"]]
    link = first["nextLink"]
    while link:
        page = vc.get("/PasswordVault/" + link, headers={"Authorization": token}).json()
        seen += [a["id"] for a in page["value"]]
        link = page.get("nextLink")
    assert seen == ["2_1", "2_2", "2_3", "2_4"]
    last = pvwa(vc, "GET", "/Accounts", token, params={"limit": "3", "offset": "3"}).json()
    assert len(last["value"]) == 3 and "nextLink" not in last
    assert pvwa(vc, "GET", "/Accounts", token, params={"limit": "1000", "offset": "50"}).json()["value"] == []


def test_pvwa_get_account(vc: DevClient) -> None:
    token = logon(vc)
    account = pvwa(vc, "GET", "/Accounts/2_4", token).json()
    assert account["platformAccountProperties"]["DualAccountStatus"] == "Inactive"
    assert pvwa(vc, "GET", "/accounts/2_4/", token).json()["id"] == "2_4"
    for bad in ("99_1", "4_1", "%2E%2E", "..%2F..%2Fetc", "2_1%00", "%0A", "2_1%2F..%2F4_1"):
        assert_pvwa_error(pvwa(vc, "GET", f"/Accounts/{bad}", token), 404, "PASWS044E")
    # requests resolves a literal ".." itself; whatever path results, it is no account.
    assert pvwa(vc, "GET", "/Accounts/..", token).status_code == 404


def test_pvwa_retrieve_password(vc: DevClient) -> None:
    token = logon(vc)
    response = pvwa(vc, "POST", "/Accounts/2_1/Password/Retrieve", token, json={"reason": "etl run"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == PG_SECRET and response.text == json.dumps(PG_SECRET)
    special = pvwa(vc, "POST", "/Accounts/3_1/Password/Retrieve/", token, json={})
    assert special.json() == SPECIAL_SECRET
    no_body = pvwa(vc, "POST", "/Accounts/3_2/Password/Retrieve", token)
    assert no_body.json() == "Sqlite-Dev-Pass"


def test_pvwa_retrieve_errors(vc: DevClient) -> None:
    token = logon(vc)
    retrieve = "/Accounts/2_2/Password/Retrieve"
    assert_pvwa_error(pvwa(vc, "POST", retrieve, token, json={}), 400, "PASWS204E")
    assert_pvwa_error(pvwa(vc, "POST", retrieve, token, json={"reason": "   "}), 400, "PASWS204E")
    assert pvwa(vc, "POST", retrieve, token, json={"Reason": "audit"}).json() == "Mar1a-Rep0rt-Dev"
    assert pvwa(vc, "POST", retrieve, token, json={"reason": "old", "Version": 1}).json() == "Mar1a-Old-1"
    assert_pvwa_error(pvwa(vc, "POST", retrieve, token, json={"reason": "x", "Version": 9}), 400, "PASWS167E")
    assert_pvwa_error(pvwa(vc, "POST", retrieve, token, json={"reason": 5}), 400, "PASWS167E")
    broken = pvwa(vc, "POST", retrieve, token, data=b'{"reason": ', headers={"Content-Type": "application/json"})
    assert_pvwa_error(broken, 400, "PASWS167E")
    plain = pvwa(vc, "POST", retrieve, token, data=b"reason=x", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert_pvwa_error(pvwa(vc, "POST", "/Accounts/9_9/Password/Retrieve", token, json={}), 404, "PASWS044E")
    assert_pvwa_error(pvwa(vc, "POST", "/Accounts/4_1/Password/Retrieve", token, json={}), 404, "PASWS044E")

    ldap = logon(vc, "ldap_user", "Ldap-Dev-Pass1", "LDAP")
    denied = pvwa(vc, "POST", "/Accounts/3_2/Password/Retrieve", ldap, json={"reason": "x"})
    assert denied.json() == {
        "ErrorCode": "PASWS041E",
        "ErrorMessage": "You are not authorized to perform this action.",
    }
    assert denied.status_code == 403


def test_pvwa_secret_versions(fresh: DevClient, server: DevServer) -> None:
    token = logon(fresh)
    before = pvwa(fresh, "GET", "/Accounts/2_2/Secret/Versions", token).json()["Versions"]
    assert [v["versionId"] for v in before] == [3, 2, 1]
    assert set(before[0]) == {"versionId", "modifiedBy", "modificationDate", "isTemporary"}
    server.app.rotate("vault:2_2", None, change_window=0)
    after = pvwa(fresh, "GET", "/Accounts/2_2/Secret/Versions", token).json()["Versions"]
    assert after[0]["versionId"] == 4 and after[0]["modifiedBy"] == "PasswordManager"
    assert_pvwa_error(pvwa(fresh, "GET", "/Accounts/4_1/Secret/Versions", token), 404, "PASWS044E")


# -- Privilege Cloud ---------------------------------------------------------------------------------


def test_platform_token_flow(fresh: DevClient, server: DevServer) -> None:
    response = platform_token(fresh)
    assert response.status_code == 200
    issued = response.json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 900
    assert issued["access_token"].count(".") == 2
    bearer = {"Authorization": f"Bearer {issued['access_token']}", "X-IDAP-NATIVE-CLIENT": "true"}
    listed = fresh.get(f"{PVWA}/Accounts", headers=bearer, params={"search": "pg-prod"})
    assert [a["id"] for a in listed.json()["value"]] == ["2_1"]
    secret = fresh.post(f"{PVWA}/Accounts/2_1/Password/Retrieve", headers=bearer, json={"reason": "pcloud"})
    assert secret.json() == PG_SECRET
    # The raw token without the scheme is a PVWA session token, which this is not.
    assert pvwa(fresh, "GET", "/Accounts", issued["access_token"]).status_code == 401

    server.app.clock.advance(899)
    assert fresh.get(f"{PVWA}/Accounts", headers=bearer).status_code == 200
    server.app.clock.advance(2)
    expired = fresh.get(f"{PVWA}/Accounts", headers=bearer)
    assert (expired.status_code, expired.json()) == (401, UNAUTHORIZED)


def test_platform_token_accepts_basic_client_authentication(vc: DevClient) -> None:
    response = vc.post(TOKEN_URL + "/", data={"grant_type": "client_credentials"}, auth=(PCLOUD_ID, PCLOUD_SECRET))
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        (
            {"data": {"grant_type": "client_credentials", "client_id": PCLOUD_ID, "client_secret": "nope"}},
            401,
            "access_denied",
        ),
        (
            {"data": {"grant_type": "client_credentials", "client_id": "x@y", "client_secret": "nope"}},
            401,
            "access_denied",
        ),
        (
            {"data": {"grant_type": "password", "client_id": PCLOUD_ID, "client_secret": PCLOUD_SECRET}},
            400,
            "unsupported_grant_type",
        ),
        ({"data": {"client_id": PCLOUD_ID, "client_secret": PCLOUD_SECRET}}, 400, "invalid_request"),
        ({"data": {"grant_type": "client_credentials", "client_id": PCLOUD_ID}}, 400, "invalid_request"),
        (
            {
                "json": {
                    "grant_type": "client_credentials",
                    "client_id": PCLOUD_ID,
                    "client_secret": PCLOUD_SECRET,
                }
            },
            400,
            "invalid_request",
        ),
        (
            {"data": b"\xff\xfe", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            400,
            "invalid_request",
        ),
    ],
)
def test_platform_token_errors(vc: DevClient, kwargs: dict[str, Any], status: int, error: str) -> None:
    response = vc.post(TOKEN_URL, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and isinstance(body["error_description"], str)
    assert PCLOUD_SECRET not in response.text


def test_platform_client_permissions(make_server: Callable[..., DevServer]) -> None:
    clients = [{"client_id": "narrow", "client_secret": "s3cret-narrow", "permissions": {"App-Dev": ["list"]}}]
    dev = DevClient(make_server(vault_seed(platform_clients=clients)))
    token = dev.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": "narrow", "client_secret": "s3cret-narrow"},
    )
    bearer = {"Authorization": "Bearer " + token.json()["access_token"]}
    assert {a["safeName"] for a in dev.get(f"{PVWA}/Accounts", headers=bearer).json()["value"]} == {"App-Dev"}
    assert dev.post(f"{PVWA}/Accounts/3_2/Password/Retrieve", headers=bearer, json={}).status_code == 403
    dev.close()


# -- audit and robustness ----------------------------------------------------------------------------


def test_audit_names_who_what_why_and_never_a_value(fresh: DevClient, server: DevServer) -> None:
    canary = "Canary-Value-7f3a9"
    server.app.rotate("vault:3_2", canary)
    token = logon(fresh)
    pvwa(fresh, "POST", "/Accounts/3_2/Password/Retrieve", token, json={"reason": "INC0012345"})
    pvwa(fresh, "GET", "/Accounts", token, params={"search": "sqlite"})
    pvwa(fresh, "GET", "/Accounts/3_2/Secret/Versions", token)
    fresh.post(f"{PVWA}/auth/CyberArk/Logon", json={"username": "svc_airflow", "password": "Wrong-Password-Canary"})
    issued = platform_token(fresh).json()["access_token"]
    fresh.get(f"{PVWA}/Accounts/3_2", headers={"Authorization": f"Bearer {issued}"})
    ccp(fresh, AppID="AirflowNoCert", Safe="App-Dev", Object="sqlite-dev", Reason="dag run")
    pvwa(fresh, "POST", "/Auth/Logoff", token)

    retrieve = events(server, "pvwa.retrieve_password")[0]
    assert (retrieve["identity"], retrieve["object"], retrieve["reason"]) == (
        "svc_airflow",
        "3_2",
        "INC0012345",
    )
    assert retrieve["detail"] == "Safe=App-Dev;Name=sqlite-dev"
    assert events(server, "pvwa.list_accounts")[0]["object"] == "search=sqlite"
    failed_logon = events(server, "pvwa.logon")[-1]
    assert (failed_logon["identity"], failed_logon["status"]) == ("svc_airflow", 403)
    assert events(server, "pvwa.platform_token")[0]["identity"] == PCLOUD_ID
    assert events(server, "pvwa.get_account")[0]["identity"] == PCLOUD_ID

    everything = json.dumps(server.app.audit.events())
    log_file = Path(server.info()["audit_log"]).read_text("utf-8")
    for forbidden in (canary, SVC[1], "Wrong-Password-Canary", token, issued, PCLOUD_SECRET):
        assert forbidden not in everything
        assert forbidden not in log_file


def test_hostile_input_never_yields_500(vc: DevClient, shared_server: DevServer) -> None:
    since = shared_server.app.audit.last_seq
    token = logon(vc)
    json_header = {"Authorization": token, "Content-Type": "application/json"}
    attempts = [
        vc.get(CCP + "?AppID=AirflowNoCert&Safe=App-Dev&Object=%00%01%1b"),
        vc.get(CCP + "?AppID=%00&Safe=x"),
        vc.get(CCP + "?AppID=AirflowNoCert&Query=" + "a%3D" * 5000),
        vc.get(CCP + "?AppID=AirflowNoCert&Safe=App-Dev&Object=" + "(a%2B)%2B" * 100 + "&QueryFormat=Regexp"),
        vc.get(CCP + "?AppID=AirflowNoCert&Safe=App-Dev&Object=%E2%28%A1"),
        vc.get(CCP + "?%ZZ=1&AppID=AirflowNoCert&Safe=App-Dev&Object=x"),
        vc.get(f"{PVWA}/Accounts/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", headers={"Authorization": token}),
        vc.get(f"{PVWA}/Accounts/%FF%FE", headers={"Authorization": token}),
        vc.get(f"{PVWA}/Accounts?limit=1" + "0" * 500, headers={"Authorization": token}),
        vc.get(f"{PVWA}/Accounts?search=%00%1b&filter=safeName%20eq%20%00", headers={"Authorization": token}),
        vc.get(f"{PVWA}/Accounts?sort=" + "name," * 1000, headers={"Authorization": token}),
        vc.post(f"{PVWA}/Accounts/2_1/Password/Retrieve", data=b"{" * 50_000, headers=json_header),
        vc.post(f"{PVWA}/Accounts/2_1/Password/Retrieve", data=b'"just a string"', headers=json_header),
        vc.post(f"{PVWA}/Accounts/2_1/Password/Retrieve", data=b'{"version": 1e999}', headers=json_header),
        vc.post(
            f"{PVWA}/auth/CyberArk/Logon",
            data=b'{"username": "a\\u0000b", "password": "\\ud800"}',
            headers=json_header,
        ),
        vc.get(f"{PVWA}/Accounts", headers={"Authorization": "\x01\x02"}),
        vc.get(f"{PVWA}/Accounts", headers={"Authorization": "Bearer " + "x" * 8000}),
        vc.post(
            TOKEN_URL,
            data=b"grant_type=%FF%FE&client_id=%00",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        vc.post(
            TOKEN_URL,
            data=b"x",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic !!!"},
        ),
    ]
    statuses = [r.status_code for r in attempts]
    assert all(s < 500 for s in statuses), str(statuses)
    assert not [e for e in shared_server.app.audit.events(since) if e["status"] >= 500]


def test_concurrent_reads_during_rotation(make_server: Callable[..., DevServer]) -> None:
    server = make_server(vault_seed())
    seen: list[str] = []
    errors: list[BaseException] = []

    def reader() -> None:
        dev = DevClient(server)
        try:
            for _ in range(15):
                body = ccp(dev, AppID="AirflowNoCert", Safe="App-Dev", Object="sqlite-dev").json()
                seen.append(body["Content"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            dev.close()

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for thread in threads:
        thread.start()
    for index in range(10):
        server.app.rotate("vault:3_2", f"Concurrent-{index}")
    for thread in threads:
        thread.join()
    assert not errors and len(seen) == 90
    assert all(v == "Sqlite-Dev-Pass" or v.startswith("Concurrent-") for v in seen)


# -- seed --------------------------------------------------------------------------------------------


def test_rotation_targets_by_id_safe_and_name_or_unique_name() -> None:
    model = VaultModel.from_seed(copy.deepcopy(DEMO_VAULT), "vault")
    assert model.rotate("2_1", "v1", 0.0, 0.0)["target"] == "vault:2_1"
    assert model.rotate("db-prod/PG-PROD", "v2", 0.0, 0.0)["version"] == 3
    assert model.rotate("sqlite-dev", "v3", 0.0, 0.0)["target"] == "vault:3_2"
    # A VirtualUsername rotates the group's Active member, so repeated rotations alternate.
    assert model.rotate("DB-Prod/etl-dual", "d1", 0.0, 0.0)["target"] == "vault:2_3"
    assert model.rotate("etl-dual", "d2", 0.0, 0.0)["target"] == "vault:2_4"
    assert model.rotate("etl-dual", "d3", 0.0, 0.0)["target"] == "vault:2_3"
    for unknown in ("99_1", "App-Dev/pg-prod", "nope", "App-Dev/etl-dual"):
        with pytest.raises(KeyError):
            model.rotate(unknown, None, 0.0, 0.0)
    with pytest.raises(SeedError):
        model.rotate("2_1", None, 0.0, -1.0)


def test_empty_seed_is_a_valid_empty_vault() -> None:
    model = VaultModel.from_seed({}, "vault")
    assert model.accounts(0.0) == [] and model.safes() == []
    with pytest.raises(KeyError):
        model.rotate("1_1", None, 0.0, 0.0)


@pytest.mark.parametrize(
    ("vault", "where"),
    [
        ({"safes": ["A"], "accounts": [{"name": "x", "safe": "B", "secret": "s"}]}, "vault.accounts[0].safe"),
        ({"safes": ["A"], "accounts": [{"name": "x", "safe": "A"}]}, "vault.accounts[0].secret"),
        (
            {"safes": ["A"], "accounts": [{"name": "x", "safe": "A", "secret": "s", "colour": 1}]},
            "vault.accounts[0]",
        ),
        ({"safes": ["A", "a"]}, "vault.safes[1].name"),
        (
            {"safes": ["A"], "accounts": [{"name": "x", "safe": "A", "secret": "s", "id": "../x"}]},
            "vault.accounts[0].id",
        ),
        (
            {
                "safes": ["A"],
                "accounts": [{"name": "x", "safe": "A", "secret": "s", "properties": {"Content": "x"}}],
            },
            "vault.accounts[0].properties.Content",
        ),
        (
            {
                "safes": ["A"],
                "accounts": [
                    {
                        "name": n,
                        "safe": "A",
                        "secret": "s",
                        "properties": {"VirtualUsername": "v", "DualAccountStatus": "Active"},
                    }
                    for n in ("x", "y")
                ],
            },
            "vault.accounts",
        ),
        (
            {"safes": ["A"], "ccp_applications": [{"app_id": "X", "allowed_safes": ["B"]}]},
            "vault.ccp_applications[0].allowed_safes[0]",
        ),
        (
            {"ccp_applications": [{"app_id": "X", "allowed_machines": ["not-an-ip"]}]},
            "vault.ccp_applications[0].allowed_machines[0]",
        ),
        (
            {"pvwa_users": [{"username": "u", "password": "p", "auth_type": "Kerberos"}]},
            "vault.pvwa_users[0].auth_type",
        ),
        (
            {
                "safes": ["A"],
                "pvwa_users": [{"username": "u", "password": "p", "permissions": {"A": ["delete"]}}],
            },
            "vault.pvwa_users[0].permissions.A",
        ),
        ({"platform_clients": [{"client_id": "c"}]}, "vault.platform_clients[0].client_secret"),
        ({"safe": []}, "vault"),
        ({"safes": "A"}, "vault.safes"),
    ],
)
def test_seed_errors_name_the_field(vault: dict[str, Any], where: str) -> None:
    with pytest.raises(SeedError) as caught:
        VaultModel.from_seed(vault, "vault")
    assert caught.value.where == where


def test_seed_errors_stop_the_server(make_server: Callable[..., DevServer]) -> None:
    with pytest.raises(SeedError):
        make_server({"vault": {"safes": ["A"], "accounts": [{"name": "x", "safe": "Z", "secret": "s"}]}})


def test_default_demo_seed_includes_the_vault(client: DevClient) -> None:
    client.with_client_cert()
    assert prod(client, Safe="DB-Prod", Object="pg-prod").json()["Content"] == PG_SECRET
