"""Redaction inside the task process: log lines, streams, XComs and rendered fields, before they leave it.

In a supervised task Airflow leaves masking to the supervisor, which masks the task log file with
the literal values it was told about; but LocalExecutor (and the Celery worker's console) also
copies every line the task sends to the scheduler's stdout, unmasked, and Airflow masks nothing
in XCom. So the glue that fetches calls :func:`install` before it registers a secret (nothing
registering a value installs anything on its own), and in a supervised task process this module
then makes the task process redact its own output with the engine's text redaction (the process
registry, every composed form) and with Airflow's ``redact`` (values Airflow registered itself,
sensitive keys):

* every log record and rendered line, structlog's and the stdlib's alike: the final renderer of
  each chain is wrapped, so the event is redacted before rendering and the rendered line (JSON
  escaping, tracebacks, ``repr`` of objects) after;
* the process's file descriptors 1 and 2: each is pointed at a pipe whose reader redacts line by
  line and writes to the original descriptor, so handlers bound before the task started, C code
  and child processes started afterwards are covered; ``sys.stdout`` / ``sys.stderr`` are also
  redacted a line at a time, so a line written in pieces reaches the redactor whole;
* every XCom, *after* the XCom backend serialized it: whatever type Airflow knows how to serialize,
  nothing of the user's object is rebuilt, and what is stored deserializes;
* the rendered template fields sent to the API server.

The values stay known to these hooks for the rest of the task process (as they stay in Airflow's
masker): a value fetched inside ``scrub.task_scope()`` can still reach XCom or a log line after the
scope ended, so :func:`install` makes the process registry retain what scopes drop
(``Registry.retain_after_scopes``); one registry, one set of forms and matcher per value. Not
covered, and said so in ``docs/guarantees.md``: bytes written to the descriptors before the first
secret was registered (nothing is known to redact then), and what the supervisor process logs
itself.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

from cyberark_ops.redaction.matcher import REPLACEMENT
from cyberark_ops.redaction.registry import process_registry

_lock = threading.Lock()
_installed = threading.Event()
_MAX_DEPTH = 50
"""Airflow's ``redact`` stops at depth 5 by default; tracebacks and logged payloads go deeper."""
_HOLD_LIMIT = 1 << 16
"""Characters (bytes at the descriptor) held back waiting for the end of a line before they are passed on anyway."""
_HOLD_SECONDS = 0.5
"""How long the descriptor reader holds a line without its newline before passing it on."""
_DRAIN_SECONDS = 5.0
"""How long exit waits for the descriptor readers to pass on what is still in their pipes."""
_DROPPED = b"[cyberark-ops: output dropped, it could not be redacted]\n"


def _redact_retained(value: Any) -> Any:
    """``value`` without any form of a secret registered in this process, scopes ended or not."""
    return process_registry().scrub(value, retained=True)


@functools.cache
def _airflow_redact() -> Callable[..., Any]:
    from cyberark_ops._compat import first_attribute

    redact: Callable[..., Any] = first_attribute(
        "redact", "airflow.sdk.log", "airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker"
    )
    return redact


def redact_text(text: str) -> str:
    """``text`` without any form (composed ones too) of a secret this process registered, nor any
    value Airflow's masker knows."""
    return str(_airflow_redact()(_redact_retained(text)))


def redact_event(event: Any) -> Any:
    """A log event (a dict) redacted by key and value; the user's objects inside are not rebuilt."""
    return _redact_retained(_airflow_redact()(event, max_depth=_MAX_DEPTH))


class _RedactedRenderer:
    """Wraps a chain's final renderer: redacts the event before rendering, where every form still
    stands as it was logged, and the rendered line after, for what only rendering produced
    (JSON escaping of what was logged, ``repr`` of objects, tracebacks)."""

    def __init__(
        self,
        renderer: Callable[..., Any],
        text: Callable[[str], str] = redact_text,
        event: Callable[[Any], Any] = redact_event,
    ) -> None:
        self.renderer = renderer
        self.text = text
        self.event = event

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        with contextlib.suppress(Exception):  # an event the walk cannot rebuild: its line is redacted below
            event_dict = self.event(event_dict)
        rendered = self.renderer(logger, method_name, event_dict)
        if isinstance(rendered, str):
            return self.text(rendered)
        if isinstance(rendered, (bytes, bytearray)):
            text = bytes(rendered).decode("utf-8", "surrogateescape")
            return self.text(text).encode("utf-8", "surrogateescape")
        return rendered


