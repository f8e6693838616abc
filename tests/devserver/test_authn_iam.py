"""authn-iam and the STS stand-in, driven by botocore's own SigV4 signer (never by a signer of ours),
so that the dev server's signature check is tested against the implementation AWS clients use.

Wire facts: docs/cyberark-apis.md §8.1. Every Conjur failure is a 401 (403 for a host not permitted
on the webservice) with an empty body; the CONJ code is asserted in the audit log.
"""

from __future__ import annotations

import base64
import calendar
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberark_ops.devserver import DevServer, SeedError
from cyberark_ops.devserver.cloud.state import STS_ACTION_QUERY, CloudModel, StsRefused
from tests.conftest import DevClient

botocore = pytest.importorskip("botocore", reason="botocore (test extra) signs the requests")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

AWS_ACCOUNT = "188945769008"
ROLE_KEY = "ASIAQ3EGRMPLEEXAMPLE"
ROLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
ROLE_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE+session/token=="
ROLE_ARN = f"arn:aws:sts::{AWS_ACCOUNT}:assumed-role/my-app-role/i-0abc123"
USER_KEY = "AKIAQ3EGRMPLEUSER001"
USER_SECRET = "user-secret-access-key-0123456789"
USER_ARN = f"arn:aws:iam::{AWS_ACCOUNT}:user/alice"
OTHER_KEY = "AKIAQ3EGRMPLEOTHER01"
OTHER_SECRET = "other-secret-access-key-012345678"
OTHER_ARN = f"arn:aws:sts::{AWS_ACCOUNT}:assumed-role/other-role/i-0def"

ROLE_HOST = f"aws/prod/{AWS_ACCOUNT}/my-app-role"
USER_HOST = f"{AWS_ACCOUNT}/alice"

SEED: dict[str, Any] = {
    "conjur": {
        "account": "myorg",
        "hosts": [{"id": ROLE_HOST}, {"id": USER_HOST}, {"id": f"aws/barred/{AWS_ACCOUNT}/my-app-role"}],
        "variables": [{"id": "aws/db/password", "value": "iam-fetched-value"}],
        "permits": [{"role": f"host:{ROLE_HOST}", "privileges": ["read", "execute"], "resources": ["aws/*"]}],
        "authn_iam": [
            {"service_id": "prod", "enabled_hosts": [ROLE_HOST, USER_HOST]},
            {"service_id": "extra", "optional_signed_headers": ["x-conjur-trace"]},
            {"service_id": "off", "enabled": False},
        ],
    },
    "cloud": {
        "aws_identities": [
            {"access_key_id": ROLE_KEY, "secret_access_key": ROLE_SECRET, "arn": ROLE_ARN, "session_token": ROLE_TOKEN},
            {"access_key_id": USER_KEY, "secret_access_key": USER_SECRET, "arn": USER_ARN},
            {"access_key_id": OTHER_KEY, "secret_access_key": OTHER_SECRET, "arn": OTHER_ARN},
        ]
    },
}

ROLE = Credentials(ROLE_KEY, ROLE_SECRET, ROLE_TOKEN)
USER = Credentials(USER_KEY, USER_SECRET)


