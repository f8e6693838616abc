"""Typed references to credentials, and the parser for their string form.

References are written by DAG authors (``conjur:prod/db/password``,
``ccp:Safe=DB-Prod;Object=pg-prod``, ``pvwa:DB-Prod/pg-prod``), so they are validated here,
before anything reaches a URL: no control characters, no empty or dot segments, nothing CCP
cannot carry. A reference names a credential but is not one, so errors may quote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, Union

from .errors import ConfigurationError
from .validation import CCP_FORBIDDEN, check_text, shown

CCP_KEYS = ("Safe", "Folder", "Object", "UserName", "Address", "Database", "PolicyID", "Query", "QueryFormat")
_CCP_KEY_LOOKUP = {key.lower(): key for key in CCP_KEYS}
_VERSION_SUFFIX = re.compile(r"\?version=([0-9]+)$")


def validate_conjur_id(variable_id: object, field: str = "variable_id") -> str:
    """Refuses ids that could reach another path once encoded and decoded by a server."""
    if not isinstance(variable_id, str) or not variable_id:
        raise ConfigurationError(f"{field}: a Conjur variable id must be a non-empty string", field=field)
    check_text(variable_id, field, what="Conjur id")
    for segment in variable_id.split("/"):
        if segment == "":
            raise ConfigurationError(
                f"{field}: Conjur id {shown(variable_id)} has an empty path segment (leading, trailing or double '/')",
                field=field,
            )
        if segment in (".", ".."):
            raise ConfigurationError(
                f"{field}: Conjur id {shown(variable_id)} has a {segment!r} segment, which could address another path",
                field=field,
            )
    return variable_id


def validate_ccp_value(name: str, value: object, *, query: bool = False) -> str:
    """A CCP query value: CCP cannot carry ``+ & % ;`` (``;`` is allowed inside ``Query``)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name}: must be a non-empty string", field=name)
    check_text(value, name)
    forbidden = CCP_FORBIDDEN.findall(value.replace(";", "") if query else value)
    if forbidden:
        raise ConfigurationError(
            f"{name}: {shown(value)} contains {forbidden[0]!r}, which CCP cannot carry in a query value "
            "(rename the object, or match it with Query / QueryFormat=Regexp)",
            field=name,
        )
    if any(part in ("..", ".") for part in re.split(r"[\\/]", value)):
        raise ConfigurationError(f"{name}: {shown(value)} contains a '..' path segment", field=name)
    return value


def _ref_error(reference: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"reference {shown(reference)}: {problem}", field="reference")


@dataclass(frozen=True)
class ConjurRef:
    variable_id: str
    version: int | None = None

    def __post_init__(self) -> None:
        validate_conjur_id(self.variable_id)
        if self.version is not None and (isinstance(self.version, bool) or self.version < 1):
            raise ConfigurationError("version: Conjur versions start at 1", field="version")

    def __str__(self) -> str:
        suffix = f"?version={self.version}" if self.version is not None else ""
        return f"conjur:{self.variable_id}{suffix}"


@dataclass(frozen=True)
class CCPRef:
    """CCP search parameters, keyed by their canonical names (``Safe``, ``Object`` ...)."""

    params: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.params:
            raise ConfigurationError("reference: a CCP reference needs at least one of " + ", ".join(CCP_KEYS))
        for key, value in self.params:
            if key not in CCP_KEYS:
                raise ConfigurationError(f"{key}: not a CCP parameter (use {', '.join(CCP_KEYS)})", field=key)
            validate_ccp_value(key, value, query=key == "Query")

    @classmethod
    def of(cls, **params: str | None) -> CCPRef:
        items = []
        for name, value in params.items():
            if value is None:
                continue
            key = _CCP_KEY_LOOKUP.get(name.replace("_", "").lower())
            if key is None:
                raise ConfigurationError(f"{name}: not a CCP parameter", field=name)
            items.append((key, value))
        return cls(tuple(items))

    def get(self, key: str) -> str | None:
        return dict(self.params).get(key)

    def __str__(self) -> str:
        return "ccp:" + ";".join(f"{key}={value}" for key, value in self.params)


