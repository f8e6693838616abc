"""The cloud authenticators through the package's ways in: a hook connection, the secrets backend's
kwargs and the doctor, against the dev server's Conjur and its STS, IMDS and GCE metadata stand-ins
(loopback only; AWS credentials from botocore's chain, isolated from any real one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cyberark_ops import doctor, scrub
from cyberark_ops.client import ConfigurationError
from cyberark_ops.devserver import DevServer
from cyberark_ops.hooks.cyberark import CyberArkHook
from cyberark_ops.provider_info import provider_info
from cyberark_ops.secrets import CyberArkSecretsBackend, VaultLookupFailed
from cyberark_ops.settings import ConnectionSettings
from tests.cloudauth import (
    ACCOUNT,
    AWS_ACCOUNT,
    AZURE_HOST,
    AZURE_WRONG_HOST,
    GCP_EMAIL,
    GCP_HOST,
    GCP_PROJECT,
    IAM_HOST,
    ROLE_ARN,
    ROLE_SECRET,
    ROLE_TOKEN,
    SEED,
    SUBSCRIPTION,
    SYSTEM_OID,
    VALUE,
    VARIABLE,
    aws_env,
    azure_metadata_url,
    gcp_metadata_url,
    sts_url,
)
from tests.hooks.conftest import FAST_EXTRAS, Connections

pytest.importorskip(
    "botocore.session", reason="authn-iam signs with botocore (extra aws), not installed beside the pinned Airflow 3.1"
)

METHODS = ("authn-iam", "authn-azure", "authn-gcp")


@pytest.fixture
def cloud(
    make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Connections]:
    aws_env(monkeypatch, tmp_path)
    yield Connections(make_server(SEED), monkeypatch)


def method_extras(server: DevServer, method: str) -> dict[str, Any]:
    """A method's own settings: the login (the Conjur host) and its extras."""
    if method == "authn-iam":
        return {"login": IAM_HOST, "service_id": "prod", "aws_sts_url": sts_url(server)}
    if method == "authn-azure":
        return {"login": AZURE_HOST, "service_id": "prod", "metadata_url": azure_metadata_url(server)}
    return {"login": GCP_HOST, "metadata_url": gcp_metadata_url(server)}


def settings_for(cloud: Connections, method: str, **overrides: Any) -> ConnectionSettings:
    extras: dict[str, Any] = {**method_extras(cloud.server, method), **overrides}
    login = extras.pop("login")
    return ConnectionSettings.from_fields(
        host=cloud.info["url"],
        login=login,
        password=None,
        extras={
            "api": "conjur",
            "account": ACCOUNT,
            "auth_method": method,
            "ca_bundle": cloud.info["ca_cert"],
            **FAST_EXTRAS,
            **extras,
        },
    )


def test_the_connection_form_offers_the_cloud_methods() -> None:
    (conn_type,) = provider_info()["connection-types"]
    choices = conn_type["conn-fields"]["auth_method"]["schema"]["enum"]
    assert set(METHODS) <= set(choices)


@pytest.mark.parametrize("method", METHODS)
def test_the_hook_fetches_with_the_workers_cloud_identity(cloud: Connections, method: str) -> None:
    extras = method_extras(cloud.server, method)
    conn_id = cloud.conjur(f"cyberark_{method.replace('-', '_')}", password=None, auth_method=method, **extras)
    hook = CyberArkHook(conn_id, reason="cloud identity")
    assert hook.get_secret(VARIABLE) == VALUE
    assert hook.test_connection() == (True, f"Authenticated to Conjur as {extras['login']!r}.")
    hook.close()
    kind = method.removeprefix("authn-")
    statuses = [e["status"] for e in cloud.calls("conjur") if e["action"] == f"conjur.authenticate_{kind}"]
    assert statuses and set(statuses) == {200}


