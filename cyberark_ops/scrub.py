"""Scrubbing: every form of every secret a task fetched, masked in logs and removed from what it returns.

One list of forms (:func:`leak_forms`) says how a secret shows up in practice. :func:`register`
hands every form to Airflow's masker (``mask_secret``, no ``name``) and records it in the task's
:class:`Registry`; :func:`scrub` replaces every form by ``***`` in a return value of any depth;
:func:`clear` (or leaving :func:`task_scope`) drops every reference this module holds::

    with scrub.task_scope():
        password = fetch()
        scrub.register(password, username=login)
        return scrub.scrub(callable_result)

Limits, also in ``docs/scrubbing.md``:

* Airflow's masker cannot unregister: the patterns stay in it for the rest of the process, which
  ends with the task. :func:`clear` only forgets what this module holds.
* Airflow never masks values shorter than ``[logging] min_length_masked_secret``; :func:`register`
  refuses them unless ``allow_short=True`` (then they are scrubbed from return values only).
* Objects of other types than the ones :func:`scrub` documents pass through unchanged.

Nothing here logs, raises or reprs a secret value.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import logging
import re
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pickle import Pickler
from typing import Any, AnyStr, NoReturn, TypeVar
from urllib.parse import quote, quote_plus

from pydantic import BaseModel

from cyberark_ops.client.errors import ConfigurationError, CyberArkError

if sys.version_info >= (3, 11):
    from re import _compiler as _sre
else:  # pragma: no cover - Python 3.10
    import sre_compile as _sre

log = logging.getLogger(__name__)

T = TypeVar("T")

REPLACEMENT = "***"
MIN_LENGTH_SETTING = "[logging] min_length_masked_secret"

_CHUNK = 16
"""Rows checked at once (at C speed) before a long list or tuple is walked element by element."""

_FLAT_LIMIT = 1 << 30
"""Above this many pickled bytes the fast check gives up (and the walk, which shares repeats, runs)."""


class SecretTooShort(ConfigurationError):
    """A secret shorter than ``[logging] min_length_masked_secret``: Airflow would never mask it."""


class ScrubError(CyberArkError):
    """A value could not be rebuilt without its secrets (the message names only the type)."""


# ---------------------------------------------------------------------------------------------
# The forms


def _b64(data: bytes, *, urlsafe: bool = False) -> str:
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.decode("ascii").rstrip("=")


def leak_forms(value: str, *, username: str | None = None) -> dict[str, str]:
    """The ways ``value`` shows up in practice, by name; the one definition of the forms.

    ``raw``; URL-quoted as ``Connection.get_uri`` (``quote``, ``safe=""``), SQLAlchemy's
    ``render_as_string`` (``quote_sqlalchemy``, ``safe=" +"``) and form bodies (``quote_plus``);
    JSON-escaped (``json``, and ``json_unicode`` with ``ensure_ascii=False``); ``repr``-escaped;
    unpadded ``base64`` and ``base64url`` (a padded encoding contains them); and with a
    ``username``, ``basic``: the unpadded base64 of ``username:value`` (HTTP Basic); and for a
    value of several lines, each line that is not blank (``line 1``, ``line 2``, ...).

    Every key is always present (except ``basic`` without a username), so several may hold the same
    text; :func:`forms` is the deduplicated list. Raises ``UnicodeEncodeError`` for a value that is
    not valid UTF-8 text (lone surrogates).
    """
    data = value.encode("utf-8")
    found = {
        "raw": value,
        "quote": quote(value, safe=""),
        "quote_sqlalchemy": quote(value, safe=" +"),
        "quote_plus": quote_plus(value),
        "json": json.dumps(value)[1:-1],
        "json_unicode": json.dumps(value, ensure_ascii=False)[1:-1],
        "repr": repr(value)[1:-1],
        "base64": _b64(data),
        "base64url": _b64(data, urlsafe=True),
    }
    if username:
        found["basic"] = _b64(username.encode("utf-8") + b":" + data)
    lines = value.splitlines()
    if len(lines) > 1:
        # Line-oriented channels (a task's stdout as the supervisor reads it, console renderers)
        # carry a multi-line value one line at a time, where the whole value never matches.
        found.update({f"line {number}": line for number, line in enumerate(lines, 1) if line.strip()})
    return found


def forms(value: str, *, username: str | None = None) -> tuple[str, ...]:
    """The distinct forms of :func:`leak_forms`, raw first: what :func:`register` masks and scrubs."""
    return tuple(dict.fromkeys(leak_forms(value, username=username).values()))


# ---------------------------------------------------------------------------------------------
# The fast check: "no form occurs anywhere in this value", at C speed


def _fields(obj: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(obj))


_MISSING = object()


def _is_dataclass_instance(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


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
    if isinstance(obj, BaseModel):
        return tuple(_model_parts(obj).items())
    return ()


class _Found(Exception):
    """Raised by the sink: a form occurs."""


class _TooLarge(Exception):
    """Raised by the sink: the flat form grew past ``_FLAT_LIMIT`` (repeats of shared objects, in fast mode)."""


class _Sink:
    """The pickler's file: scans each frame as it is written (with the overlap a form needs), keeps nothing."""

    __slots__ = ("keep", "needles", "size", "tail")

    def __init__(self, needles: tuple[bytes, ...]) -> None:
        self.needles = needles
        self.keep = max(map(len, needles)) - 1
        self.tail = b""
        self.size = 0

    def write(self, data: Any) -> int:
        self.size += len(data)
        if self.size > _FLAT_LIMIT:
            raise _TooLarge
        window = self.tail + data
        for needle in self.needles:
            if needle in window:
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

    def __init__(self, needles: tuple[bytes, ...], *, fast: bool = True) -> None:
        super().__init__(_Sink(needles), protocol=5)
        self.fast = fast

    def reducer_override(self, obj: Any) -> Any:
        return (tuple, (_parts(obj),))


