"""Hostile files by name, for every reader of a path a user or an attacker may choose: a FIFO
nobody writes to (an open or read that blocks forever), ``/dev/zero`` (a read without end), a 1 GB
sparse file (a read that exhausts memory) and a directory."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

HOSTILE_FILES = ["fifo", "zero", "sparse-1g", "directory"]


def hostile_file(kind: str, where: Path) -> Path:
    """A hostile file of ``kind`` (one of ``HOSTILE_FILES``) made under the directory ``where``."""
    if kind == "fifo":
        path = where / "fifo"
        os.mkfifo(path)
        return path
    if kind == "zero":
        return Path("/dev/zero")
    if kind == "sparse-1g":
        path = where / "sparse"
        with path.open("wb") as file:
            file.truncate(1 << 30)
        return path
    if kind == "directory":
        path = where / "directory"
        path.mkdir()
        return path
    raise AssertionError(kind)


def _fill(directory: Path) -> None:
    """Writes until the filesystem holding ``directory`` has no block left."""
    with (directory / "filler").open("wb", buffering=0) as filler:
        while True:
            try:
                filler.write(b"\xff" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (1024, 256, 64, 1):  # the last partial block too
            try:
                while True:
                    filler.write(b"\xff" * size)
            except OSError:
                continue


@contextmanager
def full_filesystem(
    where: Path, directories: Sequence[str] = (), files: dict[str, str] | None = None
) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted under ``where``, holding ``directories`` and ``files``, then filled up.

    Fails on CI when a tmpfs cannot be mounted (the test must run there); skips elsewhere."""
    mount_point = where / "full"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to mount a tmpfs for this test: {mounted.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        for name in directories:
            (mount_point / name).mkdir(mode=0o700)
        for name, text in (files or {}).items():
            (mount_point / name).write_text(text)
        _fill(mount_point)
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
