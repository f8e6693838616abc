"""Reference parsing and id validation: author-written strings must never reach another path."""

from __future__ import annotations

import pytest

from cyberark_ops.client import CCPRef, ConfigurationError, ConjurRef, PVWARef, parse_ref
from cyberark_ops.client.refs import validate_ccp_value, validate_conjur_id


def test_conjur_reference_with_and_without_version() -> None:
    assert parse_ref("conjur:prod/db/password") == ConjurRef("prod/db/password")
    assert parse_ref("conjur:prod/api/key?version=3") == ConjurRef("prod/api/key", 3)
    assert str(ConjurRef("prod/api/key", 3)) == "conjur:prod/api/key?version=3"


@pytest.mark.parametrize(
    "variable_id",
    [
        "a/ b /c",
        "research+development",
        "sales&marketing",
        "alice@devops",
        "percent%literal",
        "unicode/clé-ключ",
        "with,comma",
        "a/b?c",
    ],
)
def test_conjur_ids_with_special_characters_are_accepted(variable_id: str) -> None:
    assert parse_ref(f"conjur:{variable_id}") == ConjurRef(variable_id)


@pytest.mark.parametrize(
    ("variable_id", "problem"),
    [
        ("../etc/passwd", "'..' segment"),
        ("prod/../admin/break-glass", "'..' segment"),
        ("prod/./x", "'.' segment"),
        ("prod//password", "empty path segment"),
        ("/prod/password", "empty path segment"),
        ("prod/password/", "empty path segment"),
        ("prod/pass\nword", "control characters"),
        ("prod/pass\x00word", "control characters"),
    ],
)
def test_conjur_ids_that_could_reach_another_path_are_refused(variable_id: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        validate_conjur_id(variable_id)
    assert problem in str(raised.value)
    assert raised.value.field == "variable_id"
    if "\n" not in variable_id and "\x00" not in variable_id:
        assert repr(variable_id) in str(raised.value)


def test_conjur_reference_rejects_unknown_options_and_bad_versions() -> None:
    with pytest.raises(ConfigurationError, match=r"\?version=<n>"):
        parse_ref("conjur:prod/db/password?versoin=2")
    with pytest.raises(ConfigurationError, match="start at 1"):
        ConjurRef("prod/db/password", 0)


def test_ccp_reference_keys_are_case_insensitive_and_canonical() -> None:
    ref = parse_ref("ccp:safe=DB-Prod;OBJECT=pg-prod;folder=Root")
    assert isinstance(ref, CCPRef)
    assert ref.params == (("Safe", "DB-Prod"), ("Object", "pg-prod"), ("Folder", "Root"))
    assert str(ref) == "ccp:Safe=DB-Prod;Object=pg-prod;Folder=Root"
    assert ref.get("Object") == "pg-prod"


def test_ccp_reference_query_takes_the_rest() -> None:
    ref = parse_ref("ccp:Safe=DB-Prod;Query=VirtualUsername=etl-dual;DualAccountStatus=Active")
    assert isinstance(ref, CCPRef)
    assert ref.get("Query") == "VirtualUsername=etl-dual;DualAccountStatus=Active"


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("ccp:Safe=DB-Prod;Object=pg&prod", "'&'"),
        ("ccp:Safe=DB+Prod", "'+'"),
        ("ccp:Object=50%off", "'%'"),
        ("ccp:Safe=x;Safe=y", "given twice"),
        ("ccp:Colour=blue", "Key=Value"),
        ("ccp:Safe=", "empty value"),
        ("ccp:Folder=Root\\..\\Other", "'..'"),
    ],
)
def test_ccp_reference_errors_name_the_problem(reference: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_ref(reference)
    assert problem in str(raised.value)
    assert repr(reference) in str(raised.value)


def test_ccp_values_are_checked_per_parameter() -> None:
    with pytest.raises(ConfigurationError) as raised:
        validate_ccp_value("Object", "a;b")
    assert raised.value.field == "Object"
    assert validate_ccp_value("Query", "Safe=a;Object=b", query=True) == "Safe=a;Object=b"
    with pytest.raises(ConfigurationError, match="control characters"):
        CCPRef.of(Safe="DB\tProd")


def test_pvwa_references() -> None:
    assert parse_ref("pvwa:DB-Prod/pg-prod") == PVWARef(safe="DB-Prod", name="pg-prod")
    assert parse_ref("pvwa:id=25_3") == PVWARef(account_id="25_3")
    alias = parse_ref("privilege-cloud:DB-Prod/pg-prod")
    assert isinstance(alias, PVWARef)
    assert (alias.safe, alias.name, alias.scheme) == ("DB-Prod", "pg-prod", "privilege-cloud")
    with pytest.raises(ConfigurationError, match="unknown scheme"):
        parse_ref("privileged-cloud:DB-Prod/pg-prod")  # the product is Privilege Cloud
    assert str(parse_ref("pvwa:id=2_1")) == "pvwa:id=2_1"
    # An account name may contain '/'; the safe is up to the first one.
    assert parse_ref("pvwa:App-Dev/web/api") == PVWARef(safe="App-Dev", name="web/api")


@pytest.mark.parametrize(
    "reference",
    ["pvwa:DB-Prod", "pvwa:/pg-prod", "pvwa:id=../x", "vault:DB-Prod/pg-prod", "conjur", "conjur:", 42],
)
def test_malformed_references_are_configuration_errors(reference: object) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_ref(reference)  # type: ignore[arg-type]
    assert raised.value.field in ("reference", "account_id")