class RedactingStream:
    """A text stream that redacts what it passes on, held back until a write ends a line; ``flush``
    passes on a partial line (redacted) so interactive output is not held back."""

    def __init__(self, target: TextIO, redact: Callable[[str], str] = redact_text) -> None:
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


class DescriptorRedactor:
    """Points file descriptor ``fd`` at a pipe and passes what arrives on to the original
    descriptor, redacted a line at a time.

    Whatever writes to ``fd`` goes through it: a handler that kept the ``sys.stderr`` of before the
    task started, C code, child processes started from now on. Two threads: one only reads the
    pipe into memory, so a writer never waits on redaction (nothing the redactor locks can block
    a write); the other redacts complete lines, and a line without its newline once it is
    ``_HOLD_SECONDS`` old or ``_HOLD_LIMIT`` long. :meth:`close` points ``fd`` back at the
    original and passes on everything already written. Nothing is dropped unless redaction itself
    fails, which drops that output and says so rather than pass it on raw.
    """

    def __init__(self, fd: int, redact: Callable[[str], str] = redact_text) -> None:
        self.fd = fd
        self._redact = redact
        self._pid = os.getpid()
        self.original = os.dup(fd)  # not inheritable: children write to the pipe, never around it
        self._read, write = os.pipe()
        os.dup2(write, fd)  # inheritable, as fd was
        os.close(write)
        self._chunks: collections.deque[bytes] = collections.deque()
        self._arrived = threading.Condition()
        self._eof = False
        self._done = threading.Event()
        self._closed = False
        self._pump = threading.Thread(target=self._read_pipe, name=f"cyberark-ops fd {fd} reader", daemon=True)
        self._writer = threading.Thread(target=self._pass_on, name=f"cyberark-ops fd {fd} redactor", daemon=True)
        self._pump.start()
        self._writer.start()

    def _read_pipe(self) -> None:
        while True:
            try:
                data = os.read(self._read, 1 << 16)
            except OSError:
                data = b""
            with self._arrived:
                if data:
                    self._chunks.append(data)
                else:
                    self._eof = True
                self._arrived.notify()
            if not data:
                return

    def _pass_on(self) -> None:
        pending = b""
        since = 0.0
        while True:
            with self._arrived:
                while not self._chunks and not self._eof:
                    timeout = None if not pending else max(0.0, since + _HOLD_SECONDS - time.monotonic())
                    if timeout == 0.0:
                        break
                    self._arrived.wait(timeout)
                data = b"".join(self._chunks)
                self._chunks.clear()
                eof = self._eof and not data
            if data and not pending:
                since = time.monotonic()
            pending += data
            cut = pending.rfind(b"\n") + 1
            if eof or len(pending) - cut > _HOLD_LIMIT or time.monotonic() - since >= _HOLD_SECONDS:
                cut = len(pending)
            if cut:
                self._write(pending[:cut])
                pending = pending[cut:]
                since = time.monotonic()
            if eof:
                self._done.set()
                return

    def _write(self, data: bytes) -> None:
        try:
            out = self._redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        except Exception:  # noqa: BLE001 - fail closed: never pass on what could not be redacted
            out = _DROPPED
        view = memoryview(out)
        while view:
            try:
                view = view[os.write(self.original, view) :]
            except OSError:  # the reading end is gone (supervisor exited): nobody to pass it on to
                return

    def close(self, timeout: float = _DRAIN_SECONDS) -> None:
        """Points ``fd`` back at the original and waits (at most ``timeout``) until what was
        written has been passed on. A child still holding the pipe keeps it open: then the wait
        ends at ``timeout``, having passed on what was written until then."""
        if self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        os.dup2(self.original, self.fd)
        self._done.wait(timeout)


_redactors: list[DescriptorRedactor] = []


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (ValueError, OSError):
            pass


def drain() -> None:
    """Passes on everything still held (Python streams, then the descriptor pipes) and points the
    descriptors back; at exit, and in ``os._exit`` (Airflow's task process ends with it)."""
    _flush_python_streams()
    while _redactors:
        _redactors.pop().close()


def _redirect_descriptors() -> None:
    _flush_python_streams()
    for fd in (1, 2):
        try:
            _redactors.append(DescriptorRedactor(fd))
        except OSError:  # no such descriptor (closed by the user): nothing to redirect
            continue
    atexit.register(drain)
    original_exit = os._exit
    pid = os.getpid()

    def _exit(status: int) -> NoReturn:
        if os.getpid() == pid:
            drain()
        original_exit(status)

    os._exit = _exit