# ---------------------------------------------------------------------------------------------
# The matcher


def _minimal(needles: Iterable[AnyStr]) -> tuple[AnyStr, ...]:
    """Drop a needle that contains another: wherever it occurs, the shorter one does too."""
    kept: list[AnyStr] = []
    for needle in sorted(set(needles), key=len):
        for short in kept:
            if short in needle:
                break
        else:
            kept.append(needle)
    return tuple(kept)


def _alternation(forms: Iterable[AnyStr], bar: AnyStr) -> re.Pattern[AnyStr]:
    """One pattern matching any of ``forms`` (in the order given), compiled outside ``re``'s cache.

    ``re.compile`` would keep the pattern text, which holds every form, in the ``re`` module's
    cache for the rest of the process; emptying that cache (``re.purge()``) would make every
    library recompile its own patterns after each task. This compiles exactly as ``re.compile``
    does, without caching: the pattern lives only as long as the matcher that holds it.
    """
    return _sre.compile(bar.join(map(re.escape, forms)), 0)


class _Matcher:
    """ONE pattern for all forms of all secrets (longest first), for str and for bytes.

    Each is compiled when first needed: a value where no form occurs (the common case) is decided
    by substring search on the needles, and never pays for compiling them.
    """

    __slots__ = ("_data", "_text", "_words", "encoded", "needles", "ordered")

    def __init__(self, all_forms: Iterable[str]) -> None:
        self.ordered = sorted(set(all_forms), key=lambda form: (-len(form), form))
        self.encoded = [form.encode("utf-8") for form in self.ordered]
        self.needles = _minimal(self.encoded)
        self._words: tuple[str, ...] | None = None
        self._text: re.Pattern[str] | None = None
        self._data: re.Pattern[bytes] | None = None

    @property
    def words(self) -> tuple[str, ...]:
        """The needles as text, for a str value (searched without encoding it)."""
        words = self._words
        if words is None:
            words = self._words = _minimal(self.ordered)
        return words

    @property
    def text(self) -> re.Pattern[str]:
        text = self._text
        if text is None:
            text = self._text = _alternation(self.ordered, "|")
        return text

    @property
    def data(self) -> re.Pattern[bytes]:
        data = self._data
        if data is None:
            data = self._data = _alternation(self.encoded, b"|")
        return data

    def absent(self, value: Any) -> bool:
        """True only when no form can occur in ``value``: checked on its flat bytes, before any walk."""
        for fast in (True, False):  # fast mode has no memo: it stops at cycles, which the memo handles
            try:
                _Flattener(self.needles, fast=fast).dump(value)
            except _Found:
                return False
            except Exception:  # noqa: BLE001, S112 - cycles, depth, oddities: try with the memo, then walk
                continue
            return True
        return False


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

    def __init__(self, matcher: _Matcher) -> None:
        self.matcher = matcher
        self.memo: dict[int, Any] = {}
        self.flattener = _Flattener(matcher.needles)

    def visit(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str:
            new, count = self.matcher.text.subn(REPLACEMENT, obj)
            return new if count else obj
        if kind in _ATOMIC:
            return obj
        if kind is bytes:
            data, count = self.matcher.data.subn(REPLACEMENT.encode(), obj)
            return data if count else obj
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
        subn = self.matcher.text.subn
        visit = self.visit
        search = self.matcher.text.search
        for item in values:
            kind = type(item)
            if kind is str:
                new, count = subn(REPLACEMENT, item)
                if count:
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
                    if search(row) is None:
                        append(item)
                        continue
            new = visit(item)
            changed = changed or new is not item
            append(new)
        return out, changed

    def clean(self, chunk: Any) -> bool:
        """:meth:`_Matcher.absent` for a chunk, reusing one pickler while nothing is found."""
        try:
            self.flattener.dump(chunk)
        except Exception:  # noqa: BLE001 - found, cycles, depth, oddities: walk the chunk, with a fresh pickler
            self.flattener = _Flattener(self.matcher.needles)
            return False
        return True

    def dispatch(self, obj: Any) -> Any:
        if type(obj) is tuple:
            out, changed = self.items(obj)
            return tuple(out) if changed else obj
        if isinstance(obj, str):
            new, count = self.matcher.text.subn(REPLACEMENT, obj)
            return new if count else obj
        if isinstance(obj, (bytes, bytearray)):
            data, count = self.matcher.data.subn(REPLACEMENT.encode(), obj)
            if not count:
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
            new.update(pairs)
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


# ---------------------------------------------------------------------------------------------
# The registry


class Registry:
    """The secrets of one task: their forms, the matcher built from them, and what Airflow was given.

    ``mask=False`` makes a registry that only scrubs (nothing is handed to Airflow's masker).
    The repr names counts only; pickling and copying are refused.
    """

    def __init__(self, *, mask: bool = True) -> None:
        self._mask = mask
        self._lock = threading.RLock()
        self._secrets: set[tuple[str, str | None]] = set()
        self._forms: set[str] = set()
        self._masked: set[str] = set()
        self._matcher: _Matcher | None = None
        self._min_length: int | None = None
        self._scopes = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self._secrets)} secrets, {len(self._forms)} forms>"

    def __len__(self) -> int:
        return len(self._secrets)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds secrets and cannot be pickled or copied")

    def register(
        self, value: str, *, username: str | None = None, allow_short: bool = False, warn_short: bool = True
    ) -> None:
        """Mask every form of ``value`` with Airflow's masker and scrub them from now on.

        Raises :class:`SecretTooShort` for a value shorter than ``[logging] min_length_masked_secret``
        unless ``allow_short`` (then it is scrubbed but Airflow will not mask it in logs; a warning
        without the value says so), and ``ConfigurationError`` for an empty or non-UTF-8 value.
        Registering the same value (and username) again does nothing. ``warn_short=False`` leaves
        the warning to a caller that can name where the value came from.
        """
        if not isinstance(value, str):
            raise TypeError(f"a secret to register must be str, not {type(value).__name__}")
        # Imported here so that leak_forms and scrub(..., secrets=[...]) do not import Airflow.
        from cyberark_ops import task_redaction
        from cyberark_ops._compat import mask_secret

        username = username or None
        key = (value, username)
        with self._lock:
            if key in self._secrets:
                return
            if not value:
                raise ConfigurationError("refusing to register an empty secret", field="secret")
            minimum = self.min_length()
            short = len(value) < minimum
            if short and not allow_short:
                raise SecretTooShort(
                    f"refusing to register a secret of {len(value)} characters: Airflow masks only values of at "
                    f"least {minimum} characters ({MIN_LENGTH_SETTING}), so it would show in task logs; lower "
                    f"that setting, or pass allow_short=True to scrub it from return values only",
                    field=MIN_LENGTH_SETTING,
                )
            try:
                found = forms(value, username=username)
                invalid = False
            except UnicodeEncodeError:
                invalid = True
            if invalid:
                raise ConfigurationError("refusing to register a secret that is not valid UTF-8 text", field="secret")
            if self._mask:
                new: list[Any] = [form for form in found if len(form) >= minimum and form not in self._masked]
                if new:
                    mask_secret(new)
                    self._masked.update(new)
                # LocalExecutor copies task output to the scheduler's console unmasked: redact here too.
                task_redaction.keep(value, username=username)
            if short and self._mask and warn_short:
                log.warning(
                    "A secret of %d characters is scrubbed from return values, but Airflow will not mask it in "
                    "logs: it masks only values of at least %d characters (%s)",
                    len(value),
                    minimum,
                    MIN_LENGTH_SETTING,
                )
            self._secrets.add(key)
            before = len(self._forms)
            self._forms.update(found)
            if len(self._forms) != before:
                self._matcher = None

    def min_length(self) -> int:
        """Airflow's ``[logging] min_length_masked_secret``, read once until :meth:`clear` (a
        config lookup costs more than registering a value; Airflow reads it once per process)."""
        minimum = self._min_length
        if minimum is None:
            from cyberark_ops._compat import min_masked_length

            minimum = self._min_length = min_masked_length()
        return minimum

    def _current(self) -> _Matcher | None:
        with self._lock:
            if self._matcher is None and self._forms:
                self._matcher = _Matcher(self._forms)
            return self._matcher

    def scrub(self, value: T) -> T:
        """``value`` with every form of every registered secret replaced by ``***``; see :func:`scrub`."""
        matcher = self._current()
        if matcher is None:
            return value
        kind = type(value)
        if kind is str:
            if not any(word in value for word in matcher.words):  # type: ignore[operator]
                return value
            text, count = matcher.text.subn(REPLACEMENT, value)  # type: ignore[call-overload]
            return text if count else value
        if kind in _ATOMIC or matcher.absent(value):
            return value
        walk = _Walk(matcher)
        failed: str | None = None
        try:
            result = walk.visit(value)
        except RecursionError:
            failed = "is nested deeper than Python's recursion limit"
        except Exception as error:  # noqa: BLE001 - the error could carry the value: replaced below
            failed = f"could not be rebuilt ({type(error).__name__})"
        finally:
            walk.memo.clear()
        if failed is not None:
            raise ScrubError(f"a {kind.__name__} value {failed}; refusing to return it unscrubbed")
        return result  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Forget every secret, form and compiled pattern (compiled outside ``re``'s cache, so
        dropping the matcher drops them).

        Airflow's masker keeps the patterns it was given for the rest of the process.
        """
        with self._lock:
            self._secrets.clear()
            self._forms.clear()
            self._masked.clear()
            self._matcher = None
            self._min_length = None

    @contextmanager
    def task_scope(self) -> Iterator[Registry]:
        """Clear the registry when the outermost scope ends, whether the task succeeded or failed."""
        with self._lock:
            self._scopes += 1
        try:
            yield self
        finally:
            with self._lock:
                self._scopes -= 1
                outermost = self._scopes == 0
            if outermost:
                self.clear()


_REGISTRY = Registry()


def registry() -> Registry:
    """The per-process (task) registry that the module-level functions use."""
    return _REGISTRY


def register(value: str, *, username: str | None = None, allow_short: bool = False, warn_short: bool = True) -> None:
    """Register ``value`` in the task registry; see :meth:`Registry.register`."""
    _REGISTRY.register(value, username=username, allow_short=allow_short, warn_short=warn_short)


def scrub(value: T, secrets: Registry | Iterable[str] | None = None) -> T:
    """``value`` with every form of every secret replaced by ``***``, in the same shape.

    ``secrets``: the task registry when None, a :class:`Registry`, or the secret values themselves
    (scrubbed without registering them with Airflow and without a minimum length).

    Walked at any depth, repeats shared and cycles followed: str; bytes and bytearray (UTF-8 forms,
    ``b"***"``); list, tuple, dict (keys too), set, frozenset and their subclasses where they can be
    copied; namedtuples (same type); dataclasses (a shallow copy of the same class with the scrubbed
    fields set, frozen ones too); pydantic models (``model_copy(update=...)``, fields and extras);
    ``sqlite3.Row`` (a tuple when something was scrubbed). DB-API rows of other drivers are tuples,
    dicts or namedtuples. Objects of other types pass through unchanged. What holds no form is
    returned as is (the same object); when no form occurs at all, that is decided before any walk.
    Raises :class:`ScrubError` (naming only the type) when a value cannot be rebuilt.
    """
    if secrets is None:
        return _REGISTRY.scrub(value)
    if isinstance(secrets, Registry):
        return secrets.scrub(value)
    once = Registry(mask=False)
    try:
        for secret in [secrets] if isinstance(secrets, str) else secrets:
            if secret:
                once.register(secret, allow_short=True)
        return once.scrub(value)
    finally:
        once.clear()


def clear() -> None:
    """Forget every secret of the task registry; see :meth:`Registry.clear`."""
    _REGISTRY.clear()


def scrub_exception(error: BaseException, secrets: Registry | Iterable[str] | None = None) -> BaseException:
    """``error`` scrubbed in place (args, notes, attributes, cause and context chains), type and
    frames kept; see :func:`cyberark_ops.scrub_exceptions.scrub_exception`."""
    from cyberark_ops.scrub_exceptions import scrub_exception as scrub_in_place

    return scrub_in_place(error, secrets)


def task_scope() -> AbstractContextManager[Registry]:
    """``with task_scope(): ...`` clears the task registry when the outermost scope ends."""
    return _REGISTRY.task_scope()


__all__ = [
    "MIN_LENGTH_SETTING",
    "REPLACEMENT",
    "Registry",
    "ScrubError",
    "SecretTooShort",
    "clear",
    "forms",
    "leak_forms",
    "register",
    "registry",
    "scrub",
    "scrub_exception",
    "task_scope",
]
