"""Conjur policy documents as far as the dev server loads them (docs/cyberark-apis.md §8.4).

Statements: ``!policy`` (nested, with ``body``), ``!variable``, ``!group``, ``!layer``, ``!host``,
``!user``, ``!permit``, ``!grant``; and, in a ``PATCH``, ``!delete``, ``!revoke``, ``!deny``. Ids are
relative to the policy being loaded (``/`` makes one absolute), as in Conjur. Parsing builds plain
statements; ``ConjurModel.load_policy`` applies them. Every problem is a :class:`PolicyInvalid`
naming the statement, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .records import PRIVILEGES

MAX_POLICY_BYTES = 1 << 20
MAX_STATEMENTS = 10_000
RECORD_KINDS = ("policy", "variable", "group", "layer", "host", "user")
ROLE_KINDS = ("group", "layer", "host", "user")
DELETIONS = ("delete", "revoke", "deny")


class PolicyInvalid(Exception):
    """A policy Conjur would refuse with 422 ``policy_invalid``."""


@dataclass(frozen=True)
class Ref:
    kind: str
    id: str
    """Absolute, without a leading ``/`` (``airflow/db/password``)."""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass
class Record:
    ref: Ref
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Permit:
    role: Ref
    privileges: tuple[str, ...]
    resources: tuple[Ref, ...]
    deny: bool = False


@dataclass
class Grant:
    role: Ref
    members: tuple[Ref, ...]
    revoke: bool = False


@dataclass
class Delete:
    record: Ref


Statement = Record | Permit | Grant | Delete


@dataclass(frozen=True)
class _Tagged:
    tag: str
    value: Any


class _Loader(yaml.SafeLoader):
    """YAML with Conjur's tags; anchors and aliases are refused (a billion-laughs document)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise PolicyInvalid("aliases (*name) are not allowed in a policy")
        return super().compose_node(parent, index)


def _tagged(loader: _Loader, suffix: str, node: yaml.Node) -> _Tagged:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return _Tagged(suffix, value)


_Loader.add_multi_constructor("!", _tagged)


def parse(text: bytes, base: str) -> list[Statement]:
    """The statements of a policy document loaded into policy ``base`` (``root`` or ``a/b``)."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyInvalid(f"the policy is larger than {MAX_POLICY_BYTES} bytes")
    try:
        document = yaml.load(text.decode("utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError:
        raise PolicyInvalid("the policy is not UTF-8 text") from None
    except (yaml.YAMLError, RecursionError) as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyInvalid(f"the policy is not valid YAML{where}") from None
    if document is None:
        return []
    statements: list[Statement] = []
    _body(document, "" if base == "root" else base, statements, "policy")
    return statements


def _body(items: Any, prefix: str, out: list[Statement], where: str) -> None:
    if not isinstance(items, list):
        items = [items]
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        if len(out) >= MAX_STATEMENTS:
            raise PolicyInvalid(f"more than {MAX_STATEMENTS} statements")
        if not isinstance(item, _Tagged):
            raise PolicyInvalid(f"{at}: expected a tagged statement such as !variable")
        _statement(item, prefix, out, f"{at} !{item.tag}")


def _statement(item: _Tagged, prefix: str, out: list[Statement], at: str) -> None:
    if item.tag in RECORD_KINDS:
        data = {"id": item.value} if isinstance(item.value, str) else item.value
        if not isinstance(data, dict):
            raise PolicyInvalid(f"{at}: expected an id or a mapping")
        unknown = sorted(set(data) - {"id", "annotations", "body", "owner", "kind", "mime_type"})
        if unknown:
            raise PolicyInvalid(f"{at}: unknown field {unknown[0]!r}")
        record_id = _id(data.get("id"), prefix, at)
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(isinstance(k, str) for k in annotations):
            raise PolicyInvalid(f"{at}: annotations must map names to values")
        annotations = {k: str(v) for k, v in annotations.items()}
        if item.tag == "variable" and data.get("mime_type") is not None:
            annotations["conjur/mime_type"] = str(data["mime_type"])
        out.append(Record(Ref(item.tag, record_id), annotations))
        if item.tag == "policy" and data.get("body") is not None:
            _body(data["body"], record_id, out, f"{at}.body")
        elif data.get("body") is not None:
            raise PolicyInvalid(f"{at}: only a !policy has a body")
        return
    if item.tag in ("permit", "deny"):
        data = _mapping(item, at, {"role", "privileges", "privilege", "resource", "resources"})
        privileges = data.get("privileges", data.get("privilege"))
        privileges = [privileges] if isinstance(privileges, str) else privileges
        if not isinstance(privileges, list) or not privileges or any(p not in PRIVILEGES for p in privileges):
            raise PolicyInvalid(f"{at}: privileges must be a list of {', '.join(PRIVILEGES)}")
        out.append(
            Permit(
                _ref(data.get("role"), prefix, f"{at}.role", ROLE_KINDS),
                tuple(privileges),
                _refs(data.get("resource", data.get("resources")), prefix, f"{at}.resource", ("variable",)),
                deny=item.tag == "deny",
            )
        )
        return
    if item.tag in ("grant", "revoke"):
        data = _mapping(item, at, {"role", "member", "members"})
        out.append(
            Grant(
                _ref(data.get("role"), prefix, f"{at}.role", ("group", "layer")),
                _refs(data.get("member", data.get("members")), prefix, f"{at}.member", ROLE_KINDS),
                revoke=item.tag == "revoke",
            )
        )
        return
    if item.tag == "delete":
        data = _mapping(item, at, {"record"})
        out.append(Delete(_ref(data.get("record"), prefix, f"{at}.record", RECORD_KINDS)))
        return
    raise PolicyInvalid(f"{at}: the dev server does not load !{item.tag} statements")


def _mapping(item: _Tagged, at: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(item.value, dict):
        raise PolicyInvalid(f"{at}: expected a mapping")
    unknown = sorted(set(item.value) - allowed)
    if unknown:
        raise PolicyInvalid(f"{at}: unknown field {unknown[0]!r}")
    return item.value


def _id(value: Any, prefix: str, at: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if (
        not isinstance(value, str)
        or not value.strip("/")
        or any(ord(c) < 0x20 for c in value)
        or ".." in value.split("/")
    ):
        raise PolicyInvalid(f"{at}: a non-empty id is required")
    if value.startswith("/"):
        return value.strip("/")
    return f"{prefix}/{value}" if prefix else value


def _ref(value: Any, prefix: str, at: str, kinds: tuple[str, ...]) -> Ref:
    if not isinstance(value, _Tagged) or value.tag not in kinds:
        raise PolicyInvalid(f"{at}: expected one of {', '.join('!' + k for k in kinds)}")
    raw = value.value.get("id") if isinstance(value.value, dict) else value.value
    return Ref(value.tag, _id(raw, prefix, at))


def _refs(value: Any, prefix: str, at: str, kinds: tuple[str, ...]) -> tuple[Ref, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise PolicyInvalid(f"{at}: at least one is required")
    return tuple(_ref(v, prefix, f"{at}[{i}]", kinds) for i, v in enumerate(values))
