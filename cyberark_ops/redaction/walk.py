"""Walking a value of any depth: the quick "no form occurs" check, and the rebuild of what holds one.

Nothing here logs, raises or reprs a secret value.
"""

from __future__ import annotations

import copy
import dataclasses
import sqlite3
from collections.abc import Callable
from pickle import Pickler
from typing import Any

from pydantic import BaseModel

from cyberark_ops.redaction.matcher import Matcher

_CHUNK = 16
"""Rows checked at once (at C speed) before a long list or tuple is walked element by element."""

_FLAT_LIMIT = 1 << 30
"""Above this many pickled bytes the fast check gives up (and the walk, which shares repeats, runs)."""


def _fields(obj: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(obj))


_MISSING = object()


def _is_dataclass_instance(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _attrs_names(obj: Any) -> tuple[str, ...] | None:
    """The fields of an attrs instance (read from the class: attrs need not be importable)."""
    fields = getattr(type(obj), "__attrs_attrs__", None)
    if fields is None or isinstance(obj, type):
        return None
    return tuple(field.name for field in fields)


def _model_parts(obj: BaseModel) -> dict[str, Any]:
    parts = {name: obj.__dict__.get(name, _MISSING) for name in type(obj).model_fields}
    for name, item in (obj.__pydantic_extra__ or {}).items():
        parts.setdefault(name, item)
    return parts


def _parts(obj: Any) -> tuple[Any, ...]:
    """What the walk looks at inside a non-builtin object; nothing for the types it leaves alone."""
    if isinstance(obj, str):
        return (str.__str__(obj),)
    if isinstance(obj, (bytes, bytearray)):
        return (bytes(memoryview(obj)),)
    if isinstance(obj, dict):
        return tuple(obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, sqlite3.Row)):
        return tuple(obj)
    if _is_dataclass_instance(obj):
        return tuple(getattr(obj, name, None) for name in _fields(obj))
    names = _attrs_names(obj)
    if names is not None:
        return tuple(getattr(obj, name, None) for name in names)
    if isinstance(obj, BaseModel):
        return tuple(_model_parts(obj).items())
    return ()


class _Found(Exception):
    """Raised by the sink: a form occurs."""


class _TooLarge(Exception):
    """Raised by the sink: the flat form grew past ``_FLAT_LIMIT`` (repeats of shared objects, in fast mode)."""


class _Sink:
    """The pickler's file: scans each frame as it is written (with the overlap a form needs), keeps nothing."""

    __slots__ = ("keep", "matcher", "size", "tail")

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.keep = matcher.keep
        self.tail = b""
        self.size = 0

    def write(self, data: Any) -> int:
        self.size += len(data)
        if self.size > _FLAT_LIMIT:
            raise _TooLarge
        window = self.tail + data
        if self.matcher.occurs(window):
            raise _Found
        self.tail = window[-self.keep :] if self.keep else b""
        return len(data)


class _Flattener(Pickler):
    """Pickle in fast mode (no memo) into a scanning :class:`_Sink`: every str is written as its UTF-8 bytes.

    So a form occurs in a str, a bytes or a dict key of the value only if its UTF-8 bytes occur in
    the output. ``reducer_override`` (not called for exact builtins) exposes exactly what the walk
    would scrub in other objects, and nothing of unknown ones. The first occurrence stops the dump.
    Cycles stop fast mode (the caller retries with the memo); anything else that raises, such as a
    value deeper than the recursion limit, counts as "maybe present" and the walk decides.
    """

    def __init__(self, matcher: Matcher, *, fast: bool = True) -> None:
        super().__init__(_Sink(matcher), protocol=5)
        self.fast = fast

    def reducer_override(self, obj: Any) -> Any:
        return (tuple, (_parts(obj),))


# ---------------------------------------------------------------------------------------------
# The walk


class _Pending:
    """A mutable container or object being walked; ``clone`` is made when a cycle reaches it."""

    __slots__ = ("clone", "make")

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.clone: Any = None

    def get(self) -> Any:
        if self.clone is None:
            self.clone = self.make()
        return self.clone


def _empty_like(obj: Any, base: type) -> Any:
    if type(obj) is base:
        return base()
    try:
        clone = copy.copy(obj)
        clone.clear()
    except Exception:  # noqa: BLE001 - a subclass that cannot be copied becomes its base type
        return base()
    return clone


_ATOMIC = frozenset({int, float, bool, complex, type(None)})


