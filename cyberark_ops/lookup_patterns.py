"""Lookup patterns that match in linear time, whatever id Airflow asks for.

Python's ``re`` backtracks: ``^([a-z0-9]+_?)+$`` took 4.9 s on a 27-character id and doubled with
each further character, and every process of Airflow asks the backend for every id it meets. So a
pattern runs on RE2 (``google-re2``, the ``re2`` extra) where it is installed, which matches in
time linear in the id and refuses what it cannot run that way (back-references, lookaround).
Without RE2 the pattern runs on ``re`` only if it has none of the constructs that backtrack
exponentially: a variable repetition, or alternatives, or a back-reference, inside a repetition.
Either way the id is at most ``MAX_ID_LENGTH`` characters before a pattern sees it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, Protocol

from .settings import backend_error

MAX_PATTERN_CHARS = 4096

# The parser behind re.compile: re._parser from 3.11 on, sre_parse before (deprecated there).
try:
    _parser: Any = importlib.import_module("re._parser")
    _constants: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - Python 3.10
    _parser = importlib.import_module("sre_parse")
    _constants = importlib.import_module("sre_constants")

_REPEATS = {_constants.MAX_REPEAT, _constants.MIN_REPEAT, getattr(_constants, "POSSESSIVE_REPEAT", None)} - {None}
_BACKREFS = {
    _constants.GROUPREF,
    _constants.GROUPREF_EXISTS,
    _constants.GROUPREF_IGNORE,
    *(
        getattr(_constants, name)
        for name in ("GROUPREF_LOC_IGNORE", "GROUPREF_UNI_IGNORE")
        if hasattr(_constants, name)
    ),
}


class Matcher(Protocol):
    def match(self, text: str) -> object | None: ...


def _re2() -> Any | None:
    try:
        return importlib.import_module("re2")
    except ImportError:
        return None


def backtracking_construct(pattern: str) -> str | None:
    """What in ``pattern`` can make ``re`` backtrack exponentially, or None.

    Conservative: a repetition whose body can match in more than one way per character (another
    variable repetition, alternatives of more than one character, a back-reference) is refused
    even where it happens not to be ambiguous; ``[ab]+``, ``(\\d{3})+`` and ``a*b*`` are accepted.
    """
    return _walk(_parser.parse(pattern), inside=False)


def _walk(node: Any, *, inside: bool) -> str | None:
    for op, av in node.data:
        if op in _REPEATS:
            low, high, body = av
            if inside and low != high:
                return "a repetition inside a repetition"
            found = _walk(body, inside=inside or high > 1)
        elif op is _constants.BRANCH:
            if inside:
                return "alternatives inside a repetition"
            found = _first(_walk(branch, inside=inside) for branch in av[1])
        elif op in _BACKREFS and inside:
            return "a back-reference inside a repetition"
        else:
            found = _first(_walk(child, inside=inside) for child in _children(av))
        if found is not None:
            return found
    return None


def _children(value: Any) -> list[Any]:
    """The sub-patterns held in an operand (nested in tuples and lists)."""
    if isinstance(value, _parser.SubPattern):
        return [value]
    if isinstance(value, (tuple, list)):
        return [child for item in value for child in _children(item)]
    return []


def _first(found: Any) -> str | None:
    return next((problem for problem in found if problem is not None), None)


def lookup_pattern(kwargs: Mapping[str, Any], name: str) -> Matcher | None:
    """The compiled ``kwargs[name]``, or None when unset; ``ConfigurationError`` naming ``name`` if
    it is not a regular expression or could not be matched in linear time."""
    value = kwargs.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise backend_error(name, "must be a regular expression string")
    if len(value) > MAX_PATTERN_CHARS:
        raise backend_error(name, f"is longer than {MAX_PATTERN_CHARS} characters")
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise backend_error(name, f"is not a valid regular expression ({exc.msg} at position {exc.pos})") from None
    except (RecursionError, OverflowError, ValueError, MemoryError) as exc:
        raise backend_error(name, f"is not a usable regular expression ({type(exc).__name__})") from None
    engine = _re2()
    if engine is not None:
        options = engine.Options()
        options.log_errors = False
        try:
            linear: Matcher = engine.compile(value, options)
        except Exception:  # noqa: BLE001 - re2.error, and whatever the binding raises on odd input
            raise backend_error(
                name,
                "uses a construct RE2 does not support, since it cannot be matched in linear time (a "
                "back-reference, lookaround, \\Z); rewrite the pattern without it",
            ) from None
        return linear
    try:
        problem = backtracking_construct(value)
    except (RecursionError, re.error, OverflowError, ValueError):
        problem = "nesting too deep to check"
    if problem is not None:
        raise backend_error(
            name,
            f"has {problem}, which can take Python's re exponential time on a long id; rewrite it "
            "(e.g. [a-z0-9_]+ for ([a-z0-9]+_?)+) or install cyberark-ops[re2] to match with RE2",
        )
    return compiled


__all__ = ["MAX_PATTERN_CHARS", "Matcher", "backtracking_construct", "lookup_pattern"]
