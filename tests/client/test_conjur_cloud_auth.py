"""The cloud authenticators (authn-iam, authn-azure, authn-gcp) against the dev server's Conjur and its
STS, IMDS and GCE metadata stand-ins, over real HTTPS on loopback (docs/cyberark-apis.md §8).

AWS credentials come from botocore's own credential chain (environment, shared profile file), never
from the instance metadata service: every test isolates the chain (``tests.cloudauth.isolate_aws``).
"""

from __future__ import annotations

import logging
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cyberark_ops.client import (
    AuthenticationFailed,
    ConfigurationError,
    ConjurAzureAuth,
    ConjurClient,
    ConjurGCPAuth,
    ConjurIAMAuth,
    CyberArkError,
    InvalidResponse,
    TokenCache,
)
from cyberark_ops.client.auth.conjur_cloud import (
    _aws_identity_parts,
    jwt_claims,
    local_base,
    parse_caller_identity,
)
from cyberark_ops.devserver import DevServer
from tests.cloudauth import (
    ACCOUNT,
    AWS_ACCOUNT,
    AZURE_HOST,
    AZURE_USER_HOST,
    AZURE_WRONG_HOST,
    GCP_EMAIL,
    GCP_HOST,
    GCP_PROJECT,
    GCP_WRONG_HOST,
    IAM_HOST,
    OTHER_KEY,
    OTHER_SECRET,
    ROLE_ARN,
    ROLE_KEY,
    ROLE_SECRET,
    ROLE_TOKEN,
    SEED,
    SUBSCRIPTION,
    SYSTEM_OID,
    USER_CLIENT,
    VALUE,
    VARIABLE,
    aws_env,
    azure_metadata_url,
    gcp_metadata_url,
    isolate_aws,
    sts_url,
)

from .conftest import Vault

pytest.importorskip(
    "botocore.session", reason="authn-iam signs with botocore (extra aws), not installed beside the pinned Airflow 3.1"
)


@pytest.fixture(scope="module")
def cloud() -> Iterator[Vault]:
    with DevServer(SEED) as server:
        yield Vault(server)


def client(vault: Vault, auth: Any, cache: TokenCache | None = None) -> ConjurClient:
    return ConjurClient(
        vault.conjur_config(auth=auth, account=ACCOUNT), token_cache=cache if cache is not None else TokenCache()
    )


def iam(vault: Vault, login: str = IAM_HOST, **kwargs: Any) -> ConjurIAMAuth:
    return ConjurIAMAuth("prod", login, sts_url=sts_url(vault.server), **kwargs)


def azure(vault: Vault, login: str = AZURE_HOST, **kwargs: Any) -> ConjurAzureAuth:
    return ConjurAzureAuth("prod", login, metadata_url=azure_metadata_url(vault.server), **kwargs)


def gcp(vault: Vault, login: str = GCP_HOST, **kwargs: Any) -> ConjurGCPAuth:
    return ConjurGCPAuth(login, metadata_url=gcp_metadata_url(vault.server), **kwargs)


def last_detail(vault: Vault, action: str) -> str:
    return str(vault.events(action=action)[-1].get("detail"))


# -- each authenticator, end to end -------------------------------------------------------------------


