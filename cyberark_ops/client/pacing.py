"""Machine-wide pacing per server, learned from what it accepts once it starts answering 429.

Mapped tasks burst: fifty threads of one worker fetching at once overrun a CyberArk rate limit,
and retrying each request on its own only multiplies the 429s until some run out of retries.
So every request to one origin (scheme, host and port) first takes a slot from a shared pacer,
unpaced until the server answers 429. From then on the rate is set from the answers the server
*accepted*, never from what was sent: a 429 means its budget was empty at that moment, so between
two 429s it accepted exactly what it refilled, its rate times the time between them. Sends say
nothing about the limit (a burst of 50 in a few milliseconds "measures" thousands per second);
acceptances do. While callers wait for slots and no 429 comes, the rate grows: quickly from the
first guess (a slow start), back up to just below the measured rate after a cut, then not at all
for a few seconds, then faster the longer the server stays quiet. Pacing stops once the server
has been quiet for a while. Users never need to know the server's limit.

The pacer is shared by every process of one OS user on the machine, not just by the threads of
one. Task processes that each learned alone saw only their own share of the acceptances, so their
estimates read an eighth of the limit and were noisy, and a new task process started unpaced and
burst into the limit again: eight processes took 1.47x the ideal time where fifty threads took
1.08x (benchmark figure 4). So the schedule lives in a small file mapped into every process: the
rate, the last slot handed out, the last cut, and acceptance counts. Every process reserves its
slots from that one schedule and every process's acceptances are counted, so the one algorithm
sees for processes what it sees for threads. Slots are ``time.monotonic()`` readings, which on
Linux is CLOCK_MONOTONIC, one clock for the whole machine (as is macOS's): one process's slot
means the same instant to every other.

The file sits in ``/dev/shm`` (memory, emptied at boot) or else the temporary directory, in a
directory only its user may enter, named by a hash of the origin (a fixed-length name whatever the
URL holds); ``CYBERARK_OPS_PACING_DIR`` names another directory, to isolate test sessions or to
share one across containers. The schedule changes under ``flock`` (other processes) and a thread
lock (``flock`` does not exclude threads: they share its descriptor). The fast path takes
neither: while nobody has seen a 429 for a minute the file holds rate 0, and a warm fetch (a few
hundred microseconds, which figure 1 allows 5% over a raw GET) reads one mapped double before it
sends and adds one to a count after. The counts are kept lock-free in 10 ms buckets (see
``BUCKET``), so even the first 429 of a burst is judged from every process's acceptances.
Pacing is an optimisation and must never fail a fetch: a file in another layout, truncated or
holding nonsense (non-finite values, rates the pacer never sets, timestamps from before a reboot)
is rewritten as unpaced, and where no file can be made (no ``fcntl`` on Windows, a read-only or
foreign directory, a full filesystem: the file is allocated up front) each process
paces on its own, with the same code on the same layout in its own memory. (A file cut shorter by
someone else while it is mapped is restored by the next locked step; a read of the mapping before
that would crash the process, which only a deliberate act by the same user can cause.)
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import stat
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: each process paces on its own
    fcntl = None  # type: ignore[assignment]

RECENT = 0.3
"""Seconds of acceptances counted to estimate the server's rate at a 429. Shorter windows give
absurd estimates from an initial burst (a 20/s server with a burst of 20 looked like 140/s with a
0.25 s window of sends); longer ones lag behind the server."""
EPISODE = 0.1
"""Seconds after a cut during which further 429s are echoes of requests already in flight: callers
take their slots one at a time, so at a cut only the slots of requests already sent or about to be
(one per process) were set by the old pace. A 429 after that is news, and a costly one for task
processes: each single-threaded process pays it with a whole ``Retry-After`` second, so a pace
left above the limit for 0.3 s turned nearly every process of the machine away at once."""
BELOW_ESTIMATE = 0.95
"""Pace this far below the measured acceptance rate: a rate just above the limit turns a few
percent of requests into 429s, each of which waits a whole ``Retry-After`` second."""
HOLD = 0.98
"""Where the rate rests after a cut until ``ACCELERATE_AFTER``: an estimate reads high by up to one
acceptance per window, and resting above the limit drains the server's burst into a 429 that some
caller pays with a Retry-After second (at the end of a burst, the burst's own length)."""
CUT_FACTOR = 0.85
"""Applied when a 429 comes although the pace is already below what the server accepted."""
START_GROWTH = 8.0
"""Growth per second before the first measured estimate: the first guess, made from an instant,
is usually low (a burst of 10 against 100/s measures 33/s), and every second below the limit is
lost for good."""
GROWTH = 1.1
"""Growth per second once the rate was measured: probes again for capacity freed by other
processes without turning many requests into 429s."""
ACCELERATE_AFTER = 3.0
"""Seconds without a 429 after which the rate grows again beyond the measured one, faster each
second: one client near the limit is cut every second or two and stays near it, while a task
process left with a small share after the others finished climbs back within seconds."""
ACCELERATION = 2.0
"""How much faster the growth gets with each further quiet second (in powers of ``GROWTH``)."""
QUIET_RELEASE = 60.0
"""Seconds without a 429 after which pacing stops."""
MIN_RATE = 1.0
"""No slower than one request a second: ``Retry-After`` comes in whole seconds, so a 429 already
holds its caller that long; a lower pace only stalls a task process after a first estimate made
from one or two acceptances."""


BUCKET = 0.01
"""Seconds per bucket in which acceptances are counted (``RECENT`` spans 30 of them). Buckets, not
a list of timestamps: every process counts into them without taking a lock, and a lost count (two
processes adding in the same instant) only nudges an estimate that the next 429 corrects."""
BUCKETS = 512
"""Buckets kept: 5.12 s, over which the busiest window since a cut is sought (``rate_limited``)."""
BUSY_ENOUGH = 10
"""Acceptances a window needs before its count is taken for the server's rate rather than luck."""
DIRECTORY_VARIABLE = "CYBERARK_OPS_PACING_DIR"

_MAGIC = b"CAOPACE\x00"
_VERSION = 3
"""Also in the file's name: during an upgrade, processes of two layouts keep apart instead of
re-initialising each other's schedule at every step."""
_HEADER = struct.Struct("=8sII5d2q")
"""Written under the lock: magic, version, bucket count; rate (0 unpaced), measured (0 none),
last_slot, last_cut, last_change; held, total_at_cut. Native order: only this machine reads it."""
_RATE = 2
"""``rate`` as an index into the file read as doubles (after 16 bytes of magic and sizes)."""
_TOTAL = 16
"""Index into the file read as int64 of the acceptance total, followed by the buckets' numbers
(``int(time / BUCKET)``) and then their counts; written without a lock, by every process."""
_SIZE = 8 * (_TOTAL + 1 + 2 * BUCKETS)
_MAX_RATE = 1e9
_SLOT_HORIZON = 2 * 86_400.0
"""A slot lies at most a deadline ahead (86,400 s at most); one further out is not this boot's."""


def _allocate(fd: int) -> None:
    """Gives the whole mapping disk (or memory) blocks now, raising ``OSError`` (ENOSPC) if it cannot.

    A file extended by ``ftruncate`` is sparse: its pages are allocated when first touched, and a
    touch that finds a full filesystem (``/dev/shm`` is shared by every local user) kills the
    process with SIGBUS instead of raising. Allocated up front, a full filesystem is an error here,
    where it means "pace locally".
    """
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is not None:
        allocate(fd, 0, _SIZE)  # also fills the holes of a sparse file of the right size
        return
    size = os.fstat(fd).st_size  # pragma: no cover - macOS: write the missing zeros
    if size < _SIZE:  # pragma: no cover
        os.pwrite(fd, bytes(_SIZE - size), size)
        os.fsync(fd)


def _plausible_rate(value: float) -> bool:
    """0 (unpaced / none) or a rate the pacer itself could have set: it never sets one below
    ``MIN_RATE`` nor above ``_MAX_RATE``; a forged 1e-300 would hold every slot past any deadline."""
    return value == 0.0 or MIN_RATE <= value <= _MAX_RATE


class _Fields:
    """One origin's schedule; ``rate`` 0 is unpaced and ``measured`` 0 not yet measured (the file's
    encoding of None, kept in memory too so the algorithm reads the same either way)."""

    __slots__ = ("held", "last_change", "last_cut", "last_slot", "measured", "rate", "total_at_cut")

    def __init__(self) -> None:
        self.rate = 0.0
        self.measured = 0.0
        self.last_slot = -math.inf
        self.last_cut = -math.inf
        self.last_change = 0.0
        self.held = False
        self.total_at_cut = 0


class _Store:
    """One origin's schedule and acceptance counts, in one layout whether shared or not.

    Shared: a file mapped by every process of this user that talks to the origin, locked with
    ``flock`` as well. Not shared (no file could be made): the same bytes in this process's memory.
    """

    def __init__(self, buffer: mmap.mmap | bytearray, fd: int | None, clock: Callable[[], float]) -> None:
        self._buffer = buffer
        self._doubles = memoryview(buffer).cast("d")
        self._ints = memoryview(buffer).cast("q")
        self._fd = fd
        self._clock = clock
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._usable = True
        """Whether the mapping may be touched in this transaction (a truncated file would SIGBUS)."""
        if fd is not None:
            weakref.finalize(self, os.close, fd)

    @property
    def shared(self) -> bool:
        return self._fd is not None

    @classmethod
    def local(cls, clock: Callable[[], float]) -> _Store:
        store = cls(bytearray(_SIZE), None, clock)
        store.clear()
        return store

    @classmethod
    def open(cls, path: Path, clock: Callable[[], float]) -> _Store | None:
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
                mapped = mmap.mmap(fd, _SIZE)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except (OSError, ValueError, OverflowError):
            os.close(fd)
            return None
        try:
            store = cls(mapped, fd, clock)
            with store.transaction():
                pass  # validates: a file of another layout is re-initialised now, not at the first 429
        except (OSError, ValueError, TypeError, BufferError, struct.error):
            return None  # the store's finalizer closes fd
        return store

    def peek_rate(self) -> float:
        """The rate without a lock: only a zero is trusted (anything else takes a transaction)."""
        return self._doubles[_RATE]

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock:
            fd = self._fd
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:
                    fd = None  # still paced, only less exactly: better than failing the fetch
            try:
                self._usable = self._intact()
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _intact(self) -> bool:
        """Whether the whole mapping is backed by the file (extending it again if it was cut)."""
        if self._fd is None:
            return True
        try:
            _allocate(self._fd)  # zeros where it was cut: no magic, so re-initialised by _load
            return True
        except OSError:
            return False

    @contextmanager
    def transaction(self) -> Iterator[_Fields]:
        """The schedule, exclusively; changes to it are kept when the block ends without error."""
        with self._exclusive():
            fields = self._load()
            yield fields
            if self._usable:
                self._save(fields)

    def _load(self) -> _Fields:
        fields = _Fields()
        if not self._usable:
            return fields
        magic, version, buckets, *values = _HEADER.unpack_from(self._buffer, 0)
        rate, measured, last_slot, last_cut, last_change, held, total_at_cut = values
        now = self._clock()
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
            fields.rate, fields.measured, fields.held = rate, measured, bool(held)
            fields.last_slot, fields.last_cut, fields.last_change = last_slot, last_cut, last_change
            fields.total_at_cut = total_at_cut
        else:
            self._initialise()
        return fields

    def _save(self, fields: _Fields) -> None:
        _HEADER.pack_into(
            self._buffer,
            0,
            _MAGIC,
            _VERSION,
            BUCKETS,
            fields.rate,
            fields.measured,
            fields.last_slot,
            fields.last_cut,
            fields.last_change,
            int(fields.held),
            fields.total_at_cut,
        )

    def _initialise(self) -> None:
        self._buffer[_HEADER.size : _SIZE] = bytes(_SIZE - _HEADER.size)
        self._save(_Fields())

    def clear(self) -> None:
        """Forgets the schedule and the acceptances."""
        with self._exclusive():
            if self._usable:
                self._initialise()

    def count(self, now: float) -> None:
        """One acceptance at ``now``, without the lock (see ``BUCKET``)."""
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

    def recent(self, now: float, after: float) -> int:
        """Acceptances in the last ``RECENT`` seconds, and in later buckets than ``after``'s (whole
        buckets, so up to a bucket fewer)."""
        newest = int(now / BUCKET)
        oldest = newest - round(RECENT / BUCKET) + 1
        if after > (oldest - 1) * BUCKET:
            oldest = int(after / BUCKET) + 1
        ints = self._ints
        found = 0
        for index in range(_TOTAL + 1, _TOTAL + 1 + BUCKETS):
            if oldest <= ints[index] <= newest:
                found += max(0, ints[index + BUCKETS])
        return found

    def busiest(self, now: float, after: float) -> int:
        """The most acceptances in any ``RECENT`` seconds after ``after``'s bucket, as far back as
        the buckets reach (whole buckets)."""
        newest = int(now / BUCKET)
        width = round(RECENT / BUCKET)
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
        best = window = sum(counts[:width])
        for end in range(width, span):
            window += counts[end] - counts[end - width]
            best = max(best, window)
        return best


class Pacer:
    """The send schedule of one origin; thread-safe, and cheap when unpaced (one read, one count)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, state_file: Path | None = None) -> None:
        """Shared through ``state_file`` when given and usable, else this process's alone."""
        self._clock = clock
        self._gate = threading.Lock()
        shared = _Store.open(state_file, clock) if state_file is not None else None
        self._store = shared if shared is not None else _Store.local(clock)
        self._peek_rate = self._store.peek_rate

    @property
    def shared(self) -> bool:
        """Whether the schedule is shared with other processes (False where it cannot be)."""
        return self._store.shared

    @property
    def rate(self) -> float | None:
        """Requests per second it paces at, or None when unpaced."""
        with self._store.transaction() as state:
            return state.rate or None

    @rate.setter
    def rate(self, value: float | None) -> None:
        with self._store.transaction() as state:
            state.rate = min(_MAX_RATE, max(MIN_RATE, value)) if value else 0.0

    @property
    def measured(self) -> float | None:
        """The last estimate of the server's rate (from acceptances between two 429s), or None."""
        with self._store.transaction() as state:
            return state.measured or None

    def forget(self) -> None:
        """Back to unpaced, for every process sharing the schedule."""
        self._store.clear()

    def reserve(self, deadline: float) -> float | None:
        """Seconds to wait before sending, or None when the slot lies beyond ``deadline``."""
        if self._peek_rate() == 0.0:
            return 0.0
        with self._store.transaction() as state:
            if state.rate == 0.0:
                return 0.0
            now = self._clock()
            self._recover(state, now)
            if state.rate == 0.0:
                return 0.0
            # The gap after the last slot follows the rate now, so a rate that grew shortens it.
            slot = max(now, state.last_slot + 1.0 / state.rate)
            if slot >= deadline:
                return None
            state.last_slot = slot
            state.held = slot > now
            return slot - now

    def take_turn(self, deadline: float, sleep: Callable[[float], None]) -> bool:
        """Waits for this caller's slot; False when none is free before ``deadline``.

        Callers wait one at a time for the next slot, each slot set from the rate of that moment.
        Handing every waiting thread its slot up front would queue fifty threads seconds deep at
        the rate of the moment they arrived: a cut or a raise would reach the wire only after that
        queue drained (at 20/s the pace lagged 2.5 s, and the overshoot spent fetches' retries).
        Across processes each holds at most one slot ahead, so eight processes queue eight deep.
        """
        if self._peek_rate() == 0.0:
            return True
        if not self._gate.acquire(timeout=max(0.0, deadline - self._clock())):
            return False
        try:
            wait = self.reserve(deadline)
            if wait is None:
                return False
            if wait > 0:
                sleep(wait)
            return True
        finally:
            self._gate.release()

    def accepted(self) -> None:
        """The server answered (anything but 429): it spent one unit of its budget on us."""
        self._store.count(self._clock())

    def rate_limited(self) -> None:
        """A 429 arrived: set the rate from what the server accepted, once per episode.

        ``Retry-After`` stays with the call that received it: holding every call to the origin
        for it would fail unrelated fetches whose deadline is shorter than the wait.
        """
        with self._store.transaction() as state:
            now = self._clock()
            since_cut = now - state.last_cut
            if since_cut < EPISODE:
                return
            total = self._store.total()
            # The budget was empty at this 429 and at the last cut's: in between it accepted what it
            # refilled. Over the recent window it may have started full, so that one reads high
            # (by the server's whole burst over the window), unless the window starts at the last
            # cut, as it does when a 429 follows soon after it.
            # The larger of the two: a low estimate is never corrected by a 429, a high one is.
            recent = self._store.recent(now, state.last_cut) / min(RECENT, since_cut)
            # Nor the last window alone: task processes sleeping out a Retry-After together leave
            # the server idle in it (its budget full, its refill lost), and the estimate read low.
            # The busiest window since the cut is as biased as the last one at worst, once it holds
            # enough acceptances: the busiest of many windows of a crawling server is one of its
            # luckiest (against 2/s, 2 acceptances in 0.3 s read as 6.7/s).
            busy = self._store.busiest(now, state.last_cut)
            busiest = busy / RECENT if busy >= BUSY_ENOUGH else 0.0
            between = max(0, total - state.total_at_cut) / since_cut if state.rate else 0.0
            estimate = min(_MAX_RATE, max(recent, busiest, between, MIN_RATE))
            if not state.rate:
                state.rate = estimate
            elif estimate < state.rate:
                # Straight to the estimate, however far: halving per episode took five episodes (and
                # some fetches' last retry) to come down from a burst of 50 against 5/s.
                state.rate = max(MIN_RATE, estimate * BELOW_ESTIMATE)
                state.measured = estimate
            else:
                state.rate = max(MIN_RATE, state.rate * CUT_FACTOR)
                state.measured = estimate
            state.total_at_cut = total
            state.last_cut = state.last_change = now

    @staticmethod
    def _recover(state: _Fields, now: float) -> None:
        if now - state.last_cut >= QUIET_RELEASE:
            state.rate = 0.0
            state.measured = 0.0
            return
        seconds = now - state.last_change
        if seconds >= 0.05:
            # Only a pace that held callers back needs raising: once demand falls below it (the
            # last fetches of a burst), probing would only risk a 429 on one of them.
            if state.held and not state.measured:
                state.rate *= START_GROWTH**seconds
            elif state.held:
                # Back to the measured rate quickly, then hold there (each probe above it costs some
                # caller a 429 and a Retry-After second, which at the end of a burst is its length),
                # then probe faster the longer the server stays quiet (as TCP CUBIC does): seconds
                # after a cut, other processes may have left capacity.
                quiet = now - state.last_cut - ACCELERATE_AFTER
                if quiet > 0:
                    state.rate *= GROWTH ** (seconds * max(1.0, ACCELERATION * quiet))
                elif state.rate < state.measured * HOLD:
                    state.rate = min(state.measured * HOLD, state.rate * GROWTH**seconds)
            state.last_change = now


_PACERS: dict[str, Pacer] = {}
_PACERS_LOCK = threading.Lock()


def state_directory() -> Path | None:
    """This user's directory of shared schedules, made if missing; None where none can be trusted.

    In ``/dev/shm`` or the temporary directory, which every user may write: a directory found there
    that is not ours alone (another owner, a symlink, open to others) is not used, since whoever
    controls it could slow our fetches or read which servers we talk to.
    """
    if fcntl is None:
        return None
    uid = os.getuid()
    override = os.environ.get(DIRECTORY_VARIABLE)
    if override:
        directory = Path(override)
    else:
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


def state_file(origin: str) -> Path | None:
    """Where the schedule of ``origin`` is shared, or None where it cannot be."""
    directory = state_directory()
    if directory is None:
        return None
    return directory / f"{hashlib.sha256(origin.encode()).hexdigest()[:32]}.v{_VERSION}.pacer"


def pacer_for(origin: str) -> Pacer:
    """The pacer of ``origin``: shared by every client, hook and process of this user that talks to it."""
    pacer = _PACERS.get(origin)
    if pacer is None:
        with _PACERS_LOCK:
            pacer = _PACERS.get(origin)
            if pacer is None:
                pacer = _PACERS[origin] = Pacer(state_file=state_file(origin))
    return pacer


def reset_pacers() -> None:
    """Forgets what was learned, in the shared files too (tests start each server on a new port,
    so rarely needed; a benchmark compares cases against one server)."""
    with _PACERS_LOCK:
        for pacer in _PACERS.values():
            pacer.forget()
        _PACERS.clear()


def _forget_after_fork() -> None:
    # A forked child shares its parent's descriptors, and with them the parent's flock: it must open
    # its own. Its locks may also have been held by a thread that does not exist in the child.
    global _PACERS_LOCK  # noqa: PLW0603
    _PACERS_LOCK = threading.Lock()
    _PACERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


__all__ = ["Pacer", "pacer_for", "reset_pacers"]
