"""Input the product does not control: JSON the vault returns, files the settings name, text echoed.

Each has one reader here, so a limit is set and kept in one place:

- ``parse_json``: the stdlib parser recurses in C and raises a bare ``RecursionError`` on deep
  nesting (100,000 levels take a few bytes), which Airflow's secrets loop swallows at DEBUG level
  and answers from the next backend. Bounded in size and depth, and failing with ``UntrustedJson``
  (a ``ValueError``, as a syntax error is) whatever the input.
- ``read_regular_file``: a FIFO blocks ``open`` and ``read`` forever, ``/dev/zero`` or a 1 GB file
  fills memory for 20 s before a ``MemoryError``. Only a regular file (after following symlinks:
  Kubernetes mounts its secrets through them) is read, and at most its cap.
- ``shown``: an id, path or setting echoed into a message or a terminal is cut and escaped, so a
  100 KB id gives a short message and an escape sequence reaches no terminal.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from .errors import ConfigurationError

MAX_JSON_DEPTH = 64
"""Nesting a connection, an account's Extra or an API answer may have: real ones use two or three."""
MAX_JSON_CHARS = 1 << 20
"""Characters of a stored value parsed as JSON (a connection, an Extra): 1 MiB."""

SECRET_FILE_CAP = 64 << 10
"""Bytes of an API key, password or JWT file: 64 KiB (a JWT with many claims is a few KiB)."""
TOKEN_FILE_CAP = 1 << 20
"""Bytes of a Conjur access token file (the sidecar's JSON): 1 MiB."""
PEM_FILE_CAP = 16 << 20
"""Bytes of a CA bundle, certificate or key: 16 MiB (a full system bundle is about 200 KiB)."""

SHOWN_CHARS = 120
"""Characters of an untrusted id, path or value echoed in a message."""


class UntrustedJson(ValueError):
    """JSON larger or deeper than the limits; ``msg`` says which (as ``JSONDecodeError.msg`` does)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests deeper than ``limit``; iterative, so any depth is measured safely."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(
    text: str | bytes | bytearray, *, max_chars: int = MAX_JSON_CHARS, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """``json.loads`` that fails only with ``ValueError`` (``UntrustedJson`` past the limits)."""
    if len(text) > max_chars:
        raise UntrustedJson(f"larger than {max_chars} characters")
    try:
        data = json.loads(text)
    except RecursionError:
        raise UntrustedJson(f"nested deeper than {max_depth} levels") from None
    except MemoryError:
        raise UntrustedJson("too large to parse") from None
    if _depth_exceeds(data, max_depth):
        raise UntrustedJson(f"nested deeper than {max_depth} levels")
    return data


def shown(text: object, limit: int = SHOWN_CHARS) -> str:
    """``text`` as a quoted, escaped literal of at most about ``limit`` characters, for messages.

    ``repr`` escapes control characters (ESC, CR, the C1 range), so terminal escape sequences stay
    inert; lone surrogates come out as ``\\udcxx``. Cut in the middle with the original length.
    """
    value = text if isinstance(text, str) else str(text)
    if len(value) > limit:
        half = limit // 2
        return f"{value[:half]!r}…{value[-half:]!r} ({len(value)} characters)"
    return repr(value)


def printable(text: str, limit: int) -> str:
    """Free text holding untrusted parts (a report line, a message), safe for a terminal and short:
    every character that is not printable (ESC, CR, C1 controls, bidi overrides) as its escape,
    cut in the middle past ``limit`` characters."""
    if not text.isprintable():
        text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    if len(text) > limit:
        half = limit // 2
        return f"{text[:half]}…[{len(text) - 2 * half} characters cut]…{text[-half:]}"
    return text


def read_regular_file(path: str | os.PathLike[str], field: str, *, cap: int, what: str = "") -> bytes:
    """The bytes of the regular file at ``path``, at most ``cap`` of them, or ``ConfigurationError``.

    Symlinks are followed (a secret mount's ``..data`` link is legitimate); what they end at must
    be a regular file. Opened non-blocking, so a FIFO without a writer cannot hang the open; the
    opened descriptor is checked, so a file swapped after a check is still judged. The message
    names ``field`` and the path (and ``what`` the file should hold), never the content.
    """
    name = os.path.expanduser(os.fspath(path))
    where = f"{field}: {shown(name)}"
    unreadable = f"{field}: cannot read {what + ' from ' if what else ''}{shown(name)}"
    try:
        found = os.stat(name)  # before open: opening a device can have effects of its own
        if not stat.S_ISREG(found.st_mode):
            raise ConfigurationError(f"{where} is not a regular file ({_kind(found.st_mode)})", field=field)
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise _unreadable(unreadable, field, exc) from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise ConfigurationError(f"{where} is not a regular file ({_kind(opened.st_mode)})", field=field)
        if opened.st_size > cap:
            raise ConfigurationError(f"{where} is larger than {cap} bytes", field=field)
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            chunk = os.read(fd, cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _unreadable(unreadable, field, exc) from None
    finally:
        os.close(fd)
    if size > cap:  # grew after fstat
        raise ConfigurationError(f"{where} is larger than {cap} bytes", field=field)
    return b"".join(chunks)


def read_text_file(path: str | os.PathLike[str], field: str, *, cap: int, what: str = "") -> str:
    """``read_regular_file`` decoded as UTF-8 (named as not UTF-8 otherwise, never quoted)."""
    data = read_regular_file(path, field, cap=cap, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        name = os.path.expanduser(os.fspath(path))
        raise ConfigurationError(f"{field}: {shown(name)} is not UTF-8 text", field=field) from None


def _unreadable(message: str, field: str, exc: OSError) -> ConfigurationError:
    return ConfigurationError(f"{message} ({exc.strerror or type(exc).__name__})", field=field)


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


__all__ = [
    "MAX_JSON_CHARS",
    "MAX_JSON_DEPTH",
    "PEM_FILE_CAP",
    "SECRET_FILE_CAP",
    "TOKEN_FILE_CAP",
    "UntrustedJson",
    "parse_json",
    "printable",
    "read_regular_file",
    "read_text_file",
    "shown",
]