def signed(
    credentials: Credentials,
    *,
    region: str = "us-east-1",
    host: str = "sts.amazonaws.com",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers botocore signs for STS GetCallerIdentity, as conjur-api's AWS strategy posts them."""
    request = AWSRequest(method="GET", url=f"https://{host}/?{STS_ACTION_QUERY}", headers=extra or {})
    SigV4Auth(credentials, "sts", region).add_auth(request)
    # botocore signs the host from the URL; the HTTP layer would add the header, so clients add it.
    return {"host": host, **dict(request.headers.items())}


@pytest.fixture(scope="module")
def iam() -> Iterator[DevClient]:
    with DevServer(SEED) as server:
        client = DevClient(server)
        yield client
        client.close()


def authenticate(client: DevClient, headers: Any, *, login: str = f"host/{ROLE_HOST}", service: str = "prod") -> Any:
    body = headers if isinstance(headers, (bytes, str)) else json.dumps(headers)
    return client.post(
        f"/authn-iam/{service}/myorg/{quote(login, safe='')}/authenticate",
        data=body,
        headers={"Content-Type": "application/json"},
    )


def last_detail(client: DevClient) -> str:
    events = client.server.app.audit.events(action="conjur.authenticate_iam")
    return str(events[-1].get("detail"))


def test_an_assumed_role_authenticates_and_reads(iam: DevClient) -> None:
    response = authenticate(iam, signed(ROLE))
    assert response.status_code == 200, response.text
    token = response.json()
    header = {"Authorization": f'Token token="{base64.b64encode(json.dumps(token).encode()).decode()}"'}
    assert iam.get("/whoami", headers=header).json()["username"] == f"host/{ROLE_HOST}"
    secret = iam.get("/secrets/myorg/variable/aws%2Fdb%2Fpassword", headers=header)
    assert secret.status_code == 200
    assert secret.text == "iam-fetched-value"
    event = iam.server.app.audit.events(action="conjur.authenticate_iam")[-1]
    assert event["identity"] == f"host/{ROLE_HOST}"
    assert event["status"] == 200


def test_an_iam_user_and_the_go_sdks_header_casing(iam: DevClient) -> None:
    canonical_casing = {key.title(): value for key, value in signed(USER).items()}
    assert "X-Amz-Date" in canonical_casing
    response = authenticate(iam, canonical_casing, login=f"host/{USER_HOST}")
    assert response.status_code == 200, response.text


def test_a_regional_endpoint_signed_for_its_region(iam: DevClient) -> None:
    response = authenticate(iam, signed(ROLE, region="eu-west-1", host="sts.eu-west-1.amazonaws.com"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (lambda: signed(ROLE, region="eu-west-1"), "Credential should be scoped to a valid region"),
        (lambda: signed(ROLE, region="eu-west-1", host="sts.us-east-2.amazonaws.com"), "valid region"),
        (lambda: signed(Credentials(ROLE_KEY, "not-the-secret-key-at-all", ROLE_TOKEN)), "signature we calculated"),
        (lambda: signed(Credentials("AKIAQ3EGRMPLEUNKNOWN", USER_SECRET)), "security token included"),
        (lambda: signed(Credentials(ROLE_KEY, ROLE_SECRET)), "security token included"),
        (lambda: signed(Credentials(ROLE_KEY, ROLE_SECRET, "another-session-token")), "security token included"),
        (lambda: signed(ROLE, host="sts.evil.example.com"), "AWS STS endpoint"),
        (lambda: signed(ROLE, host="sts.amazonaws.com.evil.example"), "AWS STS endpoint"),
        (lambda: signed(ROLE, extra={"X-Forwarded-Host": "x"}), "Unexpected signed headers found ['x-forwarded-host']"),
        (lambda: {k: v for k, v in signed(ROLE).items() if k != "X-Amz-Date"}, "Missing required signed headers"),
        (lambda: {k: v for k, v in signed(ROLE).items() if k != "Authorization"}, "no SignedHeaders"),
        (lambda: {**signed(ROLE), "X-Amz-Date": "20200101T000000Z"}, "CONJ00018E"),
        (lambda: b"jwt=not-json", "not a JSON object"),
        (lambda: b"[" * 100_000, "not a JSON object"),
        (lambda: {"authorization": 1}, "not a JSON object"),
    ],
    ids=[
        "global-signed-for-eu",
        "regional-signed-for-another",
        "wrong-secret",
        "unknown-key",
        "session-token-missing",
        "session-token-wrong",
        "not-aws",
        "aws-suffix-trick",
        "unexpected-header",
        "missing-header",
        "no-authorization",
        "date-changed",
        "form-body",
        "deep-json",
        "non-string-values",
    ],
)
def test_conjur_refuses_headers_that_sts_would_not_accept(iam: DevClient, headers: Any, detail: str) -> None:
    response = authenticate(iam, headers())
    assert response.status_code == 401
    assert response.content == b""
    assert detail in last_detail(iam)
    assert "CONJ00018E" in last_detail(iam)
    assert iam.get("/").status_code == 200


def test_an_identity_that_does_not_match_the_host_id(iam: DevClient) -> None:
    response = authenticate(iam, signed(Credentials(OTHER_KEY, OTHER_SECRET)))
    assert response.status_code == 401
    assert response.content == b""
    assert last_detail(iam).startswith("CONJ00002E Invalid credentials")
    assert f"{AWS_ACCOUNT}/other-role" in last_detail(iam)


def test_an_optional_signed_header_is_allowed_only_where_configured(iam: DevClient) -> None:
    headers = signed(ROLE, extra={"X-Conjur-Trace": "abc"})
    assert authenticate(iam, headers, service="extra").status_code == 200
    assert authenticate(iam, headers, service="prod").status_code == 401
    assert "Unexpected signed headers" in last_detail(iam)


@pytest.mark.parametrize(
    ("login", "service", "account", "status", "code"),
    [
        (f"host/aws/barred/{AWS_ACCOUNT}/my-app-role", "prod", "myorg", 403, "CONJ00006E"),
        (f"host/{ROLE_HOST}", "off", "myorg", 401, "CONJ00004E"),
        (f"host/{ROLE_HOST}", "nope", "myorg", 401, "CONJ00004E"),
        (f"host/aws/prod/{AWS_ACCOUNT}/ghost", "prod", "myorg", 401, "CONJ00007E"),
        (f"host/{ROLE_HOST}", "prod", "otherorg", 401, "CONJ00008E"),
    ],
)
def test_conjurs_checks_before_the_signature(
    iam: DevClient, login: str, service: str, account: str, status: int, code: str
) -> None:
    response = iam.post(
        f"/authn-iam/{service}/{account}/{quote(login, safe='')}/authenticate", data=json.dumps(signed(ROLE))
    )
    assert response.status_code == status
    assert response.content == b""
    assert last_detail(iam).startswith(code)


def test_signed_headers_expire_after_fifteen_minutes(make_server: Any) -> None:
    server = make_server(SEED)
    client = DevClient(server)
    headers = signed(ROLE)
    server.app.clock.advance(16 * 60)
    response = authenticate(client, headers)
    assert response.status_code == 401
    assert "Signature expired" in last_detail(client)
    client.close()


def test_no_sts_means_conj00063e(make_server: Any) -> None:
    from cyberark_ops.devserver import DEFAULT_APIS

    apis = {name: api for name, api in DEFAULT_APIS.items() if name != "cloud"}
    server = make_server({"conjur": SEED["conjur"]}, apis=apis)
    client = DevClient(server)
    assert authenticate(client, signed(ROLE)).status_code == 401
    assert last_detail(client).startswith("CONJ00063E")
    client.close()


def test_authenticators_lists_the_iam_services(iam: DevClient) -> None:
    listed = iam.get("/authenticators").json()
    assert "authn-iam" in listed["installed"]
    assert {"authn-iam/prod", "authn-iam/extra", "authn-iam/off"} <= set(listed["configured"])
    assert "authn-iam/off" not in listed["enabled"]


def test_rotating_an_identitys_secret_key_invalidates_its_signatures(make_server: Any) -> None:
    server = make_server(SEED)
    client = DevClient(server)
    assert authenticate(client, signed(ROLE)).status_code == 200
    server.app.rotate(f"cloud:{ROLE_KEY}", "a-brand-new-secret-access-key")
    assert authenticate(client, signed(ROLE)).status_code == 401
    renewed = Credentials(ROLE_KEY, "a-brand-new-secret-access-key", ROLE_TOKEN)
    assert authenticate(client, signed(renewed)).status_code == 200
    client.close()


# -- the STS stand-in over HTTP, through botocore's own STS client --------------------------------


def sts_client(iam: DevClient, credentials: Credentials) -> Any:
    import botocore.session

    session = botocore.session.Session()
    session.set_config_variable("credentials_file", "/nonexistent")
    session.set_config_variable("config_file", "/nonexistent")
    return session.create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=iam.url + "/aws-sts/",
        verify=iam.info["ca_cert"],
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )


