"""Redaction inside the task process: log lines, prints and XComs, before they leave it.

In a supervised task Airflow leaves masking to the supervisor, which masks the task log file;
but LocalExecutor (and the Celery worker's console) also copies every line the task sends to the
scheduler's stdout, unmasked. So once cyberark-ops has handed a secret to Airflow's masker, this
module makes the task process redact its own output too, with that same masker (which keeps its
patterns for the rest of the process, as the supervisor's does):

* every rendered log line, structlog's and the stdlib's alike: the final renderer of each chain is
  wrapped, so whatever the chain produced (tracebacks, ``repr`` of objects) is redacted as text;
* ``sys.stdout`` and ``sys.stderr``, line by line, so a secret split over several ``write`` calls
  of one line is still caught;
* every XCom the task pushes, scrubbed with the task's registry (``scrub.scrub``): Airflow masks
  nothing in XCom, and a plain ``@task`` may return what the hook fetched.

Not covered, and said so in ``docs/guarantees.md``: bytes written to file descriptors 1 and 2 by C
code or by child processes, which never pass through Python's streams.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

_lock = threading.Lock()
_installed = threading.Event()
_MAX_DEPTH = 50
"""Airflow's ``redact`` stops at depth 5 by default; tracebacks and logged payloads go deeper."""
_HOLD_LIMIT = 1 << 16
"""Characters held back waiting for the end of a line before complete lines are passed on anyway."""


def _redact_function() -> Callable[..., Any]:
    from cyberark_ops._compat import first_attribute

    redact: Callable[..., Any] = first_attribute(
        "redact", "airflow.sdk.log", "airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker"
    )
    return redact


class _RedactedRenderer:
    """Wraps a chain's final renderer: redacts the event's values before rendering, where every
    form still stands as it was logged (rendering JSON-escapes a ``repr`` form into something no
    pattern matches, while its plain parts would still be caught: half a secret masked), and the
    rendered line after, for what only rendering produced (``repr`` of objects, tracebacks)."""

    def __init__(self, renderer: Callable[..., Any], redact: Callable[..., Any]) -> None:
        self.renderer = renderer
        self.redact = redact

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        rendered = self.renderer(logger, method_name, self.redact(event_dict, max_depth=_MAX_DEPTH))
        if isinstance(rendered, str):
            return self.redact(rendered)
        if isinstance(rendered, (bytes, bytearray)):
            text = bytes(rendered).decode("utf-8", "surrogateescape")
            return self.redact(text).encode("utf-8", "surrogateescape")
        return rendered


class RedactingStream:
    """A text stream that redacts what it passes on, held back until a write ends a line; ``flush``
    passes on a partial line (redacted) so interactive output is not held back."""

    def __init__(self, target: TextIO, redact: Callable[..., Any]) -> None:
        self._target = target
        self._redact = redact
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            data = self._pending + text
            # Only at the end of a line: print() writes a value and its "\n" separately, and a
            # value holding a newline of its own must reach the redactor whole.
            cut = len(data) if data.endswith("\n") else data.rfind("\n") + 1 if len(data) > _HOLD_LIMIT else 0
            self._pending = data[cut:]
            if cut:
                self._target.write(self._redact(data[:cut]))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self._target.write(self._redact(pending))
        self._target.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer, ...
        return getattr(self._target, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self._target!r}>"


def _wrap_last(processors: Any, redact: Callable[..., Any]) -> None:
    if isinstance(processors, list) and processors and not isinstance(processors[-1], _RedactedRenderer):
        processors[-1] = _RedactedRenderer(processors[-1], redact)


def _scrub_xcom() -> None:
    """Scrubs every XCom this task pushes, whatever pushes it: a plain ``@task`` that returns what
    ``CyberArkHook`` fetched, or ``ti.xcom_push``, would otherwise store the value in clear."""
    import importlib

    from cyberark_ops import scrub

    xcom = getattr(importlib.import_module("airflow.sdk.execution_time.xcom"), "XCom", None)
    if xcom is None or getattr(xcom, "_cyberark_scrubbed", False):
        return
    original = xcom.serialize_value

    def serialize_value(value: Any, *args: Any, **kwargs: Any) -> Any:
        return original(scrub.scrub(value), *args, **kwargs)

    xcom.serialize_value = staticmethod(serialize_value)
    xcom._cyberark_scrubbed = True


def supervised() -> bool:
    """True in a task process that sends its output to a supervisor (the real path)."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def install() -> bool:
    """Makes this task process redact its own output; once per process, and only when supervised
    (elsewhere Airflow's own chain masks, or nothing masks at all and redacting would hide that).

    Returns whether redaction is now in place.
    """
    if _installed.is_set():
        return True
    if not supervised():
        return False
    with _lock:
        if _installed.is_set():
            return True
        redact = _redact_function()
        import structlog

        # In place: loggers already bound (and cached) hold this very list.
        _wrap_last(structlog.get_config()["processors"], redact)
        for handler in logging.getLogger().handlers:
            _wrap_last(getattr(handler.formatter, "processors", None), redact)
        _scrub_xcom()
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, RedactingStream):
                setattr(sys, name, RedactingStream(stream, redact))
        _installed.set()
    return True


__all__ = ["RedactingStream", "install", "supervised"]