def _fork_safe(lock: Any) -> None:
    """Held across ``fork()``, so a child (``multiprocessing``, ``os.fork``) never starts with it
    locked by one of this process's threads, which do not exist there."""
    if lock is not None and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=lock.acquire, after_in_parent=lock.release, after_in_child=lock.release)


def _wrap_last(processors: Any) -> None:
    if isinstance(processors, list) and processors and not isinstance(processors[-1], _RedactedRenderer):
        processors[-1] = _RedactedRenderer(processors[-1])


def redact_json(structure: Any, redact: Callable[[Any], Any] | None = None) -> Any:
    """A JSON-able structure (what an XCom backend's ``serialize_value`` returned, or rendered
    fields) without any form of a secret, as the text it will be stored as.

    Each string is redacted, then the JSON text: a form can only be in the stored text across
    parts of the structure. What holds no form is returned as is (the same object). If redacting
    the text broke the JSON, a form spanned its syntax: the whole value is replaced by ``***``
    rather than stored raw. A string (a backend's own encoding) is redacted as text.
    """
    redact = redact or _redact_retained
    try:
        clean = redact(structure)
    except Exception:  # noqa: BLE001 - fail closed
        return REPLACEMENT
    if isinstance(clean, str):
        return clean
    try:
        text = json.dumps(clean)
    except (TypeError, ValueError):
        return clean  # not JSON: every string in it was redacted above
    redacted = redact(text)
    if redacted == text:
        return clean
    try:
        return json.loads(redacted)
    except ValueError:
        return REPLACEMENT


def _scrub_xcom() -> None:
    """Redacts every XCom this task pushes after the XCom backend serialized it: ``ti.xcom_push``
    and return values alike, attrs classes and objects with ``serialize()`` included."""
    import importlib

    xcom = getattr(importlib.import_module("airflow.sdk.execution_time.xcom"), "XCom", None)
    if xcom is None or getattr(xcom, "_cyberark_scrubbed", False):
        return
    original = xcom.serialize_value

    def serialize_value(value: Any, *args: Any, **kwargs: Any) -> Any:
        return redact_json(original(value, *args, **kwargs))

    xcom.serialize_value = staticmethod(serialize_value)
    xcom._cyberark_scrubbed = True


def _scrub_rendered_fields() -> None:
    """Redacts the rendered template fields before the task runner sends them for storage.

    Each field's value is redacted before Airflow serializes and truncates it (a form cut by the
    truncation would not match afterwards), and the serialized fields once more after."""
    runner: Any = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if runner is None or getattr(runner, "_cyberark_scrubbed", False):
        return
    serialize_fields = getattr(runner, "_serialize_rendered_fields", None)
    serialize_field = getattr(runner, "_serialize_template_field", None)
    if serialize_fields is not None:

        def _serialize_rendered_fields(task: Any) -> Any:
            return redact_json(serialize_fields(task))

        runner._serialize_rendered_fields = _serialize_rendered_fields
    if serialize_field is not None:

        def _serialize_template_field(template_field: Any, name: str) -> Any:
            with contextlib.suppress(Exception):  # the serialized field is redacted after
                template_field = _redact_retained(template_field)
            return serialize_field(template_field, name)

        runner._serialize_template_field = _serialize_template_field
    runner._cyberark_scrubbed = True


def supervised() -> bool:
    """True in a task process that sends its output to a supervisor (the real path)."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def install() -> bool:
    """Makes this task process redact its own output; once per process, and only when supervised
    (elsewhere Airflow's own chain masks, or nothing masks at all and redacting would hide that).

    Called explicitly by the glue before it registers a fetched value (``cyberark_ops.fetch``);
    calling it again, or from inside a call already made, does nothing more. Returns whether
    redaction is now in place.
    """
    if _installed.is_set():
        return True
    if not supervised():
        return False
    with _lock:
        if _installed.is_set():
            return True
        import structlog

        # In place: loggers already bound (and cached) hold this very list.
        _wrap_last(structlog.get_config()["processors"])
        for handler in logging.getLogger().handlers:
            _wrap_last(getattr(handler.formatter, "processors", None))
        _scrub_xcom()
        _scrub_rendered_fields()
        _redirect_descriptors()
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, RedactingStream):
                wrapped = RedactingStream(stream)
                _fork_safe(wrapped._lock)
                setattr(sys, name, wrapped)
        registry = process_registry()
        registry.retain_after_scopes()
        # The descriptor redactors use it from their own threads.
        _fork_safe(getattr(registry, "_lock", None))
        _installed.set()
    return True


__all__ = ["DescriptorRedactor", "RedactingStream", "drain", "install", "redact_json", "supervised"]
