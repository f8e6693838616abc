"""The task process's own redaction (``cyberark_ops.task_redaction``), piece by piece, in-process.

The real supervisor path (where ``install`` engages) is proven by ``tests/guarantees/test_leaks.py``:
there the scheduler's console, which LocalExecutor fills with every task line, holds no canary.
Here the values are registered in the process registry directly, as the fetch does in a real task.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog

from cyberark_ops import scrub, task_redaction
from cyberark_ops.task_redaction import DescriptorRedactor, RedactingStream, redact_json, redact_text
from tests.masking import masked_as_one

MULTILINE = "fIrst-line-c@n:ry/p%2B'\"\\&\nsecond-line-é✓ключ"
CANARY = "uT-c@n\tary😀it's{{ ds }}$HOME`id`\\1%41-Zk9"
"""Tab, a non-BMP emoji, ``'`` without ``"``, Jinja markers, ``$HOME`` and backticks, ``\\1``, ``%41``."""


def _absent(text: str, *values: str) -> None:
    for value in values or (MULTILINE, CANARY):
        for name, form in scrub.leak_forms(value).items():
            assert form not in text, name


def _joined(text: str) -> str:
    """The redacted text with no form of a secret in it, per-line masks counted as one."""
    _absent(text)
    return masked_as_one(text)


@pytest.fixture
def kept() -> Iterator[None]:
    """The values a supervised task process would have registered."""
    for value in (MULTILINE, CANARY):
        scrub.register(value, allow_short=True)
    yield
    scrub.clear()


def test_print_of_a_multiline_secret_is_redacted_whole(kept: None) -> None:
    target = io.StringIO()
    stream = RedactingStream(target)  # type: ignore[arg-type]
    print("printed", MULTILINE, repr(MULTILINE), file=stream)  # four writes: the value's newline is inside one
    assert _joined(target.getvalue()) == "printed *** '***'\n"


def test_a_line_written_in_pieces_is_held_until_it_ends(kept: None) -> None:
    target = io.StringIO()
    stream = RedactingStream(target)  # type: ignore[arg-type]
    stream.write(MULTILINE[:4])
    assert target.getvalue() == "", "nothing passed on before the line ends"
    stream.write(MULTILINE[4:] + " tail")
    stream.flush()  # a partial line is passed on at flush, redacted
    assert _joined(target.getvalue()) == "*** tail"


def test_a_log_line_is_redacted_before_rendering_so_no_escaped_form_survives(kept: None) -> None:
    """Rendered as JSON first, the ``repr`` of a multi-line value becomes text no pattern matches,
    and only its lines would be masked: half a secret in the log line."""
    renderer = structlog.processors.JSONRenderer()
    wrapped = task_redaction._RedactedRenderer(renderer)
    line = wrapped(None, "info", {"event": f"raw {MULTILINE} repr {MULTILINE!r}", "nested": [[[[[[MULTILINE]]]]]]})
    assert json.loads(_joined(line)) == {"event": "raw *** repr '***'", "nested": [[[[[["***"]]]]]]}
    as_bytes = task_redaction._RedactedRenderer(lambda *_: f"object {MULTILINE!r}".encode())
    assert as_bytes(None, "info", {}) == b"object '***'"


def test_a_composed_form_in_a_rendered_line_is_redacted(kept: None) -> None:
    """``log.info("payload %r", json.dumps({...}))``: JSON, then ``repr``, then the log line's own
    JSON: three escapes deep, as the task process sends it to the supervisor."""
    payload = json.dumps({"password": CANARY, "note": 'has "quotes"'})
    message = "payload %r" % (payload,)  # noqa: UP031 - what stdlib logging does with the arguments
    line = structlog.processors.JSONRenderer()(None, "info", {"event": message})
    _absent(redact_text(line), CANARY)
    wrapped = task_redaction._RedactedRenderer(structlog.processors.JSONRenderer())
    _absent(wrapped(None, "info", {"event": message}), CANARY)
    # The same value in a longer string holding a '"': repr writes its "'" as "\'".
    inside = repr(f'say "{CANARY}"')
    assert "\\'" in inside
    _absent(redact_text(inside), CANARY)