@dataclass(frozen=True)
class PVWARef:
    """An account by safe and name, or by its id (``25_3``)."""

    safe: str | None = None
    name: str | None = None
    account_id: str | None = None
    scheme: str = "pvwa"

    def __post_init__(self) -> None:
        if self.account_id is not None:
            if self.safe is not None or self.name is not None:
                raise ConfigurationError("reference: give either an account id or safe and name", field="reference")
            if not isinstance(self.account_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.account_id):
                raise ConfigurationError(
                    f"account_id: {shown(str(self.account_id))} is not a PVWA account id such as 25_3",
                    field="account_id",
                )
            return
        for field_name, value in (("safe", self.safe), ("name", self.name)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{field_name}: required (or give an account id)", field=field_name)
            check_text(value, field_name)

    def __str__(self) -> str:
        if self.account_id is not None:
            return f"{self.scheme}:id={self.account_id}"
        return f"{self.scheme}:{self.safe}/{self.name}"


CredentialRef: TypeAlias = Union[ConjurRef, CCPRef, PVWARef]  # noqa: UP007 - a runtime alias on 3.10

_PVWA_SCHEMES = ("pvwa", "privilege-cloud")
REF_SCHEMES = ("conjur", "ccp", *_PVWA_SCHEMES)

RefParser = Callable[[str, str], object]
"""``parser(reference, rest)``: ``rest`` is what follows ``<scheme>:``; raises ConfigurationError."""
_SCHEMES: dict[str, RefParser] = {}
"""Every scheme ``parse_ref`` knows, built-in ones (filled below) and registered ones."""


def register_scheme(scheme: str, parser: RefParser) -> None:
    """Lets an API added outside this module parse its own ``<scheme>:...`` references."""
    name = scheme.strip().lower()
    if name in REF_SCHEMES or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ConfigurationError(f"scheme: {scheme!r} is taken or not a lowercase name", field="scheme")
    _SCHEMES[name] = parser


def unregister_scheme(scheme: str) -> None:
    name = scheme.strip().lower()
    if name not in REF_SCHEMES:
        _SCHEMES.pop(name, None)


def has_scheme(reference: str) -> bool:
    """Whether ``reference`` names its API (``conjur:...``) rather than being a bare object name."""
    scheme, sep, _ = reference.partition(":")
    return bool(sep) and scheme.strip().lower() in _SCHEMES


def _known(suffix: str) -> str:
    """The schemes ``parse_ref`` knows now, registered ones included: ``conjur, ccp, pvwa or privilege-cloud``."""
    names = [f"{name}{suffix}" for name in _SCHEMES]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


def parse_ref(reference: str) -> CredentialRef:
    """Parses ``conjur:``, ``ccp:``, ``pvwa:`` and ``privilege-cloud:`` references, and those of
    every registered scheme, through the parser registered for the scheme."""
    if not isinstance(reference, str):
        raise ConfigurationError("reference: must be a string such as conjur:prod/db/password", field="reference")
    check_text(reference, "reference", what="reference")
    scheme, sep, rest = reference.partition(":")
    scheme = scheme.strip().lower()
    if not sep or not rest:
        raise _ref_error(reference, f"must start with {_known(':')} followed by a target")
    parser = _SCHEMES.get(scheme)
    if parser is None:
        raise _ref_error(reference, f"unknown scheme {scheme!r}; use {_known('')}")
    return parser(reference, rest)  # type: ignore[return-value]


def _parse_conjur(reference: str, rest: str) -> ConjurRef:
    version: int | None = None
    match = _VERSION_SUFFIX.search(rest)
    if match:
        version = int(match.group(1))
        rest = rest[: match.start()]
    elif "?" in rest and re.search(r"\?[A-Za-z_]+=", rest):
        raise _ref_error(reference, "the only option a Conjur reference takes is ?version=<n>")
    try:
        return ConjurRef(rest, version)
    except ConfigurationError as exc:
        raise _ref_error(reference, exc.message.split(": ", 1)[-1]) from None


def _parse_ccp(reference: str, rest: str) -> CCPRef:
    params: list[tuple[str, str]] = []
    remaining = rest
    while remaining:
        item, _, after = remaining.partition(";")
        name, eq, value = item.partition("=")
        key = _CCP_KEY_LOOKUP.get(name.strip().lower())
        if not eq or key is None:
            raise _ref_error(reference, f"{item!r} is not Key=Value with a key among {', '.join(CCP_KEYS)}")
        if key == "Query":
            # Query carries its own ';'-separated conditions, so it takes the rest of the reference.
            if after:
                value = f"{value};{after}".rstrip(";")
            after = ""
        if any(existing == key for existing, _ in params):
            raise _ref_error(reference, f"{key} is given twice")
        if not value:
            raise _ref_error(reference, f"{key} has an empty value")
        params.append((key, value))
        remaining = after
    try:
        return CCPRef(tuple(params))
    except ConfigurationError as exc:
        raise _ref_error(reference, exc.message) from None


def _parse_pvwa(reference: str, rest: str, scheme: str) -> PVWARef:
    if rest.lower().startswith("id="):
        try:
            return PVWARef(account_id=rest[3:], scheme=scheme)
        except ConfigurationError as exc:
            raise _ref_error(reference, exc.message) from None
    safe, slash, name = rest.partition("/")
    if not slash or not safe or not name:
        raise _ref_error(reference, "must look like pvwa:<safe>/<account name> or pvwa:id=<account id>")
    try:
        return PVWARef(safe=safe, name=name, scheme=scheme)
    except ConfigurationError as exc:
        raise _ref_error(reference, exc.message) from None


def _parse_pvwa_scheme(reference: str, rest: str) -> PVWARef:
    return _parse_pvwa(reference, rest, "pvwa")


def _parse_privilege_cloud(reference: str, rest: str) -> PVWARef:
    return _parse_pvwa(reference, rest, "privilege-cloud")


_SCHEMES.update(
    {
        "conjur": _parse_conjur,
        "ccp": _parse_ccp,
        "pvwa": _parse_pvwa_scheme,
        "privilege-cloud": _parse_privilege_cloud,
    }
)

__all__ = [
    "CCP_KEYS",
    "CCPRef",
    "ConjurRef",
    "CredentialRef",
    "PVWARef",
    "parse_ref",
    "register_scheme",
    "unregister_scheme",
    "validate_ccp_value",
    "validate_conjur_id",
]
