"""Scrubbing: every form of every secret a task fetched, masked in logs and removed from what it returns.

The stable face of the engine in :mod:`cyberark_ops.redaction`. :func:`leak_forms` says how a
secret shows up in practice (single escapes and their compositions up to three deep);
:func:`register` records a value in the process :class:`Registry` and hands Airflow's masker a
bounded subset of its forms (it installs nothing: the glue installs the task process's own
redaction, :func:`cyberark_ops.task_redaction.install`, explicitly); :func:`scrub` replaces every
form by ``***`` in a value of any depth; :func:`clear` drops every reference this module holds, and
leaving the outermost :func:`task_scope` drops what was registered inside scopes::

    with scrub.task_scope():
        password = fetch()
        scrub.register(password, username=login)
        return scrub.scrub(callable_result)

Limits, also in ``docs/scrubbing.md``: Airflow's masker cannot unregister; values (and forms)
shorter than ``[logging] min_length_masked_secret`` or made only of whitespace and punctuation
are never searched for; objects of other types than the ones :func:`scrub` documents pass
through unchanged.

Nothing here logs, raises or reprs a secret value.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TypeVar

from cyberark_ops.redaction.forms import forms, leak_forms, masked_forms, qualifies
from cyberark_ops.redaction.matcher import REPLACEMENT
from cyberark_ops.redaction.registry import (
    MIN_LENGTH_SETTING,
    Registry,
    ScrubError,
    SecretTooShort,
    process_registry,
    scrub_with,
)

T = TypeVar("T")

_REGISTRY = process_registry()


def registry() -> Registry:
    """The per-process (task) registry that the module-level functions use."""
    return _REGISTRY


def register(value: str, *, username: str | None = None, allow_short: bool = False, warn_short: bool = True) -> None:
    """Register ``value`` in the task registry; see :meth:`Registry.register`."""
    _REGISTRY.register(value, username=username, allow_short=allow_short, warn_short=warn_short)


def scrub(value: T, secrets: Registry | Iterable[str] | None = None) -> T:
    """``value`` with every form of every secret replaced by ``***``, in the same shape.

    ``secrets``: the task registry when None, a :class:`Registry`, or the secret values themselves
    (scrubbed without registering them with Airflow and without a minimum length; values made only
    of whitespace and punctuation are still never searched for).

    Walked at any depth, repeats shared and cycles followed: str; bytes and bytearray (UTF-8 forms,
    ``b"***"``); list, tuple, dict (keys too), set, frozenset and their subclasses where they can be
    copied (``Counter``, ``OrderedDict``, ``defaultdict``); namedtuples (same type); dataclasses and
    attrs classes (a shallow copy of the same class with the scrubbed fields set, frozen ones too);
    pydantic models (``model_copy(update=...)``, fields and extras); ``sqlite3.Row`` (a tuple when
    something was scrubbed). Objects of other types pass through unchanged. What holds no form is
    returned as is (the same object); when no form occurs at all, that is decided before any walk.
    Raises :class:`ScrubError` (naming only the type) when a value cannot be rebuilt.
    """
    return scrub_with(value, secrets)


def clear() -> None:
    """Forget every secret of the task registry; see :meth:`Registry.clear` (in a supervised task
    process the process's own output redaction keeps searching them)."""
    _REGISTRY.clear()


def scrub_exception(error: BaseException, secrets: Registry | Iterable[str] | None = None) -> BaseException:
    """``error`` scrubbed in place (args, notes, attributes, cause and context chains), type and
    frames kept; see :func:`cyberark_ops.scrub_exceptions.scrub_exception`."""
    from cyberark_ops.scrub_exceptions import scrub_exception as scrub_in_place

    return scrub_in_place(error, secrets)


def task_scope() -> AbstractContextManager[Registry]:
    """``with task_scope(): ...``: what is registered inside is dropped when the outermost scope ends.

    Task code that registers values it got some other way opens one: in a supervised task process
    it also installs the process's own output redaction (``task_redaction.install``), which a
    fetch installs by itself and ``register`` alone never does."""
    from cyberark_ops.task_redaction import install  # structlog and the XCom hooks: not on import

    install()
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
    "masked_forms",
    "qualifies",
    "register",
    "registry",
    "scrub",
    "scrub_exception",
    "task_scope",
]
