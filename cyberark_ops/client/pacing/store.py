"""Where a pacer's schedule lives: this process's memory, or a file every process of the user maps.

Both keep the same bytes (a header and the acceptance counts), so an algorithm reads the same from
either. The shared file alone carries the safety a file in a world-writable place needs: a
directory only its user may enter, a file allocated up front (a full ``/dev/shm`` must raise, not
SIGBUS), a header rewritten as unpaced when it holds anything the pacer never writes, a length
restored when someone cut it. Pacing is an optimisation and must never fail a fetch: where no file
can be made, ``store_for`` hands out a process-local store instead.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import struct
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from .schedule import MAX_RATE, MIN_RATE, Schedule

try:
    import fcntl
except ImportError:  # Windows: each process paces on its own
    fcntl = None  # type: ignore[assignment]

BUCKET = 0.01
"""Seconds per bucket in which acceptances are counted. Buckets, not a list of timestamps: every
process counts into them without taking a lock, and a lost count (two processes adding in the same
instant) only nudges an estimate that the next 429 corrects."""
BUCKETS = 512
"""Buckets kept: 5.12 s, over which the busiest window since a cut is sought."""
DIRECTORY_VARIABLE = "CYBERARK_OPS_PACING_DIR"
"""Names the directory of shared schedules instead of the user's own in ``/dev/shm`` or the
temporary directory: one mounted into several containers, or one per test session."""

_MAGIC = b"CAOPACE\x00"
_VERSION = 3
"""Also in the file's name: during an upgrade, processes of two layouts keep apart instead of
re-initialising each other's schedule at every step."""
_HEADER = struct.Struct("=8sII5d2q")
"""Written under the lock: magic, version, bucket count; rate (0 unpaced), measured (0 none),
last_slot, last_cut, last_change; held, total_at_cut. Native order: only this machine reads it."""
_RATE = 2
"""``rate`` as an index into the buffer read as doubles (after 16 bytes of magic and sizes)."""
_TOTAL = 16
"""Index into the buffer read as int64 of the acceptance total, followed by the buckets' numbers
(``int(time / BUCKET)``) and then their counts; written without a lock, by every process."""
SIZE = 8 * (_TOTAL + 1 + 2 * BUCKETS)
_SLOT_HORIZON = 2 * 86_400.0
"""A slot lies at most a deadline ahead (86,400 s at most); one further out is not this boot's."""


class Store(Protocol):
    """What a pacer and its algorithm need from a schedule's home."""

    @property
    def shared(self) -> bool: ...

    def peek_rate(self) -> float: ...

    def transaction(self, now: float) -> AbstractContextManager[Schedule]: ...

    def clear(self) -> None: ...

    def count(self, now: float) -> None: ...

    def total(self) -> int: ...

    def recent(self, now: float, after: float, window: float) -> int: ...

    def busiest(self, now: float, after: float, window: float) -> int: ...


def _allocate(fd: int) -> None:
    """Gives the whole mapping disk (or memory) blocks now, raising ``OSError`` (ENOSPC) if it cannot.

    A file extended by ``ftruncate`` is sparse: its pages are allocated when first touched, and a
    touch that finds a full filesystem (``/dev/shm`` is shared by every local user) kills the
    process with SIGBUS instead of raising. Allocated up front, a full filesystem is an error here,
    where it means "pace locally".
    """
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is not None:
        allocate(fd, 0, SIZE)  # also fills the holes of a sparse file of the right size
        return
    size = os.fstat(fd).st_size  # pragma: no cover - macOS: write the missing zeros
    if size < SIZE:  # pragma: no cover
        os.pwrite(fd, bytes(SIZE - size), size)
        os.fsync(fd)


