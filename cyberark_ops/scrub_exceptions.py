"""Exceptions leaving cyberark-ops, without any form of a secret: one function for every way in.

An exception carries text in more places than its ``args``: ``__notes__``, attributes set by its
constructor (``CalledProcessError.output``, ``stderr`` and ``cmd``; ``OSError.filename``; slots of
its own), the exceptions it was raised from or while handling (``__cause__``, ``__context__``) and
those of a group. A formatted traceback, a failure callback's ``%r`` or an error tracker shows them
all. Replacing the exception by a scrubbed copy loses its type or its frames, and raising the copy
from the handler keeps the original as the copy's ``__context__``; so :func:`scrub_exception`
scrubs the exception *in place*: same object, same type, same traceback.
"""

from __future__ import annotations

import contextlib
import functools
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

_CORE = frozenset(vars(BaseException)) | {"__dict__", "__weakref__", "__notes__", "args"}
"""Attributes of every exception that are not its own data (chains and notes are handled apart)."""
_UNSET = object()
_STR = "_cyberark_scrubbed_str"
_REPR = "_cyberark_scrubbed_repr"


_REPLACEMENT = "***"
"""``REPLACEMENT``; the engine is imported when an exception is scrubbed, not when a DAG file
imports the hook."""


def _clean(value: Any, secrets: Any) -> Any:
    # The engine itself, not cyberark_ops.scrub: that module re-exports scrub_exception from here.
    from cyberark_ops.redaction.registry import ScrubError, scrub_with

    try:
        return scrub_with(value, secrets)
    except ScrubError:  # cannot be rebuilt: fail closed
        return _REPLACEMENT


def _leaks(text: str, secrets: Any) -> bool:
    return bool(_clean(text, secrets) != text)


def _own_descriptors(error: BaseException) -> Iterator[str]:
    """Data descriptors of the exception's classes beyond BaseException's: ``OSError.filename``,
    ``SyntaxError.text``, ``UnicodeError.object``, ``__slots__`` members..."""
    seen: set[str] = set()
    for klass in type(error).__mro__:
        if klass is BaseException or klass is object:
            continue
        for name, attribute in vars(klass).items():
            if name in _CORE or name in seen or not hasattr(attribute, "__set__"):
                continue
            if isinstance(attribute, property):  # computed from other data, scrubbed there
                continue
            seen.add(name)
            yield name


def _set_if_writable(error: BaseException, name: str, value: Any) -> None:
    with contextlib.suppress(Exception):  # read-only: the final check decides
        setattr(error, name, value)


def _scrub_attribute(value: Any, secrets: Any, chained: list[BaseException], put_back: Callable[[Any], None]) -> None:
    """An exception's attribute: another exception is chained (scrubbed in its turn), any other
    value cleaned and put back only when something was scrubbed from it."""
    if isinstance(value, BaseException):
        chained.append(value)
        return
    clean = _clean(value, secrets)
    if clean is not value:
        put_back(clean)


def _scrub_one(error: BaseException, secrets: Any) -> list[BaseException]:
    """Scrubs ``error`` itself; returns the exceptions it leads to (chain, group, attributes)."""
    chained: list[BaseException] = []
    args = error.args
    clean_args = _clean(args, secrets)
    if clean_args is not args:
        error.args = tuple(clean_args) if isinstance(clean_args, tuple) else (_REPLACEMENT,)
    notes = getattr(error, "__notes__", None)
    if isinstance(notes, list):
        clean_notes = _clean(notes, secrets)
        if clean_notes is not notes:
            # __notes__ is a plain attribute (Python 3.11+ adds it with add_note)
            error.__dict__["__notes__"] = list(clean_notes) if isinstance(clean_notes, list) else [_REPLACEMENT]
    own = getattr(error, "__dict__", None)
    if isinstance(own, dict):
        for name, value in list(own.items()):
            if name != "__notes__":
                _scrub_attribute(value, secrets, chained, functools.partial(own.__setitem__, name))
    for name in _own_descriptors(error):
        value = _UNSET
        with contextlib.suppress(Exception):  # an unset slot, a descriptor that refuses: nothing to scrub
            value = getattr(error, name)
        if value is not _UNSET:
            _scrub_attribute(value, secrets, chained, functools.partial(_set_if_writable, error, name))
    if error.__suppress_context__ and error.__context__ is not None:
        # Raised "from None": hidden from tracebacks on purpose, and may hold what was never
        # registered (a JSONDecodeError's .doc is the whole document). Dropped, not scrubbed.
        error.__context__ = None
    chained.extend(e for e in (error.__cause__, error.__context__) if e is not None)
    group = getattr(error, "exceptions", None)
    if isinstance(group, tuple):
        chained.extend(e for e in group if isinstance(e, BaseException))
    return chained