class _Walk:
    """One scrub call: rebuilds only what holds a form; shares repeats; follows cycles."""

    __slots__ = ("flattener", "matcher", "memo")

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.memo: dict[int, Any] = {}
        self.flattener = _Flattener(matcher)

    def visit(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str:
            new = self.matcher.text(obj)
            return obj if new is None else new
        if kind in _ATOMIC:
            return obj
        if kind is bytes:
            data = self.matcher.replace(obj)
            return obj if data is None else data
        key = id(obj)
        memo = self.memo
        if key in memo:
            done = memo[key]
            return done.get() if type(done) is _Pending else done
        result = self.dispatch(obj)
        memo[key] = result
        return result

    def items(self, values: Any) -> tuple[list[Any], bool]:
        """Walk a sequence; long ones are checked in chunks first, and clean chunks are kept as they are."""
        if len(values) < 2 * _CHUNK:
            return self.each(values)
        out: list[Any] = []
        changed = False
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            if self.clean(chunk):
                out.extend(chunk)
                continue
            new, hit = self.each(chunk)
            out.extend(new)
            changed = changed or hit
        return out, changed

    def each(self, values: Any) -> tuple[list[Any], bool]:
        out: list[Any] = []
        append = out.append
        changed = False
        text = self.matcher.text
        visit = self.visit
        occurs = self.matcher.occurs
        for item in values:
            kind = type(item)
            if kind is str:
                new = text(item)
                if new is not None:
                    changed = True
                    append(new)
                else:
                    append(item)
                continue
            if kind is tuple:
                # A row of str: one search over the joined row; a form occurring in an item occurs in it.
                try:
                    row = "\x00".join(item)
                except TypeError:
                    pass
                else:
                    if not occurs(row.encode("utf-8", "surrogatepass")):
                        append(item)
                        continue
            new = visit(item)
            changed = changed or new is not item
            append(new)
        return out, changed

    def clean(self, chunk: Any) -> bool:
        """:func:`absent` for a chunk, reusing one pickler while nothing is found."""
        try:
            self.flattener.dump(chunk)
        except Exception:  # noqa: BLE001 - found, cycles, depth, oddities: walk the chunk, with a fresh pickler
            self.flattener = _Flattener(self.matcher)
            return False
        return True

    def dispatch(self, obj: Any) -> Any:
        if type(obj) is tuple:
            out, changed = self.items(obj)
            return tuple(out) if changed else obj
        if isinstance(obj, str):
            new = self.matcher.text(str.__str__(obj))
            return obj if new is None else new
        if isinstance(obj, (bytes, bytearray)):
            data = self.matcher.replace(bytes(memoryview(obj)))
            if data is None:
                return obj
            return bytearray(data) if isinstance(obj, bytearray) else data
        if isinstance(obj, tuple):
            out, changed = self.items(obj)
            if not changed:
                return obj
            if type(obj) is tuple:
                return tuple(out)
            if hasattr(obj, "_fields") and hasattr(obj, "_make"):
                return obj._make(out)
            try:
                return type(obj)(out)
            except Exception:  # noqa: BLE001 - an odd tuple subclass becomes a tuple
                return tuple(out)
        if isinstance(obj, list):
            pending = self.memo[id(obj)] = _Pending(lambda: _empty_like(obj, list))
            out, changed = self.items(obj)
            if not changed and pending.clone is None:
                return obj
            new = pending.get()
            new.extend(out)
            return new
        if isinstance(obj, dict):
            pending = self.memo[id(obj)] = _Pending(lambda: _empty_like(obj, dict))
            pairs = [(self.visit(k), self.visit(v)) for k, v in obj.items()]
            if pending.clone is None and all(
                k is a and v is b for (k, v), (a, b) in zip(pairs, obj.items(), strict=True)
            ):
                return obj
            new = pending.get()
            for key, item in pairs:  # not update(): Counter.update would count the pairs
                new[key] = item
            return new
        if isinstance(obj, frozenset):
            out, changed = self.items(list(obj))
            if not changed:
                return obj
            return frozenset(out) if type(obj) is frozenset else type(obj)(out)
        if isinstance(obj, set):
            pending = self.memo[id(obj)] = _Pending(lambda: _empty_like(obj, set))
            out, changed = self.items(list(obj))
            if not changed and pending.clone is None:
                return obj
            new = pending.get()
            new.update(out)
            return new
        if isinstance(obj, sqlite3.Row):
            out, changed = self.items(tuple(obj))
            return tuple(out) if changed else obj
        names = _attrs_names(obj)
        if names is not None:
            return self.rebuild(obj, {name: getattr(obj, name, _MISSING) for name in names}, _set_dataclass)
        if _is_dataclass_instance(obj):
            return self.rebuild(obj, {name: getattr(obj, name, _MISSING) for name in _fields(obj)}, _set_dataclass)
        if isinstance(obj, BaseModel):
            return self.rebuild(obj, _model_parts(obj), _set_model)
        return obj

    def rebuild(self, obj: Any, parts: dict[str, Any], assign: Callable[[Any, dict[str, Any]], Any]) -> Any:
        pending = self.memo[id(obj)] = _Pending(lambda: copy.copy(obj))
        changes = {}
        for name, item in parts.items():
            if item is _MISSING:
                continue
            new = self.visit(item)
            if new is not item:
                changes[name] = new
        if not changes and pending.clone is None:
            return obj
        if pending.clone is None:
            return assign(obj, changes)
        clone = pending.clone
        for name, item in changes.items():
            _put(clone, name, item)
        return clone


def _put(obj: Any, name: str, value: Any) -> None:
    if isinstance(obj, BaseModel) and name not in type(obj).model_fields and obj.__pydantic_extra__ is not None:
        obj.__pydantic_extra__[name] = value
    else:
        object.__setattr__(obj, name, value)


def _set_dataclass(obj: Any, changes: dict[str, Any]) -> Any:
    """A shallow copy with the scrubbed fields set (frozen ones too); ``__post_init__`` does not run again."""
    clone = copy.copy(obj)
    for name, value in changes.items():
        object.__setattr__(clone, name, value)
    return clone


def _set_model(obj: BaseModel, changes: dict[str, Any]) -> Any:
    return obj.model_copy(update=changes)


def absent(matcher: Matcher, value: Any) -> bool:
    """True only when no form can occur in ``value``: checked on its flat bytes, before any walk."""
    for fast in (True, False):  # fast mode has no memo: it stops at cycles, which the memo handles
        try:
            _Flattener(matcher, fast=fast).dump(value)
        except _Found:
            return False
        except Exception:  # noqa: BLE001, S112 - cycles, depth, oddities: try with the memo, then walk
            continue
        return True
    return False


def walk(matcher: Matcher, value: Any) -> Any:
    """``value`` rebuilt without any form; raises what the rebuild raised (the caller hides it)."""
    run = _Walk(matcher)
    try:
        return run.visit(value)
    finally:
        run.memo.clear()


__all__ = ["absent", "walk"]
