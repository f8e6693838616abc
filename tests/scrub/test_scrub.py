"""``scrub``: every form out of every container type, shapes kept, the fast path, cycles and depth."""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
from collections import OrderedDict, defaultdict, namedtuple
from collections.abc import Iterator
from typing import Any, NamedTuple

import pydantic
import pytest

from cyberark_ops import scrub
from tests.scrub.conftest import CANARY

Row = namedtuple("Row", "id dsn note")


class TypedRow(NamedTuple):
    user: str
    token: str


@dataclasses.dataclass
class Account:
    name: str
    password: str = dataclasses.field(repr=False)  # hidden from repr: the fast check must not rely on repr
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenConn:
    uri: str
    extra: dict[str, Any]


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    login: str
    secret: str = pydantic.Field(repr=False)
    nested: list[dict[str, str]] = []


class Text(str):
    pass


def _leaves(value: Any, seen: set[int] | None = None) -> Iterator[str | bytes]:
    """Every str and bytes inside ``value``, through every type scrub handles."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (str, bytes)):
        yield value
    elif isinstance(value, bytearray):
        yield bytes(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(k, seen)
            yield from _leaves(v, seen)
    elif isinstance(value, (list, tuple, set, frozenset, sqlite3.Row)):
        for item in value:
            yield from _leaves(item, seen)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name), seen)
    elif isinstance(value, pydantic.BaseModel):
        yield from _leaves(dict(value), seen)
        yield from _leaves(value.model_extra or {}, seen)


@functools.lru_cache(maxsize=8)
def _forms_of(secret: str) -> tuple[str, ...]:
    """Computed once per secret: the 4 KB one has ~160 composed forms, some of 100 KB."""
    return scrub.forms(secret, username="svc")


def _holds(value: Any, secret: str) -> list[str]:
    found = _forms_of(secret)
    hits = []
    for leaf in _leaves(value):
        text = leaf.decode("utf-8", "replace") if isinstance(leaf, bytes) else leaf
        hits += [form for form in found if form in text]
    return hits


def _sample(form: str) -> dict[str, Any]:
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    row = db.execute("select ? as a, 1 as b", (f"sqlite {form}",)).fetchone()
    db.close()
    return {
        "str": f"before {form} after",
        "bytes": f"b {form} b".encode(),
        "bytearray": bytearray(f"ba {form}".encode()),
        "list": ["clean", f"x{form}x", 3, None, 1.5],
        "tuple": ("clean", form),
        "set": {form, "clean"},
        "frozenset": frozenset({f"{form}!", "clean"}),
        f"key {form}": "a dict key",
        "namedtuple": Row(1, f"postgresql://u:{form}@h/db", "n"),
        "typed": TypedRow("u", form),
        "dataclass": Account("acct", form, ["t", form]),
        "frozen": FrozenConn(f"sqlite://{form}", {"password": form}),
        "model": Model(login="u", secret=form, nested=[{"k": form}], **{"extra_field": f"e{form}"}),
        "row": row,
        "ordered": OrderedDict([("a", form)]),
        "default": defaultdict(list, {"a": [form]}),
        "subclass": Text(f"t{form}"),
        "deep": _deep([form], 60),
    }


def _deep(value: Any, depth: int) -> Any:
    for level in range(depth):
        value = [value] if level % 3 else {"next": (value,)}
    return value


@pytest.mark.slow
def test_scrub_removes_every_form_from_every_container_type(secret: str) -> None:
    registry = scrub.Registry()
    registry.register(secret, username="svc")
    for name, form in scrub.leak_forms(secret, username="svc").items():
        value = _sample(form)
        assert _holds(value, secret), name  # control
        result = registry.scrub(value)
        assert _holds(result, secret) == [], name
    registry.clear()


def test_scrub_keeps_types_and_shapes() -> None:
    scrub.register(CANARY, username="svc")
    value = _sample(CANARY)
    result = scrub.scrub(value)
    assert type(result) is dict
    assert set(map(type, result)) == {str}
    assert result["str"] == "before *** after"
    assert result["bytes"] == b"b *** b"
    assert type(result["bytearray"]) is bytearray
    assert result["bytearray"] == bytearray(b"ba ***")
    assert result["list"] == ["clean", "x***x", 3, None, 1.5]
    assert result["tuple"] == ("clean", "***")
    assert result["set"] == {"***", "clean"}
    assert result["frozenset"] == frozenset({"***!", "clean"})
    assert result["key ***"] == "a dict key"
    assert type(result["namedtuple"]) is Row
    assert result["namedtuple"] == Row(1, "postgresql://u:***@h/db", "n")
    assert result["typed"] == TypedRow("u", "***")
    assert type(result["typed"]) is TypedRow
    account = result["dataclass"]
    assert type(account) is Account
    assert (account.name, account.password, account.tags) == ("acct", "***", ["t", "***"])
    assert value["dataclass"].password == CANARY  # the input is not modified
    frozen = result["frozen"]
    assert type(frozen) is FrozenConn
    assert frozen == FrozenConn("sqlite://***", {"password": "***"})
    model = result["model"]
    assert type(model) is Model
    assert (model.login, model.secret, model.nested, model.model_extra) == (
        "u",
        "***",
        [{"k": "***"}],
        {"extra_field": "e***"},
    )
    assert value["model"].secret == CANARY
    assert result["row"] == ("sqlite ***", 1)  # sqlite3.Row becomes a tuple once scrubbed
    assert type(result["ordered"]) is OrderedDict
    assert result["ordered"] == {"a": "***"}
    assert type(result["default"]) is defaultdict
    assert result["default"].default_factory is list
    assert result["subclass"] == "t***"
    assert _holds(result["deep"], CANARY) == []


def test_scrub_rebuilds_only_what_holds_a_form() -> None:
    scrub.register(CANARY)
    clean_list = ["a", "b"]
    clean_account = Account("n", "p")
    value = {"clean": clean_list, "account": clean_account, "dirty": [CANARY]}
    result = scrub.scrub(value)
    assert result is not value
    assert result["clean"] is clean_list
    assert result["account"] is clean_account
    assert value["dirty"] == [CANARY]


def test_the_fast_path_returns_the_same_object_when_no_form_occurs() -> None:
    scrub.register(CANARY, username="svc")
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    row = db.execute("select 'a' as a").fetchone()
    db.close()
    sample = _sample("nothing-secret-here")
    sample["row"] = row
    # Near misses: the canary with its backslash or quote escaped differently, a prefix, other case.
    near = [CANARY[:-1], CANARY.upper(), CANARY.replace("\\", "\\\\\\"), repr(CANARY)[2:-2], CANARY.encode("utf-16")]
    for value in [sample, near, [(str(i), "x" * 50, "y") for i in range(5000)], "plain", b"bytes", 3, None]:
        assert scrub.scrub(value) is value


@pytest.mark.slow
def test_the_fast_check_sees_the_canary_wherever_repr_would_escape_or_hide_it() -> None:
    """Each form of the canary has a backslash, quotes or non-ASCII; repr escapes them; some fields hide from repr."""
    scrub.register(CANARY, username="svc")
    for name, form in scrub.leak_forms(CANARY, username="svc").items():
        holders = [
            form,
            [form],
            {"k": form},
            {form: 1},
            (form.encode(),),
            [bytearray(form.encode())],
            Account("n", form),  # repr=False field
            Model(login="u", secret=form),  # repr=False field
            [Text(form)],
            {frozenset({form})},
            [(str(i), "x", "y") for i in range(100)] + [("a", form, "c")],
        ]
        for holder in holders:
            result = scrub.scrub(holder)
            assert result is not holder, (name, type(holder))
            assert _holds(result, CANARY) == [], (name, type(holder))


def test_unknown_objects_pass_through_unchanged() -> None:
    scrub.register(CANARY)

    class Opaque:
        def __init__(self) -> None:
            self.secret = CANARY

    opaque = Opaque()
    value = [opaque, CANARY]
    result = scrub.scrub(value)
    assert result == [opaque, "***"]
    assert result[0] is opaque
    assert scrub.scrub([opaque]) == [opaque]


def test_the_longest_form_wins() -> None:
    registry = scrub.Registry()
    registry.register("secret-one")
    registry.register("secret-one-two")
    assert registry.scrub("a secret-one-two b secret-one c") == "a *** b *** c"
    registry.clear()


def test_cycles_do_not_hang_and_the_copy_keeps_them() -> None:
    scrub.register(CANARY)
    loop: list[Any] = [CANARY]
    loop.append(loop)
    result = scrub.scrub(loop)
    assert result[0] == "***"
    assert result[1] is result
    assert loop[0] == CANARY

    mapping: dict[str, Any] = {"password": CANARY}
    mapping["self"] = (mapping, [mapping])
    copied = scrub.scrub(mapping)
    assert copied["password"] == "***"
    assert copied["self"][0] is copied
    assert copied["self"][1][0] is copied

    account = Account("n", CANARY)
    account.tags = [account]  # type: ignore[list-item]
    rebuilt = scrub.scrub(account)
    assert rebuilt.password == "***"
    assert rebuilt.tags[0] is rebuilt

    clean: list[Any] = ["nothing"]
    clean.append(clean)
    assert scrub.scrub(clean) is clean


def test_shared_objects_stay_shared() -> None:
    scrub.register(CANARY)
    shared = [CANARY]
    result = scrub.scrub([shared, shared, (shared,)])
    assert result[0] is result[1] is result[2][0]
    assert result[0] == ["***"]


def test_a_value_deeper_than_the_recursion_limit_fails_closed_without_the_value() -> None:
    scrub.register(CANARY)
    value: Any = CANARY
    for _ in range(5000):
        value = [value]
    with pytest.raises(scrub.ScrubError) as caught:
        scrub.scrub(value)
    assert CANARY not in str(caught.value)
    assert caught.value.__context__ is None
    assert "recursion limit" in str(caught.value)


def test_scrub_with_explicit_secrets_does_not_touch_the_task_registry() -> None:
    assert scrub.scrub(["abc-secret", "xy"], secrets=["abc-secret", "xy"]) == ["***", "***"]
    assert scrub.scrub("one token-123", secrets="token-123") == "one ***"
    assert len(scrub.registry()) == 0
    assert scrub.scrub("token-123") == "token-123"
    registry = scrub.Registry(mask=False)
    registry.register("registry-only")
    assert scrub.scrub("registry-only", secrets=registry) == "***"


def test_nothing_registered_means_nothing_changes() -> None:
    value = {"a": [CANARY]}
    assert scrub.scrub(value) is value


def test_http_basic_needs_the_username() -> None:
    header = "Authorization: Basic " + scrub.leak_forms(CANARY, username="svc")["basic"] + "="
    registry = scrub.Registry()
    registry.register(CANARY)
    assert registry.scrub(header) == header
    registry.register(CANARY, username="svc")
    assert registry.scrub(header).startswith("Authorization: Basic ***")
    registry.clear()