class LocalStore:
    """The schedule in this process's memory: for one process alone, or where no file can be made.

    Thread-safe. The fast path takes no lock: while unpaced, a warm fetch reads one double before
    it sends and adds one to a count after.
    """

    def __init__(self, buffer: mmap.mmap | bytearray | None = None) -> None:
        self._buffer = bytearray(SIZE) if buffer is None else buffer
        self._doubles = memoryview(self._buffer).cast("d")
        self._ints = memoryview(self._buffer).cast("q")
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        if buffer is None:
            self._initialise()

    @property
    def shared(self) -> bool:
        """Whether other processes see this schedule."""
        return False

    def peek_rate(self) -> float:
        """The rate without a lock: only a zero is trusted (anything else takes a transaction)."""
        return self._doubles[_RATE]

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        """Held against every other thread; yields whether the buffer may be touched."""
        with self._lock:
            yield True

    @contextmanager
    def transaction(self, now: float) -> Iterator[Schedule]:
        """The schedule, exclusively; changes to it are kept when the block ends without error."""
        with self._exclusive() as usable:
            schedule = self._load(now) if usable else Schedule()
            yield schedule
            if usable:
                self._save(schedule)

    def _load(self, now: float) -> Schedule:
        _magic, _version, _buckets, *values = _HEADER.unpack_from(self._buffer, 0)
        return self._schedule(values)

    @staticmethod
    def _schedule(values: list[float]) -> Schedule:
        schedule = Schedule()
        rate, measured, last_slot, last_cut, last_change, held, total_at_cut = values
        schedule.rate, schedule.measured, schedule.held = rate, measured, bool(held)
        schedule.last_slot, schedule.last_cut, schedule.last_change = last_slot, last_cut, last_change
        schedule.total_at_cut = int(total_at_cut)
        return schedule

    def _save(self, schedule: Schedule) -> None:
        _HEADER.pack_into(
            self._buffer,
            0,
            _MAGIC,
            _VERSION,
            BUCKETS,
            schedule.rate,
            schedule.measured,
            schedule.last_slot,
            schedule.last_cut,
            schedule.last_change,
            int(schedule.held),
            schedule.total_at_cut,
        )

    def _initialise(self) -> None:
        self._buffer[_HEADER.size : SIZE] = bytes(SIZE - _HEADER.size)
        self._save(Schedule())

    def clear(self) -> None:
        """Forgets the schedule and the acceptances."""
        with self._exclusive() as usable:
            if usable:
                self._initialise()

    def count(self, now: float) -> None:
        """One acceptance at ``now``, without the store's lock (see ``BUCKET``)."""
        number = int(now / BUCKET)
        index = _TOTAL + 1 + number % BUCKETS
        ints = self._ints
        try:
            with self._count_lock:  # threads of one process never lose a count
                if ints[index] == number:
                    ints[index + BUCKETS] += 1
                else:
                    ints[index] = number
                    ints[index + BUCKETS] = 1
                ints[_TOTAL] += 1
        except (ValueError, OverflowError):
            ints[_TOTAL] = 0  # a garbled count at the int64 limit: the next estimate reads low

    def total(self) -> int:
        """Acceptances ever counted (by every process sharing the store)."""
        return self._ints[_TOTAL]

    def recent(self, now: float, after: float, window: float) -> int:
        """Acceptances in the last ``window`` seconds, and in later buckets than ``after``'s (whole
        buckets, so up to a bucket fewer)."""
        newest = int(now / BUCKET)
        oldest = newest - round(window / BUCKET) + 1
        if after > (oldest - 1) * BUCKET:
            oldest = int(after / BUCKET) + 1
        ints = self._ints
        found = 0
        for index in range(_TOTAL + 1, _TOTAL + 1 + BUCKETS):
            if oldest <= ints[index] <= newest:
                found += max(0, ints[index + BUCKETS])
        return found

    def busiest(self, now: float, after: float, window: float) -> int:
        """The most acceptances in any ``window`` seconds after ``after``'s bucket, as far back as
        the buckets reach (whole buckets)."""
        newest = int(now / BUCKET)
        width = round(window / BUCKET)
        oldest = newest - BUCKETS + 1
        if after > (oldest - 1) * BUCKET:
            oldest = int(after / BUCKET) + 1
        span = newest - oldest + 1
        if span < width:
            return 0
        counts = [0] * span
        ints = self._ints
        for index in range(_TOTAL + 1, _TOTAL + 1 + BUCKETS):
            number = ints[index]
            if oldest <= number <= newest:
                counts[number - oldest] += max(0, ints[index + BUCKETS])
        best = current = sum(counts[:width])
        for end in range(width, span):
            current += counts[end] - counts[end - width]
            best = max(best, current)
        return best

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _plausible_rate(value: float) -> bool:
    """0 (unpaced / none) or a rate the adaptive pacer itself could have set: it never sets one
    below ``MIN_RATE`` nor above ``MAX_RATE``; a forged 1e-300 would hold every slot past any deadline."""
    return value == 0.0 or MIN_RATE <= value <= MAX_RATE