def test_the_aws_credentials_the_hook_signs_with_are_masked(cloud: Connections) -> None:
    conn_id = cloud.conjur(
        "cyberark_iam", password=None, auth_method="authn-iam", **method_extras(cloud.server, "authn-iam")
    )
    assert CyberArkHook(conn_id).get_secret(VARIABLE) == VALUE
    assert scrub.scrub(f"key {ROLE_SECRET} token {ROLE_TOKEN}") == "key *** token ***"


@pytest.mark.parametrize("method", METHODS)
def test_the_secrets_backend_fetches_with_the_workers_cloud_identity(cloud: Connections, method: str) -> None:
    extras = method_extras(cloud.server, method)
    backend = CyberArkSecretsBackend(
        url=cloud.info["url"],
        ca_bundle=cloud.info["ca_cert"],
        account=ACCOUNT,
        auth_method=method,
        variables_path="cloud/db/{variable}",
        **extras,
    )
    assert backend.get_variable("password") == VALUE
    assert backend.get_variable("missing") is None


@pytest.mark.parametrize(
    ("method", "drop", "field"),
    [
        ("authn-iam", "service_id", "service_id"),
        ("authn-azure", "service_id", "service_id"),
        ("authn-gcp", "login", "login"),
    ],
)
def test_a_missing_setting_is_named(cloud: Connections, method: str, drop: str, field: str) -> None:
    extras = {k: v for k, v in method_extras(cloud.server, method).items() if k != drop}
    conn_id = cloud.conjur("cyberark_incomplete", password=None, auth_method=method, **extras)
    if drop == "login":
        conn_id = cloud.add(
            "cyberark_incomplete",
            login=None,
            password=None,
            api="conjur",
            account=ACCOUNT,
            auth_method=method,
            **extras,
        )
    with pytest.raises(ConfigurationError) as missing:
        CyberArkHook(conn_id).get_secret(VARIABLE)
    assert missing.value.field == field


def test_a_bad_region_in_backend_kwargs_is_named_as_a_backend_setting(cloud: Connections) -> None:
    backend = CyberArkSecretsBackend(
        url=cloud.info["url"],
        account=ACCOUNT,
        auth_method="authn-iam",
        login=IAM_HOST,
        service_id="prod",
        aws_region="Mars-1",
        variables_path="cloud/db/{variable}",
    )
    with pytest.raises(VaultLookupFailed, match="backend_kwargs: aws_region: must be 'global'"):
        backend.get_variable("password")


# -- the doctor -----------------------------------------------------------------------------------


def checks(report: doctor.Report) -> dict[str, doctor.Check]:
    return {check.name: check for check in report.checks}


@pytest.mark.parametrize(
    ("method", "shown"),
    [
        ("authn-iam", (f"AWS identity {ROLE_ARN}", f"account {AWS_ACCOUNT}", f"Conjur host {IAM_HOST!r}")),
        (
            "authn-azure",
            (
                f"subscription-id {SUBSCRIPTION}",
                "resource-group rg-airflow",
                f"system-assigned-identity {SYSTEM_OID}",
                f"Conjur host {AZURE_HOST!r}",
            ),
        ),
        ("authn-gcp", (f"GCP identity {GCP_EMAIL}", f"project-id {GCP_PROJECT}", f"Conjur host {GCP_HOST!r}")),
    ],
)
def test_the_doctor_names_the_cloud_identity_and_its_conjur_host(
    cloud: Connections, method: str, shown: tuple[str, ...]
) -> None:
    report = doctor.run(lambda: settings_for(cloud, method), source="test", paths=[VARIABLE])
    found = checks(report)
    assert found["configuration"].detail.endswith(f"auth {method}")
    assert found["cloud identity"].status == doctor.PASS, found["cloud identity"]
    for text in shown:
        assert text in found["cloud identity"].detail
    assert found["authentication"].status == doctor.PASS
    assert found[f"read {VARIABLE}"].status == doctor.PASS
    rendered = doctor.render_json(report) + doctor.render_text(report)
    assert VALUE not in rendered and ROLE_SECRET not in rendered and ROLE_TOKEN not in rendered
    assert "eyJ" not in rendered  # no JWT, not even its header


