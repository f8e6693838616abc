"""The secrets of the process: their forms, the one matcher built from them, and the scopes that own them.

Registering installs nothing: the glue that fetches (``cyberark_ops.fetch``) installs the task
process's own redaction (``cyberark_ops.task_redaction``) explicitly, and that redaction searches
this same registry (:meth:`Registry.retain_after_scopes`), so each value's forms and matcher are
built once per process.

Nothing here logs, raises or reprs a secret value.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from cyberark_ops.client.errors import ConfigurationError, CyberArkError
from cyberark_ops.redaction.forms import forms, masked_forms, qualifies
from cyberark_ops.redaction.matcher import Matcher
from cyberark_ops.redaction.walk import absent, walk

log = logging.getLogger("cyberark_ops.scrub")

T = TypeVar("T")

MIN_LENGTH_SETTING = "[logging] min_length_masked_secret"

_ATOMIC = frozenset({int, float, bool, complex, type(None)})


class SecretTooShort(ConfigurationError):
    """A secret shorter than ``[logging] min_length_masked_secret``: Airflow would never mask it."""


class ScrubError(CyberArkError):
    """A value could not be rebuilt without its secrets (the message names only the type)."""


Key = tuple[str, "str | None"]


class Registry:
    """The secrets of one task: their forms, the matcher built from them, and what Airflow was given.

    ``mask=False`` makes a registry that only scrubs (nothing is handed to Airflow's masker).
    ``min_length`` replaces ``[logging] min_length_masked_secret`` (``scrub(value, secrets=[...])``
    passes 1: the caller named the values). The repr names counts only; pickling and copying are
    refused.
    """

    def __init__(self, *, mask: bool = True, min_length: int | None = None) -> None:
        self._mask = mask
        self._lock = threading.RLock()
        self._forms_of: dict[Key, tuple[str, ...]] = {}
        self._outside: set[Key] = set()
        """Registered while no scope was open (the secrets backend, the process): kept until clear()."""
        self._masked: set[str] = set()
        self._matcher: Matcher | None = None
        self._retain = False
        self._retained: dict[Key, tuple[str, ...]] = {}
        """Dropped by scopes (or clear) while retaining: still searched by ``scrub(..., retained=True)``."""
        self._retained_matcher: Matcher | None = None
        self._fixed_min_length = min_length
        self._min_length: int | None = min_length
        self._scopes = 0

    def __repr__(self) -> str:
        count = len({form for found in self._forms_of.values() for form in found})
        return f"<{type(self).__name__}: {len(self._forms_of)} secrets, {count} forms>"

    def __len__(self) -> int:
        return len(self._forms_of)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds secrets and cannot be pickled or copied")

    def register(
        self, value: str, *, username: str | None = None, allow_short: bool = False, warn_short: bool = True
    ) -> None:
        """Search for every qualifying form of ``value`` from now on, and hand Airflow's masker a
        bounded subset (:func:`~cyberark_ops.redaction.forms.masked_forms`).

        A value shorter than ``[logging] min_length_masked_secret`` raises :class:`SecretTooShort`
        unless ``allow_short``; then, like a value made only of whitespace and punctuation, it is
        recorded but never searched for, in logs or in data (replacing ``1`` or ``prod`` would
        corrupt values holding no secret), and a warning without the value says so (the short one
        only with ``warn_short``, left to a caller that names where the value came from).
        ``ConfigurationError`` for an empty or non-UTF-8 value. Registering the same value (and
        username) again does nothing.
        """
        if not isinstance(value, str):
            raise TypeError(f"a secret to register must be str, not {type(value).__name__}")
        username = username or None
        key = (value, username)
        with self._lock:
            if key in self._forms_of:
                if not self._scopes:
                    self._outside.add(key)
                return
            if key in self._retained:  # its forms are known: live again, nothing rebuilt
                self._forms_of[key] = self._retained.pop(key)
                if not self._scopes:
                    self._outside.add(key)
                if self._forms_of[key]:
                    self._matcher = None
                return
            if not value:
                raise ConfigurationError("refusing to register an empty secret", field="secret")
            minimum = self.min_length()
            short = len(value) < minimum
            if short and not allow_short:
                raise SecretTooShort(
                    f"refusing to register a secret of {len(value)} characters: Airflow masks only values of at "
                    f"least {minimum} characters ({MIN_LENGTH_SETTING}), so it would show in task logs; lower "
                    f"that setting, or pass allow_short=True to register it anyway (it is then never searched for)",
                    field=MIN_LENGTH_SETTING,
                )
            try:
                value.encode("utf-8")
                invalid = False
            except UnicodeEncodeError:
                invalid = True
            if invalid:
                raise ConfigurationError("refusing to register a secret that is not valid UTF-8 text", field="secret")
            searched = qualifies(value, minimum)
            found = forms(value, username=username, min_length=minimum) if searched else ()
            if searched and self._mask:
                self._hand_to_airflow(masked_forms(value, username=username, min_length=minimum))
            if short and warn_short and self._mask:
                log.warning(
                    "A secret of %d characters is neither scrubbed from data nor masked: Airflow will not mask it in "
                    "logs, and cyberark-ops searches only for values of at least %d characters (%s)",
                    len(value),
                    minimum,
                    MIN_LENGTH_SETTING,
                )
            elif not short and not searched and self._mask:
                log.warning(
                    "A secret of %d characters made only of whitespace and punctuation is neither scrubbed nor "
                    "masked: it would match ordinary data",
                    len(value),
                )
            self._forms_of[key] = found
            if not self._scopes:
                self._outside.add(key)
            if found:
                self._matcher = None
                self._retained_matcher = None

    def _hand_to_airflow(self, found: tuple[str, ...]) -> None:
        # Imported here so that leak_forms and scrub(..., secrets=[...]) do not import Airflow.
        from cyberark_ops._compat import mask_secret

        new: list[Any] = [form for form in found if form not in self._masked]
        if new:
            mask_secret(new)
            self._masked.update(new)

    def retain_after_scopes(self) -> None:
        """From now on, what a scope (or :meth:`clear`) drops stays searched by
        ``scrub(..., retained=True)`` until ``clear(retained=True)``: the task process's output
        hooks redact a value for the rest of the process (as Airflow's masker does), while return
        values are scrubbed of the live values only."""
        with self._lock:
            self._retain = True

    def min_length(self) -> int:
        """Airflow's ``[logging] min_length_masked_secret``, read once until :meth:`clear` (a
        config lookup costs more than registering a value; Airflow reads it once per process)."""
        minimum = self._min_length
        if minimum is None:
            from cyberark_ops._compat import min_masked_length

            minimum = self._min_length = min_masked_length()
        return minimum

    def matcher(self) -> Matcher | None:
        """The one matcher of every searched form (built when first needed after a change)."""
        with self._lock:
            if self._matcher is None:
                every = {form for found in self._forms_of.values() for form in found}
                if every:
                    self._matcher = Matcher(every)
            return self._matcher

    def retained_matcher(self) -> Matcher | None:
        """The matcher of every form still searched for the process's output: the live matcher
        itself while no scope has dropped anything (the usual case inside a task)."""
        with self._lock:
            if not self._retained:
                return self.matcher()
            if self._retained_matcher is None:
                every = {form for found in (*self._forms_of.values(), *self._retained.values()) for form in found}
                self._retained_matcher = Matcher(every) if every else None
            return self._retained_matcher

    def scrub(self, value: T, *, retained: bool = False) -> T:
        """``value`` with every form of every registered secret replaced by ``***``; see ``scrub.scrub``.

        ``retained``: also the values scopes dropped since :meth:`retain_after_scopes`."""
        matcher = self.retained_matcher() if retained else self.matcher()
        if matcher is None:
            return value
        kind = type(value)
        if kind is str:
            text = matcher.text(value)  # type: ignore[arg-type]
            return value if text is None else text  # type: ignore[return-value]
        if kind in _ATOMIC or absent(matcher, value):
            return value
        failed: str | None = None
        try:
            result = walk(matcher, value)
        except RecursionError:
            failed = "is nested deeper than Python's recursion limit"
        except Exception as error:  # noqa: BLE001 - the error could carry the value: replaced below
            failed = f"could not be rebuilt ({type(error).__name__})"
        if failed is not None:
            raise ScrubError(f"a {kind.__name__} value {failed}; refusing to return it unscrubbed")
        return result  # type: ignore[no-any-return]

    def clear(self, *, retained: bool = False) -> None:
        """Forget every secret, form and matcher. Airflow's masker keeps what it was given, and so
        does the task process's own redaction once :meth:`retain_after_scopes` was called (it
        keeps searching every value for the rest of the process), unless ``retained``."""
        with self._lock:
            if self._retain and not retained:
                self._keep_searching(list(self._forms_of))
            else:
                self._retained.clear()
                self._retained_matcher = None
            self._forms_of.clear()
            self._outside.clear()
            self._masked.clear()
            self._matcher = None
            self._min_length = self._fixed_min_length

    def _keep_searching(self, keys: list[Key]) -> None:
        """Move ``keys`` (about to be dropped) to what only ``scrub(..., retained=True)`` searches:
        the forms already built are kept, and the union of forms does not change, so the matcher
        built for them keeps serving the process's output."""
        if not self._retained:
            self._retained_matcher = self._matcher
        for key in keys:
            if self._forms_of[key]:  # a value never searched for has nothing to retain
                self._retained[key] = self._forms_of[key]

    def _leave(self) -> None:
        """The outermost scope ended: drop what was registered inside scopes only."""
        with self._lock:
            dropped = [key for key in self._forms_of if key not in self._outside]
            if self._retain and dropped:
                self._keep_searching(dropped)
            for key in dropped:
                del self._forms_of[key]
            if dropped:
                self._matcher = None
            if not self._forms_of and not self._retained:
                self.clear()

    @contextmanager
    def task_scope(self) -> Iterator[Registry]:
        """Scopes are counted: what is registered inside any of them is dropped when the outermost
        ends (success or failure); leaving an inner one drops nothing, and what was registered
        outside every scope (the secrets backend) stays until :meth:`clear`."""
        with self._lock:
            self._scopes += 1
        try:
            yield self
        finally:
            with self._lock:
                self._scopes -= 1
                if self._scopes == 0:
                    self._leave()


_PROCESS = Registry()


def process_registry() -> Registry:
    """The per-process (task) registry: ``cyberark_ops.scrub``'s functions, the task process's
    output redaction and exception scrubbing all use this one."""
    return _PROCESS


def scrub_with(value: T, secrets: Registry | Iterable[str] | None = None) -> T:
    """``value`` scrubbed of ``secrets``: the process registry when None, a :class:`Registry`, or
    the values themselves (scrubbed without registering them with Airflow, without a minimum
    length); see ``cyberark_ops.scrub.scrub``."""
    if secrets is None:
        return _PROCESS.scrub(value)
    if isinstance(secrets, Registry):
        return secrets.scrub(value)
    once = Registry(mask=False, min_length=1)
    try:
        for secret in [secrets] if isinstance(secrets, str) else secrets:
            if secret:
                once.register(secret)
        return once.scrub(value)
    finally:
        once.clear()


__all__ = ["MIN_LENGTH_SETTING", "Registry", "ScrubError", "SecretTooShort", "process_registry", "scrub_with"]
