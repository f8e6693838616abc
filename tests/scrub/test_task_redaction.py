"""The task process's own redaction (``cyberark_ops.task_redaction``), piece by piece, in-process.

The real supervisor path (where ``install`` engages) is proven by ``tests/guarantees/test_leaks.py``:
there the scheduler's console, which LocalExecutor fills with every task line, holds no canary.
"""

from __future__ import annotations

import inspect
import io
import json
from collections.abc import Iterator

import pytest
import structlog
from airflow.sdk._shared.secrets_masker import redact

from cyberark_ops import scrub, task_redaction
from cyberark_ops.task_redaction import RedactingStream
from tests.masking import masked_as_one

MULTILINE = "fIrst-line-c@n:ry/p%2B'\"\\&\nsecond-line-é✓ключ"


def _absent(text: str, value: str = MULTILINE) -> None:
    for name, form in scrub.leak_forms(value).items():
        assert form not in text, name


def _joined(text: str) -> str:
    """The redacted text with no form of a secret in it, per-line masks counted as one."""
    _absent(text)
    return masked_as_one(text)


def test_print_of_a_multiline_secret_is_redacted_whole() -> None:
    scrub.register(MULTILINE)
    target = io.StringIO()
    stream = RedactingStream(target, redact)  # type: ignore[arg-type]
    print("printed", MULTILINE, repr(MULTILINE), file=stream)  # four writes: the value's newline is inside one
    assert _joined(target.getvalue()) == "printed *** '***'\n"


def test_a_line_written_in_pieces_is_held_until_it_ends() -> None:
    scrub.register(MULTILINE)
    target = io.StringIO()
    stream = RedactingStream(target, redact)  # type: ignore[arg-type]
    stream.write(MULTILINE[:4])
    assert target.getvalue() == "", "nothing passed on before the line ends"
    stream.write(MULTILINE[4:] + " tail")
    stream.flush()  # a partial line is passed on at flush, redacted
    assert _joined(target.getvalue()) == "*** tail"


def test_a_log_line_is_redacted_before_rendering_so_no_escaped_form_survives() -> None:
    """Rendered as JSON first, the ``repr`` of a multi-line value becomes text no pattern matches,
    and only its lines would be masked: half a secret in the log line."""
    scrub.register(MULTILINE)
    renderer = structlog.processors.JSONRenderer()
    wrapped = task_redaction._RedactedRenderer(renderer, redact)
    line = wrapped(None, "info", {"event": f"raw {MULTILINE} repr {MULTILINE!r}", "nested": [[[[[[MULTILINE]]]]]]})
    assert json.loads(_joined(line)) == {"event": "raw *** repr '***'", "nested": [[[[[["***"]]]]]]}
    as_bytes = task_redaction._RedactedRenderer(lambda *_: f"object {MULTILINE!r}".encode(), redact)
    assert as_bytes(None, "info", {}) == b"object '***'"


@pytest.fixture
def restored_xcom() -> Iterator[type]:
    from airflow.sdk.execution_time.xcom import XCom

    original = inspect.getattr_static(XCom, "serialize_value")
    yield XCom
    XCom.serialize_value = original
    if "_cyberark_scrubbed" in vars(XCom):
        del XCom._cyberark_scrubbed


def test_every_xcom_push_is_scrubbed_once_installed(restored_xcom: type) -> None:
    scrub.register(MULTILINE)
    task_redaction._scrub_xcom()
    task_redaction._scrub_xcom()  # idempotent: one wrapper
    stored = restored_xcom.serialize_value({"alone": MULTILINE, "rows": [("x", MULTILINE)]}, key="return_value")
    assert stored["alone"] == "***" and stored["rows"][0]["__data__"] == ["x", "***"]
    _absent(json.dumps(stored, ensure_ascii=False))


def test_install_does_nothing_outside_a_supervised_task() -> None:
    assert not task_redaction.supervised()
    assert task_redaction.install() is False
    assert not isinstance(__import__("sys").stdout, RedactingStream)