_SCRUBBED_CLASSES: dict[type, type] = {}


def _scrubbed_class(klass: type[BaseException]) -> type[BaseException]:
    """A subclass showing the text scrubbed at the time, for a class whose ``__str__`` or
    ``__repr__`` draws on data out of reach; same name and module, so tracebacks read the same."""
    if klass not in _SCRUBBED_CLASSES:

        def __str__(self: BaseException) -> str:
            return str(self.__dict__.get(_STR, _REPLACEMENT))

        def __repr__(self: BaseException) -> str:
            return str(self.__dict__.get(_REPR, _REPLACEMENT))

        namespace = {"__str__": __str__, "__repr__": __repr__, "__module__": klass.__module__}
        sub = type(klass.__name__, (klass,), namespace)
        sub.__qualname__ = klass.__qualname__
        _SCRUBBED_CLASSES[klass] = sub
    return _SCRUBBED_CLASSES[klass]


def _safe_text(render: Callable[[BaseException], str], error: BaseException) -> str:
    try:
        return render(error)
    except Exception:  # noqa: BLE001 - a __str__ that fails: nothing shown
        return f"<{type(error).__name__}>"


def _fix_rendering(error: BaseException, secrets: Any) -> bool:
    """Whether the exception's own text is clean now, switching its class for one that shows
    scrubbed text when its ``__str__`` / ``__repr__`` still shows a form."""
    text, shown = _safe_text(str, error), _safe_text(repr, error)
    if not _leaks(text, secrets) and not _leaks(shown, secrets):
        return True
    try:
        error.__dict__[_STR] = _clean(text, secrets)
        error.__dict__[_REPR] = _clean(shown, secrets)
        error.__class__ = _scrubbed_class(type(error))
    except (TypeError, AttributeError):  # a builtin class (its text comes from args, scrubbed) or no __dict__
        return False
    return True


def _each_once(first: BaseException, visit: Callable[[BaseException], list[BaseException]]) -> None:
    """Calls ``visit`` on ``first`` and on every exception it returns, each once (chains can loop)."""
    pending, seen = [first], set()
    while pending:
        current = pending.pop()
        if id(current) not in seen:
            seen.add(id(current))
            pending.extend(visit(current))


def scrub_exception(error: BaseException, secrets: Any = None) -> BaseException:
    """``error`` with every form of every secret replaced by ``***`` in its args, notes and
    attributes, and in every exception of its ``__cause__`` / ``__context__`` chain and group.

    In place: the same object is returned, its type and traceback (frames) untouched, so
    ``raise`` re-raises it as it was. A class whose ``__str__`` draws on data out of reach is
    switched for a subclass of the same name that shows the scrubbed text. Only when even that
    is impossible is a ``RuntimeError`` returned, naming the type, with the scrubbed message and
    the same traceback (raise it ``from None``). ``secrets`` as in :func:`scrub.scrub`.
    """
    _each_once(error, lambda current: _scrub_one(current, secrets))
    unfixed: list[BaseException] = []

    def fix_rendering(current: BaseException) -> list[BaseException]:
        if not _fix_rendering(current, secrets):
            unfixed.append(current)
        return [e for e in (current.__cause__, current.__context__) if e is not None]

    _each_once(error, fix_rendering)
    clean = not unfixed
    formatted = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if clean and not _leaks(formatted, secrets):
        return error
    replacement = RuntimeError(f"{type(error).__name__}: {_clean(_safe_text(str, error), secrets)}")
    replacement.__suppress_context__ = True
    return replacement.with_traceback(error.__traceback__)


@contextmanager
def scrubbed_exceptions(secrets: Any = None) -> Iterator[None]:
    """``with scrubbed_exceptions(): ...``: what leaves the block is scrubbed in place (see :func:`scrub_exception`)."""
    try:
        yield
    except BaseException as error:
        clean = scrub_exception(error, secrets)
        if clean is error:
            raise
        raise clean from None


def scrubs_exceptions(fn: F) -> F:
    """Decorates a function so that what it raises is scrubbed in place (see :func:`scrub_exception`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with scrubbed_exceptions():
            return fn(*args, **kwargs)

    return cast(F, wrapper)


__all__ = ["scrub_exception", "scrubbed_exceptions", "scrubs_exceptions"]