def test_botocores_sts_client_gets_the_caller_identity(iam: DevClient) -> None:
    answer = sts_client(iam, ROLE).get_caller_identity()
    assert answer["Arn"] == ROLE_ARN
    assert answer["Account"] == AWS_ACCOUNT
    assert answer["UserId"].endswith(":i-0abc123")
    assert sts_client(iam, USER).get_caller_identity()["Arn"] == USER_ARN


def test_botocores_sts_client_gets_stss_errors(iam: DevClient) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as wrong:
        sts_client(iam, Credentials(USER_KEY, "not-the-right-secret-key")).get_caller_identity()
    assert wrong.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as unknown:
        sts_client(iam, Credentials("AKIAQ3EGRMPLEUNKNOWN", USER_SECRET)).get_caller_identity()
    assert unknown.value.response["Error"]["Code"] == "InvalidClientTokenId"


# -- the verifier against botocore's signer, for any request -------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.dictionaries(st.text("abcXYZ-_.~ +/=&%é", min_size=1, max_size=8), _TEXT, max_size=4),
    payload=st.binary(max_size=64),
    method=st.sampled_from(["GET", "POST"]),
    region=st.sampled_from(["us-east-1", "eu-west-1", "us-gov-west-1", "ap-southeast-2"]),
    header_value=st.text("abc \t xyz-1", max_size=12),
    tamper=st.integers(min_value=0, max_value=4),
)
def test_any_request_botocore_signs_verifies_and_any_change_does_not(
    params: dict[str, str], payload: bytes, method: str, region: str, header_value: str, tamper: int
) -> None:
    model = CloudModel.from_seed(SEED["cloud"], "cloud", state_dir=Path("/nonexistent"))

    # Spaces as %20: SigV4 clients never write '+' for a space (the STS query API reads '+' as one).
    query = urlencode({"Action": "GetCallerIdentity", **params}, quote_via=quote)
    request = AWSRequest(
        method=method,
        url=f"https://127.0.0.1:8443/aws-sts/?{query}",
        data=payload if method == "POST" else b"",
        headers={"X-Amz-Meta-Note": header_value} if header_value.strip() else {},
    )
    SigV4Auth(Credentials(USER_KEY, USER_SECRET), "sts", region).add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers.setdefault("host", "127.0.0.1:8443")
    raw_query = request.url.partition("?")[2]
    body = payload if method == "POST" else b""
    now = float(calendar.timegm(time.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")))

    def check(hdrs: dict[str, str], query_text: str, data: bytes, verb: str) -> Any:
        return model.get_caller_identity(verb, "/aws-sts/", query_text, header=hdrs.get, payload=data, now=now)

    assert check(headers, raw_query, body, method).arn == USER_ARN
    changed = dict(headers)
    verb, query_text, data = method, raw_query, body
    if tamper == 0:
        verb = "POST" if method == "GET" else "GET"
    elif tamper == 1:
        query_text = raw_query + "&Extra=1"
    elif tamper == 2:
        data = body + b"x"
        changed.pop("x-amz-content-sha256", None)
    elif tamper == 3:
        changed["host"] = "127.0.0.2:8443"
    else:
        signature = changed["authorization"][-64:]
        flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
        changed["authorization"] = changed["authorization"][:-64] + flipped
    with pytest.raises(StsRefused) as refused:
        check(changed, query_text, data, verb)
    assert refused.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("identity", "field"),
    [
        ({"access_key_id": "nope", "secret_access_key": USER_SECRET, "arn": USER_ARN}, "access_key_id"),
        ({"access_key_id": USER_KEY, "secret_access_key": "short", "arn": USER_ARN}, "secret_access_key"),
        ({"access_key_id": USER_KEY, "secret_access_key": USER_SECRET, "arn": "arn:aws:s3:::bucket"}, "arn"),
        ({"access_key_id": ROLE_KEY, "secret_access_key": ROLE_SECRET, "arn": ROLE_ARN}, "session_token"),
        ({"access_key_id": USER_KEY, "secret_access_key": USER_SECRET, "arn": USER_ARN, "colour": "red"}, "[0]"),
    ],
)
def test_seed_errors_name_the_field_and_never_the_secret(identity: dict[str, str], field: str) -> None:
    with pytest.raises(SeedError) as error:
        DevServer({"cloud": {"aws_identities": [identity]}}).app  # noqa: B018
    assert "cloud.aws_identities[0]" in str(error.value)
    assert field in str(error.value)
    for secret in (USER_SECRET, ROLE_SECRET):
        assert secret not in str(error.value)


def test_an_iam_service_naming_an_unknown_host_is_refused() -> None:
    seed = {"conjur": {"hosts": [{"id": "a"}], "authn_iam": [{"service_id": "prod", "enabled_hosts": ["ghost"]}]}}
    with pytest.raises(SeedError, match=r"conjur\.authn_iam\[0\]\.enabled_hosts\[0\]"):
        DevServer(seed).app  # noqa: B018
