"""The files migrate reads and writes, made hostile: a plan or state that is a FIFO, /dev/zero, a
1 GB file, a directory, a dangling or FIFO symlink, not UTF-8, or JSON nested 100,000 deep is
refused at once with an error naming the file; a write on a full disk or through a planted symlink
leaves the old file whole and writes nothing elsewhere. (A metadata DB row Airflow cannot read:
tests/migrate/test_migrate_cli.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cyberark_ops.migrate import Plan, PlanError, State
from cyberark_ops.migrate.plan import atomic_write
from tests.hostile import HOSTILE_FILES, full_filesystem, hostile_file

pytestmark = pytest.mark.timeout(60)

DEEP = "[" * 100_000 + "]" * 100_000
READ_KINDS = [*HOSTILE_FILES, "fifo-symlink", "dangling-symlink", "not-utf8", "deep-json", "json-list"]


def _made(kind: str, path: Path) -> Path:
    """``kind`` at ``path``: written there, or a link (to a hostile file of tests/hostile.py, or to nothing)."""
    if kind in HOSTILE_FILES:
        path.symlink_to(hostile_file(kind, path.parent))
    elif kind == "fifo-symlink":
        path.symlink_to(hostile_file("fifo", path.parent))
    elif kind == "dangling-symlink":
        path.symlink_to(path.parent / "gone")
    elif kind == "not-utf8":
        path.write_bytes(b'{"version": 1, "api": "\xff\xfe"}')
    elif kind == "deep-json":
        path.write_text(DEEP)
    elif kind == "json-list":
        path.write_text("[1, 2]")
    return path


@pytest.mark.parametrize("kind", READ_KINDS)
def test_a_hostile_plan_is_refused_at_once_naming_it(tmp_path: Path, kind: str) -> None:
    path = hostile_file(kind, tmp_path) if kind in HOSTILE_FILES else _made(kind, tmp_path / "plan.json")
    with pytest.raises(PlanError) as raised:
        Plan.read(path)
    assert str(path) in str(raised.value)
    assert "plan" in str(raised.value)


@pytest.mark.parametrize("kind", READ_KINDS)
def test_a_hostile_state_file_is_refused_at_once_and_never_taken_for_a_fresh_start(tmp_path: Path, kind: str) -> None:
    state_path = _made(kind, tmp_path / "plan.json.state")
    with pytest.raises(ValueError, match="move it away to start over") as raised:
        State.next_to(tmp_path / "plan.json")
    assert "state file" in str(raised.value)
    assert str(state_path) in str(raised.value)


def test_a_state_that_is_no_migration_state_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plan.json.state").write_text('{"entries": {"connection:a": "deleted-by-hand"}}')
    with pytest.raises(ValueError, match="not a migration state"):
        State.next_to(tmp_path / "plan.json")


def test_a_write_on_a_full_disk_leaves_the_old_file_whole_and_no_temporary(tmp_path: Path) -> None:
    with full_filesystem(tmp_path, files={"plan.json.state": '{"entries": {}}\n'}) as disk:
        target = disk / "plan.json.state"
        with pytest.raises(OSError) as raised:
            atomic_write(target, "x" * (256 << 10))
        assert raised.value.errno in (28, 27)  # ENOSPC (or EFBIG)
        assert target.read_text() == '{"entries": {}}\n'
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "plan.json.state"]
        state = State.next_to(disk / "plan.json")
        with pytest.raises(OSError):
            state.record("connection:" + "a" * (128 << 10), "verified")
        assert State.next_to(disk / "plan.json").entries == {}


def test_a_symlink_planted_at_the_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    target = tmp_path / "plan.json"
    (tmp_path / f".plan.json.{os.getpid()}.tmp").symlink_to(victim)
    atomic_write(target, "the plan\n")
    assert victim.read_text() == "untouched"
    assert target.read_text() == "the plan\n"
    assert not target.is_symlink()
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