class SharedFileStore(LocalStore):
    """The schedule in a file mapped by every process of this user that talks to one origin.

    Task processes that each learned alone saw only their own share of the acceptances, and a new
    one started unpaced and burst into the limit again; one schedule for all of them lets the
    algorithm see for processes what it sees for threads (see docs/hook.md for the measurements).
    Slots are ``time.monotonic()`` readings, one clock for the whole machine on Linux and macOS.
    The schedule changes under ``flock`` (other processes) and the thread lock (``flock`` does not
    exclude threads: they share its descriptor). A file cut shorter by someone else while it is
    mapped is restored by the next locked step; a read of the mapping before that would crash the
    process, which only a deliberate act by the same user can cause.
    """

    def __init__(self, buffer: mmap.mmap, fd: int) -> None:
        self._fd = fd
        weakref.finalize(self, os.close, fd)
        super().__init__(buffer)

    @property
    def shared(self) -> bool:
        return True

    @classmethod
    def open(cls, path: Path, now: float) -> SharedFileStore | None:
        """The store in ``path``, created or re-initialised as needed; None where it cannot be."""
        if fcntl is None:
            return None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                _allocate(fd)
                mapped = mmap.mmap(fd, SIZE)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except (OSError, ValueError, OverflowError):
            os.close(fd)
            return None
        try:
            store = cls(mapped, fd)
            with store.transaction(now):
                pass  # validates: a file of another layout is re-initialised now, not at the first 429
        except (OSError, ValueError, TypeError, BufferError, struct.error):
            return None  # the store's finalizer closes fd
        return store

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        with self._lock:
            fd: int | None = self._fd
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError:
                fd = None  # still paced, only less exactly: better than failing the fetch
            try:
                yield self._intact()
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _intact(self) -> bool:
        """Whether the whole mapping is backed by the file (extending it again if it was cut)."""
        try:
            _allocate(self._fd)  # zeros where it was cut: no magic, so re-initialised by _load
            return True
        except OSError:
            return False

    def _load(self, now: float) -> Schedule:
        magic, version, buckets, *values = _HEADER.unpack_from(self._buffer, 0)
        rate, measured, last_slot, last_cut, last_change, held, _total_at_cut = values
        if (
            magic == _MAGIC
            and version == _VERSION
            and buckets == BUCKETS
            and _plausible_rate(rate)
            and _plausible_rate(measured)
            # -inf is "never"; NaN fails every comparison; a time ahead of now is another boot's.
            and last_cut <= now + 1.0
            and last_change <= now + 1.0
            and last_slot <= now + _SLOT_HORIZON
            and held in (0, 1)
        ):
            return self._schedule(values)
        self._initialise()
        return Schedule()

    def __repr__(self) -> str:
        return "SharedFileStore()"  # the path names the origin's hash only, but says nothing useful


def state_directory(directory: Path | None = None) -> Path | None:
    """This user's directory of shared schedules, made if missing; None where none can be trusted.

    ``directory`` (else ``CYBERARK_OPS_PACING_DIR``, else ``/dev/shm`` or the temporary directory)
    may be writable by every user: a directory found there that is not ours alone (another owner, a
    symlink, open to others) is not used, since whoever controls it could slow our fetches or read
    which servers we talk to.
    """
    if fcntl is None:
        return None
    uid = os.getuid()
    override = os.environ.get(DIRECTORY_VARIABLE)
    if directory is None and override:
        directory = Path(override)
    if directory is None:
        shm = Path("/dev/shm")  # noqa: S108 - checked below like any shared directory
        base = shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else Path(tempfile.gettempdir())
        directory = base / f"cyberark-ops-pacing-{uid}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        found = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != uid or found.st_mode & 0o077:
        return None
    return directory


def state_file(origin: str, directory: Path | None = None) -> Path | None:
    """Where the schedule of ``origin`` is shared (a fixed-length name whatever the URL holds), or
    None where it cannot be."""
    found = state_directory(directory)
    if found is None:
        return None
    return found / f"{hashlib.sha256(origin.encode()).hexdigest()[:32]}.v{_VERSION}.pacer"


def open_store(path: Path | None, now: float) -> LocalStore:
    """The store shared through ``path``, or a process-local one where no file can be made there."""
    shared = SharedFileStore.open(path, now) if path is not None else None
    return shared if shared is not None else LocalStore()


def store_for(origin: str, clock: Callable[[], float], directory: Path | None = None) -> LocalStore:
    """The machine's shared store of ``origin`` (in ``directory``, see ``state_directory``), or a
    process-local one where no file can be made."""
    return open_store(state_file(origin, directory), clock())


__all__ = [
    "BUCKET",
    "BUCKETS",
    "DIRECTORY_VARIABLE",
    "SIZE",
    "LocalStore",
    "SharedFileStore",
    "Store",
    "open_store",
    "state_directory",
    "state_file",
    "store_for",
]