def test_the_doctor_warns_when_the_aws_identity_maps_to_another_host(cloud: Connections) -> None:
    wrong = f"host/aws/prod/{AWS_ACCOUNT}/another-role"
    report = doctor.run(lambda: settings_for(cloud, "authn-iam", login=wrong), source="test")
    found = checks(report)
    assert found["cloud identity"].status == doctor.WARN
    assert f"ending in '{AWS_ACCOUNT}/airflow-worker'" in found["cloud identity"].detail
    assert found["authentication"].status == doctor.FAIL
    assert "<aws account id>/<iam role name>" in found["authentication"].remedy


def test_the_doctor_gives_the_azure_methods_advice_when_annotations_do_not_match(cloud: Connections) -> None:
    report = doctor.run(lambda: settings_for(cloud, "authn-azure", login=AZURE_WRONG_HOST), source="test")
    found = checks(report)
    assert found["cloud identity"].status == doctor.PASS  # the identity is fine; the host's annotations are not
    assert found["authentication"].status == doctor.FAIL
    assert "authn-azure/subscription-id" in found["authentication"].remedy


def test_the_doctor_fails_the_cloud_identity_when_the_metadata_service_is_wrong(cloud: Connections) -> None:
    report = doctor.run(
        lambda: settings_for(cloud, "authn-gcp", metadata_url=f"{cloud.info['url']}/gcp-metadata/nowhere"),
        source="test",
    )
    found = checks(report)
    assert found["cloud identity"].status == doctor.FAIL
    assert "metadata_url" in found["cloud identity"].remedy


def test_other_methods_have_no_cloud_identity_line(
    make_server: Callable[..., DevServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    conns = Connections(make_server(), monkeypatch)
    from tests.client.conftest import HOST_API_KEY, HOST_LOGIN

    settings = ConnectionSettings.from_fields(
        host=conns.info["url"],
        login=HOST_LOGIN,
        password=HOST_API_KEY,
        extras={"api": "conjur", "account": conns.info["conjur_account"], "ca_bundle": conns.info["ca_cert"]},
    )
    assert "cloud identity" not in checks(doctor.run(lambda: settings, source="test"))


@pytest.mark.parametrize("method", METHODS)
def test_the_decorator_injects_with_the_workers_cloud_identity(cloud: Connections, method: str) -> None:
    from cyberark_ops import with_cyberark_secret

    conn_id = cloud.conjur(
        "cyberark_cloud_deco", password=None, auth_method=method, **method_extras(cloud.server, method)
    )

    @with_cyberark_secret(vault_conn_id=conn_id, password=VARIABLE, reason="cloud decorator")
    def export(password: str) -> dict[str, Any]:
        return {"length": len(password), "echo": f"pw={password}"}

    assert export() == {"length": len(VALUE), "echo": "pw=***"}


@pytest.mark.parametrize("method", METHODS)
def test_a_vaulted_operator_runs_with_the_workers_cloud_identity(cloud: Connections, method: str) -> None:
    """``vaulted(AnyOperator)`` reaches CyberArk through the hook: the cloud identity serves it too."""
    import hashlib
    import os

    from airflow.providers.standard.operators.bash import BashOperator

    from cyberark_ops import vaulted

    conn_id = cloud.conjur(
        "cyberark_cloud_operator", password=None, auth_method=method, **method_extras(cloud.server, method)
    )
    sha = hashlib.sha256(VALUE.encode()).hexdigest()
    op = vaulted(BashOperator)(
        task_id="cloud",
        vault_conn_id=conn_id,
        credential_ref=VARIABLE,
        secret_env="CLOUD_SECRET",
        bash_command=f'[ "$(printf %s "$CLOUD_SECRET" | sha256sum | cut -d" " -f1)" = "{sha}" ] && echo match',
        env={"PATH": os.environ["PATH"]},
    )
    assert op.execute({}) == "match"
    kind = method.removeprefix("authn-")
    assert any(e["action"] == f"conjur.authenticate_{kind}" and e["status"] == 200 for e in cloud.calls("conjur"))