def test_authn_iam_from_environment_credentials(cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    aws_env(monkeypatch, tmp_path)
    mark = cloud.mark()
    with client(cloud, iam(cloud)) as conjur:
        assert conjur.get_secret(VARIABLE) == VALUE
        assert conjur.whoami()["username"] == IAM_HOST
    [event] = cloud.events(mark, action="conjur.authenticate_iam")
    assert event["status"] == 200
    assert event["identity"] == IAM_HOST
    # The client signs for STS and posts the headers to Conjur; it never calls STS itself.
    assert cloud.count("sts.get_caller_identity", mark) == 0


def test_authn_iam_from_a_shared_profile_file(cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws(monkeypatch, tmp_path)
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {OTHER_KEY}\naws_secret_access_key = {OTHER_SECRET}\n\n"
        f"[airflow]\naws_access_key_id = {ROLE_KEY}\naws_secret_access_key = {ROLE_SECRET}\n"
        f"aws_session_token = {ROLE_TOKEN}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    with client(cloud, iam(cloud, aws_profile="airflow")) as conjur:
        assert conjur.get_secret(VARIABLE) == VALUE
    # The default profile is another identity, which Conjur maps to another host.
    with client(cloud, iam(cloud)) as conjur, pytest.raises(AuthenticationFailed):
        conjur.get_secret(VARIABLE)
    assert last_detail(cloud, "conjur.authenticate_iam").startswith("CONJ00002E")


def test_authn_iam_signed_for_a_regional_endpoint(
    cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env(monkeypatch, tmp_path)
    auth = iam(cloud, aws_region="eu-west-1")
    assert auth.sts_host == "sts.eu-west-1.amazonaws.com"
    assert auth.signed_headers()["host"] == "sts.eu-west-1.amazonaws.com"
    assert "/eu-west-1/sts/aws4_request" in auth.signed_headers()["Authorization"]
    with client(cloud, auth) as conjur:
        assert conjur.get_secret(VARIABLE) == VALUE


def test_authn_iam_identity_of_another_role_is_refused_as_conjur_refuses_it(
    cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env(monkeypatch, tmp_path, key=OTHER_KEY, secret=OTHER_SECRET, token=None)
    with client(cloud, iam(cloud)) as conjur, pytest.raises(AuthenticationFailed) as refused:
        conjur.get_secret(VARIABLE)
    assert refused.value.status == 401
    assert "<aws account id>/<iam role name>" in str(refused.value)
    assert last_detail(cloud, "conjur.authenticate_iam").startswith("CONJ00002E Invalid credentials")
    assert f"{AWS_ACCOUNT}/someone-else" in last_detail(cloud, "conjur.authenticate_iam")
    assert OTHER_SECRET not in str(refused.value)


def test_authn_iam_with_a_wrong_secret_key_is_conjurs_conj00018e(
    cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env(monkeypatch, tmp_path, secret="not-the-secret-access-key-of-this-role")
    with client(cloud, iam(cloud)) as conjur, pytest.raises(AuthenticationFailed):
        conjur.get_secret(VARIABLE)
    assert last_detail(cloud, "conjur.authenticate_iam").startswith("CONJ00018E")


def test_authn_azure_system_and_user_assigned_identities(cloud: Vault) -> None:
    mark = cloud.mark()
    with client(cloud, azure(cloud)) as conjur:
        assert conjur.get_secret(VARIABLE) == VALUE
    with client(cloud, azure(cloud, AZURE_USER_HOST, client_id=USER_CLIENT)) as conjur:
        assert conjur.whoami()["username"] == AZURE_USER_HOST
    assert [e["status"] for e in cloud.events(mark, action="conjur.authenticate_azure")] == [200, 200]
    assert cloud.count("imds.identity_token", mark) == 2


def test_authn_azure_annotations_that_do_not_match_are_refused(cloud: Vault) -> None:
    with client(cloud, azure(cloud, AZURE_WRONG_HOST)) as conjur, pytest.raises(AuthenticationFailed) as refused:
        conjur.get_secret(VARIABLE)
    assert "authn-azure/subscription-id" in str(refused.value)
    assert last_detail(cloud, "conjur.authenticate_azure").startswith("CONJ00049E")
    # The user-assigned identity's token does not fit the host annotated with the VM's own identity.
    with client(cloud, azure(cloud, AZURE_HOST, client_id=USER_CLIENT)) as conjur, pytest.raises(AuthenticationFailed):
        conjur.get_secret(VARIABLE)


def test_authn_azure_unknown_client_id_is_imdss_400_named(cloud: Vault) -> None:
    unknown = "eeeeeeee-2222-3333-4444-555555555555"
    with client(cloud, azure(cloud, client_id=unknown)) as conjur, pytest.raises(CyberArkError) as refused:
        conjur.get_secret(VARIABLE)
    assert refused.value.status == 400
    assert "azure_client_id" in str(refused.value)
    assert "azure_identity_token" in str(refused.value)


def test_authn_gcp_takes_the_host_from_the_audience(cloud: Vault) -> None:
    mark = cloud.mark()
    with client(cloud, gcp(cloud)) as conjur:
        assert conjur.get_secret(VARIABLE) == VALUE
        assert conjur.whoami()["username"] == GCP_HOST
    [event] = cloud.events(mark, action="conjur.authenticate_gcp")
    assert event["status"] == 200
    assert event["identity"] == GCP_HOST


def test_authn_gcp_annotation_mismatch_is_refused(cloud: Vault) -> None:
    with client(cloud, gcp(cloud, GCP_WRONG_HOST)) as conjur, pytest.raises(AuthenticationFailed) as refused:
        conjur.get_secret(VARIABLE)
    assert "authn-gcp/project-id" in str(refused.value)
    assert last_detail(cloud, "conjur.authenticate_gcp").startswith("CONJ00049E")


def test_an_unknown_gce_instance_is_a_404_from_the_metadata_server(cloud: Vault) -> None:
    auth = ConjurGCPAuth(GCP_HOST, metadata_url=f"{cloud.url}/gcp-metadata/no-such-vm")
    with client(cloud, auth) as conjur, pytest.raises(CyberArkError) as refused:
        conjur.get_secret(VARIABLE)
    assert refused.value.status == 404
    assert "gcp_identity_token" in str(refused.value)


# -- tokens: cached, renewed, and never shown ------------------------------------------------------


@pytest.mark.parametrize("method", ["iam", "azure", "gcp"])
def test_one_authentication_serves_many_fetches_and_a_revoked_token_is_renewed(
    cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, method: str
) -> None:
    aws_env(monkeypatch, tmp_path)
    auth = {"iam": iam, "azure": azure, "gcp": gcp}[method](cloud)
    action = f"conjur.authenticate_{method}"
    mark = cloud.mark()
    with client(cloud, auth) as conjur:
        for _ in range(3):
            assert conjur.get_secret(VARIABLE) == VALUE
        assert cloud.count(action, mark) == 1
        cloud.revoke_tokens()
        assert conjur.get_secret(VARIABLE) == VALUE
        assert cloud.count(action, mark) == 2


def test_no_token_or_aws_secret_in_reprs_errors_or_logs(
    cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    aws_env(monkeypatch, tmp_path)
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    strategies = [
        iam(cloud, on_secret=seen.append),
        azure(cloud, on_secret=seen.append),
        gcp(cloud, on_secret=seen.append),
        azure(cloud, AZURE_WRONG_HOST, on_secret=seen.append),
        gcp(cloud, GCP_WRONG_HOST, on_secret=seen.append),
    ]
    for auth in strategies:
        with client(cloud, auth) as conjur:
            try:
                conjur.get_secret(VARIABLE)
                shown.append(repr(conjur.cloud_identity()))
            except CyberArkError as exc:
                shown.extend((str(exc), repr(exc)))
            shown.extend((repr(auth), repr(conjur), str(conjur.__dict__)))
        with pytest.raises(TypeError):
            pickle.dumps(auth)
    # Each credential reached ``on_secret`` (to be masked) before it was used.
    assert ROLE_SECRET in seen and ROLE_TOKEN in seen
    tokens = [value for value in seen if value.count(".") == 2]
    assert len(tokens) >= 4
    everything = "\n".join([*shown, caplog.text])
    for secret in (*seen, ROLE_SECRET, ROLE_TOKEN):
        assert secret not in everything


# -- configuration errors: clear, naming the field, never a value ------------------------------------


def test_without_botocore_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, cloud: Vault) -> None:
    for name in [m for m in sys.modules if m == "botocore" or m.startswith("botocore.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "botocore", None)
    auth = iam(cloud)  # building needs no botocore: only signing does
    with client(cloud, auth) as conjur, pytest.raises(ConfigurationError) as missing:
        conjur.get_secret(VARIABLE)
    assert "pip install 'cyberark-ops[aws]'" in str(missing.value)
    assert missing.value.field == "auth_method"


def test_no_aws_credentials_anywhere(cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws(monkeypatch, tmp_path)
    with client(cloud, iam(cloud)) as conjur, pytest.raises(ConfigurationError) as missing:
        conjur.get_secret(VARIABLE)
    assert "found no AWS credentials" in str(missing.value)
    with client(cloud, iam(cloud, aws_profile="nope")) as conjur, pytest.raises(ConfigurationError) as unknown:
        conjur.get_secret(VARIABLE)
    assert unknown.value.field == "aws_profile"
    assert "ProfileNotFound" in str(unknown.value)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ConjurIAMAuth("prod", IAM_HOST, aws_region="EU-WEST-1"), "aws_region"),
        (lambda: ConjurIAMAuth("prod", IAM_HOST, aws_region="mars"), "aws_region"),
        (lambda: ConjurIAMAuth("", IAM_HOST), "service_id"),
        (lambda: ConjurIAMAuth("prod", IAM_HOST, sts_url="http://sts.example.com"), "aws_sts_url"),
        (lambda: ConjurAzureAuth("prod", AZURE_HOST, metadata_url="http://imds.example.com"), "metadata_url"),
        (lambda: ConjurAzureAuth("prod", AZURE_HOST, metadata_url="ftp://169.254.169.254"), "metadata_url"),
        (lambda: ConjurAzureAuth("prod", AZURE_HOST, metadata_url="https://u:p@imds.example"), "metadata_url"),
        (lambda: ConjurGCPAuth("", metadata_url="https://127.0.0.1"), "login"),
        (lambda: ConjurGCPAuth(GCP_HOST, metadata_url=""), "metadata_url"),
    ],
)
def test_bad_settings_name_their_field(build: Any, field: str) -> None:
    with pytest.raises(ConfigurationError) as bad:
        build()
    assert bad.value.field == field
    assert field in str(bad.value)
    assert "u:p" not in str(bad.value)


def test_plain_http_only_to_a_metadata_host_or_loopback() -> None:
    assert local_base("http://169.254.169.254", "metadata_url") == ("http://169.254.169.254", True)
    assert local_base("http://metadata.google.internal/", "metadata_url") == ("http://metadata.google.internal", True)
    assert local_base("http://127.0.0.1:8080/x", "metadata_url") == ("http://127.0.0.1:8080/x", True)
    assert local_base("http://[::1]:80", "metadata_url")[1] is True
    assert local_base("https://imds.example.com", "metadata_url") == ("https://imds.example.com", False)
    for remote in ("http://10.0.0.1", "http://169.254.169.253", "http://metadata.google.internal.evil.example"):
        with pytest.raises(ConfigurationError):
            local_base(remote, "metadata_url")


def test_the_defaults_are_the_real_endpoints() -> None:
    assert ConjurAzureAuth("prod", AZURE_HOST)._metadata_url == "http://169.254.169.254"
    assert ConjurGCPAuth(GCP_HOST)._metadata_url == "http://metadata.google.internal"
    assert ConjurIAMAuth("prod", IAM_HOST).sts_host == "sts.amazonaws.com"
    assert ConjurIAMAuth("prod", IAM_HOST).signing_region == "us-east-1"


# -- the cloud identity the doctor shows -------------------------------------------------------------


def test_cloud_identities_and_the_hosts_they_map_to(
    cloud: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env(monkeypatch, tmp_path)
    with client(cloud, iam(cloud)) as conjur:
        aws = conjur.cloud_identity()
    assert aws is not None and aws.identity == ROLE_ARN and aws.problem is None
    assert aws.details["account"] == AWS_ACCOUNT
    with client(cloud, iam(cloud, "host/aws/prod/other")) as conjur:
        wrong = conjur.cloud_identity()
    assert wrong is not None and wrong.problem is not None
    assert f"{AWS_ACCOUNT}/airflow-worker" in wrong.problem
    with client(cloud, azure(cloud)) as conjur:
        vm = conjur.cloud_identity()
    assert vm is not None and vm.conjur_host == AZURE_HOST
    assert vm.details == {
        "subscription-id": SUBSCRIPTION,
        "resource-group": "rg-airflow",
        "system-assigned-identity": SYSTEM_OID,
    }
    with client(cloud, gcp(cloud)) as conjur:
        instance = conjur.cloud_identity()
    assert instance is not None and instance.identity == GCP_EMAIL and instance.conjur_host == GCP_HOST
    assert instance.details["project-id"] == GCP_PROJECT
    with client(cloud, vault_api_key_auth()) as conjur:
        assert conjur.cloud_identity() is None


def vault_api_key_auth() -> Any:
    from cyberark_ops.client import ConjurApiKeyAuth

    return ConjurApiKeyAuth("host/x", "an-api-key-that-is-never-used")


# -- parsers that must hold for every input ---------------------------------------------------------


@given(st.text(max_size=300))
def test_jwt_claims_never_raises(text: str) -> None:
    claims = jwt_claims(text)
    assert claims is None or isinstance(claims, dict)


@given(st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=20), st.integers()), max_size=5))
def test_jwt_claims_reads_back_any_payload(payload: dict[str, Any]) -> None:
    import base64
    import json

    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    assert jwt_claims(f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln") == payload


@given(st.binary(max_size=400))
def test_parse_caller_identity_never_raises(data: bytes) -> None:
    parsed = parse_caller_identity(data)
    assert parsed is None or all(parsed)


_NAME = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789+=,.@_-", min_size=1, max_size=30)


@given(account=st.from_regex(r"\d{12}", fullmatch=True), role=_NAME, session=_NAME, path=st.lists(_NAME, max_size=3))
def test_an_arn_maps_to_account_and_name(account: str, role: str, session: str, path: list[str]) -> None:
    from xml.sax.saxutils import escape

    arn = f"arn:aws:sts::{account}:assumed-role/{role}/{session}"
    answer = f"<R><Result><Arn>{escape(arn)}</Arn><Account>{account}</Account></Result></R>"
    assert parse_caller_identity(answer.encode()) == (arn, account)
    assert _aws_identity_parts(arn) == (account, role)
    # Conjur takes the segment after the first "/": a user's path's first segment, if it has a path.
    user = f"arn:aws:iam::{account}:user/{'/'.join([*path, role])}"
    assert _aws_identity_parts(user) == (account, [*path, role][0])


def test_a_doctype_is_not_expanded() -> None:
    bomb = b'<!DOCTYPE r [<!ENTITY a "aaaa">]><r><Arn>&a;</Arn><Account>1</Account></r>'
    assert parse_caller_identity(bomb) == ("&a;", "1")
    assert parse_caller_identity(b"<Arn>" + b"x" * 100_000 + b"</Arn>") is None


@given(
    st.one_of(
        st.text(max_size=80), st.from_regex(r"(https?|ftp)://[a-z0-9.:\[\]@-]{0,30}(/[a-z]{0,5})?", fullmatch=True)
    )
)
def test_local_base_accepts_or_names_its_field_for_any_text(url: str) -> None:
    try:
        base, local = local_base(url, "metadata_url")
    except ConfigurationError as exc:
        assert exc.field == "metadata_url"
        return
    assert base.startswith(("https://", "http://"))
    assert local == base.startswith("http://")


def test_a_metadata_service_on_plain_http_is_reached_without_allow_insecure_http(tmp_path: Path) -> None:
    """As on a real VM: the metadata service speaks plain http on this machine, Conjur https. Two dev
    servers share a state dir (so the http one's tokens are signed with the key the https one trusts)."""
    with DevServer(SEED, state_dir=tmp_path) as conjur_server, DevServer(SEED, state_dir=tmp_path, tls=False) as plain:
        vault = Vault(conjur_server)
        metadata = f"{plain.info()['url']}/gcp-metadata/airflow-vm"
        assert metadata.startswith("http://127.0.0.1:")
        with client(vault, ConjurGCPAuth(GCP_HOST, metadata_url=metadata)) as conjur:
            assert conjur.get_secret(VARIABLE) == VALUE
        assert [e["status"] for e in plain.app.audit.events(action="gce_metadata.identity_token")] == [200]
        # Conjur itself over plain http is still refused: local_http is for the metadata call alone.
        with pytest.raises(ConfigurationError, match="plain http"):
            vault.conjur_config(auth=ConjurGCPAuth(GCP_HOST, metadata_url=metadata), base_url=plain.info()["url"])


@pytest.mark.parametrize(
    ("endpoint", "auth"),
    [("imds.identity_token", azure), ("gce_metadata.identity_token", gcp)],
    ids=["azure", "gcp"],
)
@pytest.mark.parametrize("kind", ["malformed", "content_type"])
def test_a_metadata_answer_that_is_not_a_token_is_an_invalid_response(
    make_vault: Any, endpoint: str, auth: Any, kind: str
) -> None:
    vault = make_vault(SEED)
    vault.fault(endpoint, kind=kind, count=1)
    with client(vault, auth(vault)) as conjur, pytest.raises(InvalidResponse) as invalid:
        conjur.get_secret(VARIABLE)
    assert "identity_token" in str(invalid.value)
    assert "<html" not in str(invalid.value).lower()
    assert vault.count("conjur.authenticate_azure") + vault.count("conjur.authenticate_gcp") == 0
    with client(vault, auth(vault)) as conjur:  # the fault was for one answer only
        assert conjur.get_secret(VARIABLE) == VALUE


def test_a_metadata_service_that_fails_is_retried_as_any_call(make_vault: Any) -> None:
    vault = make_vault(SEED)
    vault.fault("imds.identity_token", status=503, count=2)
    with client(vault, azure(vault)) as conjur:
        assert conjur.get_secret(VARIABLE) == VALUE
    assert [e["status"] for e in vault.events(action="imds.identity_token")] == [503, 503, 200]


def test_botocore_is_imported_only_to_sign() -> None:
    import subprocess

    code = (
        "import sys, cyberark_ops.client as c, cyberark_ops.builders;"
        "c.ConjurIAMAuth('prod', 'host/a/123456789012/r');"
        "print('botocore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
