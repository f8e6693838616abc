"""``Credential`` must not leak its secret through repr, formatting, pickling or serialisation."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
from datetime import datetime, timezone

import pytest

from cyberark_ops.client import Credential

SECRET = "Canary-S3cret-9f8e"


def make() -> Credential:
    return Credential(
        secret=SECRET,
        username="etl",
        address="db01",
        port=5432,
        database="sales",
        extra={"LogonDomain": "DEV"},
        source="ccp:Safe=DB-Prod;Object=pg-prod",
    )


def test_fields() -> None:
    credential = make()
    assert credential.secret == SECRET
    assert (credential.username, credential.address, credential.port, credential.database) == (
        "etl",
        "db01",
        5432,
        "sales",
    )
    assert credential.extra["LogonDomain"] == "DEV"
    assert credential.source == "ccp:Safe=DB-Prod;Object=pg-prod"
    assert credential.fetched_at.tzinfo is timezone.utc
    assert (datetime.now(timezone.utc) - credential.fetched_at).total_seconds() < 5


def test_text_forms_hide_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    credential = make()
    forms = [
        repr(credential),
        str(credential),
        f"{credential}",
        f"{credential!r}",
        f"{credential:>200}",
        "%s" % credential,  # noqa: UP031 - the old-style formatting path
        "{}".format(credential),  # noqa: UP032 - str.format's path
        str([credential]),
        str({"c": credential}),
    ]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("credential %s %r", credential, credential)
    forms.append(caplog.text)
    for form in forms:
        assert SECRET not in form
    assert "***" in repr(credential)
    assert "etl" in repr(credential)


def test_pickling_is_refused_with_a_clear_error() -> None:
    credential = make()
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(credential, protocol=protocol)
    with pytest.raises(TypeError, match="cannot be pickled"):
        credential.__reduce__()
    with pytest.raises(TypeError, match="cannot be pickled"):
        credential.__getstate__()


def test_copy_returns_the_same_immutable_object() -> None:
    credential = make()
    assert copy.copy(credential) is credential
    assert copy.deepcopy({"c": credential})["c"] is credential


def test_json_and_serialisers_refuse_it() -> None:
    credential = make()
    with pytest.raises(TypeError):
        json.dumps(credential)
    with pytest.raises(TypeError):
        json.dumps({"credential": credential})
    assert not dataclasses.is_dataclass(credential)
    assert not hasattr(credential, "__attrs_attrs__")
    assert not hasattr(credential, "model_dump")
    assert not hasattr(credential, "serialize")
    with pytest.raises(TypeError):
        vars(credential)


def test_airflow_serde_refuses_it() -> None:
    serde = pytest.importorskip("airflow.sdk.serde")
    with pytest.raises(TypeError):
        serde.serialize(make())


def test_it_is_read_only() -> None:
    credential = make()
    with pytest.raises(AttributeError):
        credential.username = "root"
    with pytest.raises(AttributeError):
        del credential.address
    with pytest.raises(TypeError):
        credential.extra["LogonDomain"] = "PROD"  # type: ignore[index]


def test_extra_is_a_copy() -> None:
    properties = {"LogonDomain": "DEV"}
    credential = Credential(secret=SECRET, source="x", extra=properties)
    properties["LogonDomain"] = "PROD"
    assert credential.extra["LogonDomain"] == "DEV"


def test_to_dict_includes_the_secret_only_when_asked() -> None:
    credential = make()
    plain = credential.to_dict()
    assert "secret" not in plain
    assert SECRET not in json.dumps(plain)
    assert plain["port"] == 5432
    assert credential.to_dict(include_secret=True)["secret"] == SECRET


def test_constructor_checks_types() -> None:
    with pytest.raises(TypeError):
        Credential(secret=b"bytes", source="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Credential(secret="s", source="x", port="5432")  # type: ignore[arg-type]
