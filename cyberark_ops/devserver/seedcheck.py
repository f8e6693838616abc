"""Validation helpers shared by every API's seed loader; each error names the field's path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import SeedError


def has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def mapping(data: Any, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
    """``data`` as a mapping; with ``allowed``, a field outside it is an error."""
    if not isinstance(data, dict):
        raise SeedError(where, "must be a mapping")
    unknown = set(data) - allowed if allowed is not None else set()
    if unknown:
        raise SeedError(where, f"unknown field(s) {sorted(map(str, unknown))}; allowed: {sorted(allowed or ())}")
    return data


def items(value: Any, where: str) -> list[Any]:
    """A list field; absent (None) is an empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedError(where, "must be a list")
    return value


def each(data: dict[str, Any], key: str, where: str, add: Callable[[Any, str], None]) -> None:
    """Calls ``add(item, path)`` for every item of the list field ``key`` (absent: none)."""
    for index, item in enumerate(items(data.get(key), f"{where}.{key}")):
        add(item, f"{where}.{key}[{index}]")


def identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SeedError(where, "must be a non-empty string")
    if has_control(value):
        raise SeedError(where, "must not contain control characters")
    return value


def string(data: dict[str, Any], key: str, where: str, *, default: str | None = None, allow_empty: bool = False) -> str:
    """``data[key]`` as text (numbers are written as text); without a default it is required."""
    value = data.get(key)
    if value is None:
        if default is None:
            raise SeedError(f"{where}.{key}", "is required")
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SeedError(f"{where}.{key}", "must be a string")
    text = str(value)
    if not text and not allow_empty:
        raise SeedError(f"{where}.{key}", "must not be empty")
    if has_control(text):
        raise SeedError(f"{where}.{key}", "must not contain control characters")
    return text


def flag(data: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SeedError(f"{where}.{key}", "must be true or false")
    return value


def string_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    out = []
    for index, item in enumerate(items(data.get(key), f"{where}.{key}")):
        if isinstance(item, bool) or not isinstance(item, (str, int)) or str(item) == "":
            raise SeedError(f"{where}.{key}[{index}]", "must be a non-empty string")
        out.append(str(item))
    return out