def _read_all(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture
def out_fd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    path = tmp_path / "fd.out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    yield fd, path
    os.close(fd)


def test_the_descriptor_redactor_catches_what_bypasses_python_streams(
    kept: None, out_fd: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler bound to the descriptor before redaction began, raw descriptor writes in pieces,
    and a child process writing to the descriptor it inherited: all redacted, nothing lost."""
    fd, path = out_fd
    monkeypatch.setattr(task_redaction, "_HOLD_SECONDS", 3600.0)  # the pieces are joined, however slow
    bound_before = open(fd, "w", closefd=False, buffering=1)  # noqa: SIM115 - like sys.stderr at import time
    handler = logging.StreamHandler(bound_before)
    logger = logging.getLogger("bound-before-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    filler = "".join(f"line {n:06d} of plain output\n" for n in range(40_000))  # > 1 MB: many pipe buffers
    try:
        redactor = DescriptorRedactor(fd)
        logger.warning("handler %s and %r", CANARY, CANARY)
        os.write(fd, f"split {CANARY[:5]}".encode())
        os.write(fd, f"{CANARY[5:]} end\n".encode())
        subprocess.run(
            [sys.executable, "-c", f"import os; os.write({fd}, {('child ' + CANARY + chr(10))!r}.encode())"],
            check=True,
            pass_fds=(fd,),
        )
        os.write(fd, filler.encode())
        os.write(fd, f"no newline at the end {CANARY}".encode())
        redactor.close()
    finally:
        logger.removeHandler(handler)
        bound_before.close()
    text = _read_all(path).decode()
    _absent(text, CANARY)
    assert text.startswith('handler *** and "***"\nsplit *** end\nchild ***\n' + filler)
    assert text.endswith("no newline at the end ***")
    assert os.write(fd, b"after\n") == 6 and _read_all(path).endswith(b"***after\n"), "fd points at the original again"


EXITS_WITHOUT_FLUSHING = """
import os, sys
from cyberark_ops import scrub, task_redaction
scrub.register(sys.argv[1], allow_short=True)
task_redaction._redirect_descriptors()
os.write(1, ("tail " + sys.argv[1]).encode())  # no newline: held back
print("printed", sys.argv[1])  # in Python's buffer: os._exit never flushes it
sys.stderr.write("stderr " + sys.argv[1] + "\\n")
os._exit(3)
"""


@pytest.mark.slow
def test_os_exit_passes_on_what_the_pipes_and_python_buffers_hold() -> None:
    """Airflow's task process ends with ``os._exit``: a held partial line and Python's unflushed
    buffer still reach the original descriptors, redacted, and the exit status is kept."""
    done = subprocess.run(
        [sys.executable, "-c", EXITS_WITHOUT_FLUSHING, CANARY], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 3
    out, err = done.stdout.decode(), done.stderr.decode()
    _absent(out + err, CANARY)
    # (Airflow 3.1 logs its alembic plugin setup to stderr when the redaction first imports it)
    assert out == "tail ***printed ***\n" and err.endswith("stderr ***\n")


def test_a_redactor_that_writes_to_its_own_descriptor_does_not_deadlock(kept: None, out_fd: tuple[int, Path]) -> None:
    """A warning logged to stderr from inside redaction lands in the pipe being redacted: the
    reader keeps draining it into memory, so the write returns and is passed on in turn."""
    fd, path = out_fd
    big = b"x" * (1 << 20) + b"\n"  # more than a pipe holds: a blocked reader would hang here

    complained = threading.Event()

    def redact_and_complain(text: str) -> str:
        if "complain" in text:
            os.write(fd, big)  # into the pipe: the descriptor is still redirected
            complained.set()
        return redact_text(text)

    redactor = DescriptorRedactor(fd, redact_and_complain)
    os.write(fd, f"complain {CANARY}\n".encode())
    assert complained.wait(60), "the redactor's own write returned"
    redactor.close()
    data = _read_all(path)
    assert data == b"complain ***\n" + big


FORKS_WHILE_A_THREAD_HOLDS_THE_LOCK = """
import os, threading
from cyberark_ops import task_redaction
lock = threading.RLock()
task_redaction._fork_safe(lock)
held, release = threading.Event(), threading.Event()
def hold():
    with lock:
        held.set()
        release.wait()
threading.Thread(target=hold).start()
held.wait()
threading.Timer(0.1, release.set).start()
pid = os.fork()  # waits for the lock: the child never gets it held by a thread it lacks
if pid == 0:
    with lock:
        os._exit(7)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_fork_never_copies_a_lock_held_by_another_thread() -> None:
    """``multiprocessing`` forks while the descriptor redactors' threads may be inside the
    registry: without the at-fork handlers the child would wait forever on the copied lock."""
    done = subprocess.run(
        [sys.executable, "-c", FORKS_WHILE_A_THREAD_HOLDS_THE_LOCK], capture_output=True, timeout=120, check=True
    )
    assert done.stdout.decode().strip() == "7"


def test_output_that_cannot_be_redacted_is_dropped_not_passed_on(out_fd: tuple[int, Path]) -> None:
    fd, path = out_fd

    def broken(text: str) -> str:
        raise RuntimeError("redaction failed")

    redactor = DescriptorRedactor(fd, broken)
    os.write(fd, f"{CANARY}\n".encode())
    redactor.close()
    assert _read_all(path) == task_redaction._DROPPED


@attrs.define
class Login:
    user: str
    password: str


class Token:
    """An object Airflow's serializer handles through ``serialize()`` / ``deserialize()``."""

    __version__ = 1

    def __init__(self, value: str) -> None:
        self.value = value

    def serialize(self) -> dict[str, Any]:
        return {"value": self.value}

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> Token:
        return Token(data["value"])


def _serde() -> Any:
    for name in ("airflow.sdk.serde", "airflow.serialization.serde"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise AssertionError("no Airflow serde module")


@pytest.fixture
def restored_xcom() -> Iterator[type]:
    from airflow.sdk.execution_time.xcom import XCom

    original = inspect.getattr_static(XCom, "serialize_value")
    serde = _serde()
    allowed = set(serde._extra_allowed)
    serde._extra_allowed.update({f"{__name__}.Login", f"{__name__}.Token"})
    yield XCom
    serde._extra_allowed.clear()
    serde._extra_allowed.update(allowed)
    XCom.serialize_value = original
    if "_cyberark_scrubbed" in vars(XCom):
        del XCom._cyberark_scrubbed


class _Stored:
    def __init__(self, value: Any) -> None:
        self.value = value


def test_every_xcom_is_redacted_after_the_backend_serialized_it(kept: None, restored_xcom: type) -> None:
    """attrs classes and objects with ``serialize()`` too, which ``scrub`` does not walk; the
    user's object is not touched, and what is stored deserializes."""
    task_redaction._scrub_xcom()
    task_redaction._scrub_xcom()  # idempotent: one wrapper
    login, token = Login("svc", CANARY), Token(f"Bearer {CANARY!r}")
    for value in ({"alone": MULTILINE, "rows": [("x", MULTILINE)]}, login, token, [login, {"t": token}]):
        stored = restored_xcom.serialize_value(value, key="return_value")
        _absent(json.dumps(stored), CANARY, MULTILINE)
        _absent(json.dumps(stored, ensure_ascii=False), CANARY, MULTILINE)
    assert login.password == CANARY and token.value == f"Bearer {CANARY!r}", "the user's objects are unchanged"
    back = restored_xcom.deserialize_value(_Stored(restored_xcom.serialize_value(login, key="return_value")))
    assert back == Login("svc", "***")
    back = restored_xcom.deserialize_value(_Stored(restored_xcom.serialize_value(token, key="return_value")))
    assert isinstance(back, Token) and back.value == 'Bearer "***"', 'repr quoted it with "'
    clean = {"rows": [["plain", 1]]}
    assert restored_xcom.serialize_value(clean, key="k") == clean


def test_serialized_json_broken_by_redaction_is_stored_as_a_mask() -> None:
    """A form spanning JSON syntax (here a secret that is itself a piece of JSON text) cannot be
    cut out of the stored text without breaking it: the whole value is replaced, never stored raw."""
    secret = 'x", '
    structure = ["ax", "yb"]  # its JSON text is ["ax", "yb"]: the secret spans two strings
    assert redact_json(structure, lambda value: scrub.scrub(value, [secret])) == scrub.REPLACEMENT
    assert redact_json(["plain"], lambda value: scrub.scrub(value, [secret])) == ["plain"]


def test_rendered_template_fields_are_redacted_before_they_are_sent(kept: None) -> None:
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk.execution_time import task_runner

    saved = {name: vars(task_runner)[name] for name in ("_serialize_rendered_fields", "_serialize_template_field")}
    composed = repr([json.dumps({"pw": CANARY})])  # a templated field holding JSON inside repr
    try:
        task_redaction._scrub_rendered_fields()
        task_redaction._scrub_rendered_fields()  # idempotent
        op = BashOperator(task_id="t", bash_command=f"echo {composed}", env={"LONG": "y" * 3990 + CANARY + "z" * 200})
        fields = task_runner._serialize_rendered_fields(op)
    finally:
        for name, function in saved.items():
            setattr(task_runner, name, function)
        vars(task_runner).pop("_cyberark_scrubbed", None)
    _absent(json.dumps(fields), CANARY)
    _absent(json.dumps(fields, ensure_ascii=False), CANARY)
    assert "***" in str(fields["bash_command"])
    assert CANARY[:8] not in json.dumps(fields, ensure_ascii=False), "redacted before the truncation could cut it"


def test_install_does_nothing_outside_a_supervised_task() -> None:
    assert not task_redaction.supervised()
    assert task_redaction.install() is False
    assert not isinstance(sys.stdout, RedactingStream)
    with scrub.task_scope():
        scrub.register(CANARY)
    assert scrub.registry().scrub(CANARY, retained=True) == CANARY, "nothing kept outside a supervised task"


FAKE_SUPERVISED = """
import json, os, sys
import structlog
import airflow.sdk.execution_time.task_runner as runner
import cyberark_ops._compat as compat

runner.SUPERVISOR_COMMS = object()  # what supervised() looks for; nothing is sent through it here
compat.mask_secret = lambda *args, **kwargs: None
renderer = structlog.get_config()["processors"][-1]
before = {"stdout": sys.stdout, "stderr": sys.stderr, "exit": os._exit, "renderer": renderer}
"""

REGISTERS_ONLY = (
    FAKE_SUPERVISED
    + """
from cyberark_ops import scrub
scrub.register(sys.argv[1])
scrub.register(sys.argv[1] + "-again", username="svc")
from airflow.sdk.execution_time.xcom import XCom
print(json.dumps({
    "task_redaction loaded": "cyberark_ops.task_redaction" in sys.modules,
    "streams kept": sys.stdout is before["stdout"] and sys.stderr is before["stderr"],
    "os._exit kept": os._exit is before["exit"],
    "renderer kept": structlog.get_config()["processors"][-1] is before["renderer"],
    "xcom kept": not getattr(XCom, "_cyberark_scrubbed", False),
}))
"""
)


@pytest.mark.slow
def test_registering_installs_no_process_wide_patch() -> None:
    """``import cyberark_ops.scrub`` and ``scrub.register`` in a supervised task process touch
    nothing process-wide: installing the task process's redaction is the glue's explicit call."""
    done = subprocess.run(
        [sys.executable, "-c", REGISTERS_ONLY, CANARY], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "task_redaction loaded": False,
        "streams kept": True,
        "os._exit kept": True,
        "renderer kept": True,
        "xcom kept": True,
    }


USER_SCOPE = (
    FAKE_SUPERVISED
    + """
from cyberark_ops import scrub
from cyberark_ops.task_redaction import RedactingStream
with scrub.task_scope():
    scrub.register(sys.argv[1])  # a value the task got some other way than a fetch
    print(json.dumps({"streams wrapped": isinstance(sys.stdout, RedactingStream)}))
    print("the task printed", repr(sys.argv[1]), flush=True)
    os.write(1, ("and wrote " + json.dumps(sys.argv[1]) + "\\n").encode())
"""
)


@pytest.mark.slow
def test_a_task_scope_opened_by_task_code_installs_the_output_redaction() -> None:
    """Task code that registers a value it did not fetch through cyberark-ops opens a task scope
    (as docs/scrubbing.md shows): that installs the redaction of the process's own output."""
    done = subprocess.run(
        [sys.executable, "-c", USER_SCOPE, CANARY], capture_output=True, text=True, timeout=120, check=True
    )
    first, *rest = done.stdout.strip().splitlines()
    assert json.loads(first) == {"streams wrapped": True}
    assert rest == ['the task printed "***"', 'and wrote "***"']
    assert not [name for name, form in scrub.leak_forms(CANARY).items() if form in done.stdout]


INSTALLS_TWICE_AND_NESTED = (
    FAKE_SUPERVISED
    + """
from cyberark_ops import scrub, task_redaction
from cyberark_ops.fetch import register_fetched
from cyberark_ops.task_redaction import RedactingStream, _RedactedRenderer
from airflow.sdk.execution_time.xcom import XCom

assert task_redaction.install() and task_redaction.install()
serialize_value = XCom.__dict__["serialize_value"]
with scrub.task_scope():
    register_fetched(sys.argv[1], "the canary")  # the fetch installs again, inside a task scope
    assert task_redaction.install()
renderer = structlog.get_config()["processors"][-1]
report = {
    "descriptor redactors": len(task_redaction._redactors),
    "streams wrapped once": all(
        isinstance(s, RedactingStream) and not isinstance(s._target, RedactingStream) for s in (sys.stdout, sys.stderr)
    ),
    "renderer wrapped once": isinstance(renderer, _RedactedRenderer)
    and not isinstance(renderer.renderer, _RedactedRenderer),
    "xcom wrapped once": XCom.__dict__["serialize_value"] is serialize_value,
    "kept after the scope": scrub.registry().scrub(sys.argv[1], retained=True) == "***",
    "return values no longer scrubbed": scrub.scrub(sys.argv[1]) == sys.argv[1],
}
sys.stdout.write(json.dumps(report) + "\\n")
print("printed", sys.argv[1])
"""
)


@pytest.mark.slow
def test_explicit_and_nested_installation_is_idempotent() -> None:
    done = subprocess.run(
        [sys.executable, "-c", INSTALLS_TWICE_AND_NESTED, CANARY],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    *_, report, printed = done.stdout.strip().splitlines()
    assert json.loads(report) == {
        "descriptor redactors": 2,
        "streams wrapped once": True,
        "renderer wrapped once": True,
        "xcom wrapped once": True,
        "kept after the scope": True,
        "return values no longer scrubbed": True,
    }
    assert printed == "printed ***"
    _absent(done.stdout + done.stderr, CANARY)
