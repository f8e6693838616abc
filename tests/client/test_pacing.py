"""The shared pacer: what it learns from a rate-limited server.

Schedule tests run on a fake clock (the only thing patched). The burst simulations drive the pacer
through the dev server's own token bucket (``Knobs.take_token``) on that clock, with callers taking
turns as ``Pacer.take_turn`` makes threads do, so they are deterministic; the last test sends a
real burst over HTTPS to a rate-limited dev server. Pacers share their state between processes
through a file: two pacers on one file stand for two processes, and the last test spawns four.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cyberark_ops.client import ConjurClient, CyberArkError, TokenCache, pacing
from cyberark_ops.client.pacing import (
    BELOW_ESTIMATE,
    DIRECTORY_VARIABLE,
    MACHINE_WIDE,
    MIN_RATE,
    QUIET_RELEASE,
    RECENT,
    Pacer,
    Pacing,
    open_store,
)
from cyberark_ops.devserver.knobs import Knobs

from . import _pacing_worker
from .conftest import HOST_API_KEY, HOST_LOGIN, Events, Vault

pytestmark = pytest.mark.waits  # real bursts against rate-limited servers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def burst(clock: Clock, sent: int, accepted: int) -> Pacer:
    """A pacer that sent ``sent`` requests at once, of which the server accepted ``accepted``."""
    pacer = Pacer(clock=clock)
    for _ in range(sent):
        assert pacer.reserve(clock.now + 60) == 0.0
    for _ in range(accepted):
        pacer.accepted()
    for _ in range(sent - accepted):
        pacer.rate_limited()
    return pacer


def test_unpaced_until_the_first_429(clock: Clock) -> None:
    pacer = Pacer(clock=clock)
    for _ in range(100):
        assert pacer.reserve(clock.now + 60) == 0.0
        pacer.accepted()
    assert pacer.rate is None


def test_the_first_rate_comes_from_acceptances_not_sends(clock: Clock) -> None:
    # 50 sent in an instant, 10 accepted: 10 over the window, whatever was sent.
    pacer = burst(clock, sent=50, accepted=10)
    assert pacer.rate == pytest.approx(10 / RECENT)
    assert burst(Clock(), sent=500, accepted=10).rate == pacer.rate


def test_429s_of_one_episode_set_the_rate_once(clock: Clock) -> None:
    pacer = burst(clock, sent=50, accepted=10)
    first = pacer.rate
    clock.now += 0.01
    for _ in range(30):
        pacer.rate_limited()
    assert pacer.rate == first


def test_between_two_429s_the_server_accepted_its_rate(clock: Clock) -> None:
    """The budget is empty at each 429: what was accepted in between is the server's rate."""
    pacer = burst(clock, sent=50, accepted=10)
    pacer.rate = 1000.0  # a wild guess, far above the server's 20/s
    for _ in range(40):  # one acceptance every 50 ms for 2 s
        clock.now += 0.05
        pacer.accepted()
    pacer.rate_limited()
    # Within one acceptance of the recent window (its count includes both ends).
    assert pacer.measured is not None
    assert 20.0 <= pacer.measured <= 20.0 + 1 / RECENT + 1e-9
    # Straight to just below the estimate, however far above it the guess was.
    assert pacer.rate == pytest.approx(pacer.measured * BELOW_ESTIMATE)


def test_a_429_soon_after_a_cut_is_measured_from_the_cut(clock: Clock) -> None:
    """The budget was empty at the cut, so what was accepted since is the server's refill alone,
    not the burst it had saved up before: the second cut lands at the limit, not above it."""
    pacer = burst(clock, sent=50, accepted=10)
    pacer.rate = 150.0  # the slow start overshot a 100/s server
    for _ in range(15):  # 100/s accepted since the cut
        clock.now += 0.01
        pacer.accepted()
    pacer.rate_limited()
    assert pacer.measured == pytest.approx(100.0, rel=0.1)
    assert pacer.rate is not None and pacer.rate < 100.0


def test_a_slot_beyond_the_deadline_is_refused(clock: Clock) -> None:
    pacer = burst(clock, sent=2, accepted=1)
    assert pacer.rate == pytest.approx(1 / RECENT)
    assert pacer.reserve(clock.now + 60) == 0.0
    assert pacer.reserve(clock.now + 0.1) is None
    sleeps: list[float] = []
    assert pacer.take_turn(clock.now + 0.1, sleeps.append) is False
    assert sleeps == []


def test_take_turn_sleeps_until_the_slot(clock: Clock) -> None:
    pacer = burst(clock, sent=20, accepted=6)  # 20/s
    sleeps: list[float] = []
    assert pacer.take_turn(clock.now + 60, sleeps.append)
    assert pacer.take_turn(clock.now + 60, sleeps.append)
    assert sleeps == [pytest.approx(1 / 20.0)]


def test_the_rate_recovers_while_callers_wait_and_pacing_ends_when_quiet(clock: Clock) -> None:
    pacer = burst(clock, sent=50, accepted=10)
    cut = pacer.rate
    assert cut is not None
    for _ in range(100):  # callers keep waiting for slots: demand exceeds the pace
        pacer.reserve(clock.now + 60)
        clock.now += 0.01
    assert pacer.rate is not None and pacer.rate > cut
    clock.now += QUIET_RELEASE
    pacer.reserve(clock.now + 60)
    assert pacer.rate is None


def test_the_rate_never_drops_below_the_floor(clock: Clock) -> None:
    pacer = Pacer(clock=clock)
    for _ in range(200):
        pacer.reserve(clock.now + 1e6)
        pacer.rate_limited()
        clock.now += 1.5
    assert pacer.rate is not None and pacer.rate >= MIN_RATE


# -- bursts against the dev server's token bucket, on the fake clock ------------------------------


@dataclass
class Burst:
    """What a simulated burst saw: its outcome per fetch and the pacer's rate at each 429."""

    failures: int = 0
    done: int = 0
    rejected: int = 0
    attempts: list[int] = field(default_factory=list)
    rates_after_429: list[float] = field(default_factory=list)
    measured: list[float] = field(default_factory=list)


def simulate(
    per_second: float, bucket: float, callers: int, each: int, *, max_retries: int = 3, latency: float = 0.005
) -> Burst:
    """``callers`` threads fetch ``each`` times through one pacer, taking turns for slots.

    Events run in time order on the fake clock; a 429 waits its ``Retry-After`` (whole seconds, as
    the server sends it) before the caller asks for a turn again, as the transport does.
    """
    clock = Clock()
    pacer = Pacer(clock=clock)
    knobs = Knobs()
    knobs.set_rate_limit(per_second, bucket)
    seen = Burst()
    events: list[tuple[float, int, str, int]] = []
    order = 0
    queue: list[int] = []
    gate_free_at = clock.now
    left = dict.fromkeys(range(callers), each)
    attempt = dict.fromkeys(range(callers), 0)

    def at(when: float, kind: str, caller: int) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (when, order, kind, caller))

    for caller in range(callers):
        at(clock.now, "want", caller)
    while events:
        clock.now, _, kind, caller = heapq.heappop(events)
        if kind == "want":
            queue.append(caller)
        elif kind == "send":
            retry_after = knobs.take_token(clock.now)
            at(clock.now + latency, "ok" if retry_after is None else f"429:{retry_after}", caller)
        elif kind == "ok":
            pacer.accepted()
            seen.done += 1
            seen.attempts.append(attempt[caller] + 1)
            attempt[caller] = 0
            left[caller] -= 1
            if left[caller]:
                at(clock.now, "want", caller)
        elif kind.startswith("429"):
            pacer.rate_limited()
            seen.rejected += 1
            assert pacer.rate is not None
            seen.rates_after_429.append(pacer.rate)
            if pacer.measured is not None:
                seen.measured.append(pacer.measured)
            attempt[caller] += 1
            if attempt[caller] > max_retries:
                seen.failures += 1
                attempt[caller] = 0
                left[caller] -= 1
                if left[caller]:
                    at(clock.now, "want", caller)
            else:
                at(clock.now + float(kind.split(":")[1]), "want", caller)
        # The gate: one caller at a time waits for its slot, as Pacer.take_turn.
        if queue and gate_free_at <= clock.now:
            head = queue.pop(0)
            wait = pacer.reserve(clock.now + 60)
            assert wait is not None
            gate_free_at = clock.now + wait
            at(gate_free_at, "send", head)
    return seen


LIMITS = [(20, 20), (20, 1), (100, 10), (5, 50), (2, 2)]
"""Server rate and burst: the figure-4 shape, a burst as large as the rate, none, a huge one, a crawl."""


@pytest.mark.parametrize(("per_second", "bucket"), LIMITS)
def test_a_burst_of_50_callers_never_runs_out_of_retries(per_second: float, bucket: float) -> None:
    seen = simulate(per_second, bucket, callers=50, each=10)
    assert seen.failures == 0
    assert seen.done == 500
    assert seen.attempts.count(1) >= 2 / 3 * 500, "most fetches never saw a 429"


@pytest.mark.parametrize(("per_second", "bucket"), LIMITS)
def test_once_measured_the_pace_stays_near_what_the_server_allowed(per_second: float, bucket: float) -> None:
    """An estimate can read high by the burst the server had saved up (counted in the recent
    window), never more; after the last 429 of the burst the pace is within 10% of the limit."""
    seen = simulate(per_second, bucket, callers=50, each=10)
    assert seen.measured, "the limit was measured at least once"
    assert max(seen.measured) <= per_second + (bucket + 1) / RECENT
    assert seen.rates_after_429[-1] <= per_second * 1.1


# -- a real burst over HTTPS ------------------------------------------------------------------------


def test_a_real_burst_of_50_fetches_against_20_per_second(
    vault: Vault, token_cache: TokenCache, events: Events
) -> None:
    """50 threads, one client, default retries, a dev server limited to 20/s with a burst of 20;
    its pacer injected, so what it learned is read from the test's own object."""
    own = Pacing.local()
    client = ConjurClient(vault.conjur_config(deadline=60.0, pacing=own), token_cache=token_cache, on_event=events)
    client.authenticate()
    vault.rate_limit(20, burst=20)
    failures: list[str] = []
    values: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def fetch_twice(record: Callable[[str], None]) -> None:
        start.wait()
        for _ in range(2):
            try:
                record(client.get_secret("prod/db/password"))
            except CyberArkError as exc:
                with lock:
                    failures.append(type(exc).__name__)

    def record(value: str) -> None:
        with lock:
            values.append(value)

    threads = [threading.Thread(target=fetch_twice, args=(record,)) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert failures == []
    assert values == ["Demo-PG-Passw0rd!"] * 100
    assert events.named("rate_limited"), "the burst did reach the limit"
    pacer = own.pacer(vault.url.rstrip("/"))
    assert pacer.rate is not None, "the 429s set a pace"
    assert pacer.rate <= 20 + (20 + 1) / RECENT, "never above the limit plus the saved-up burst"


# -- one schedule for every process of the machine --------------------------------------------------


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "origin.pacer"


def on_file(clock: Clock, path: Path) -> Pacer:
    """A pacer as one process would hold it, sharing the schedule in ``path`` where it can."""
    return Pacer(store=open_store(path, clock()), clock=clock)


def test_two_processes_pace_against_one_schedule(clock: Clock, state_file: Path) -> None:
    """Each counts the other's acceptances, sees the other's cut and queues behind its slots."""
    first, second = on_file(clock, state_file), on_file(clock, state_file)
    assert first.shared and second.shared
    for _ in range(5):
        first.accepted()
        second.accepted()
    second.rate_limited()
    assert first.rate == pytest.approx(10 / RECENT), "both processes' acceptances, not one's"
    first.rate_limited()  # an echo in the same episode, from the other process
    assert second.rate == pytest.approx(10 / RECENT)
    assert first.reserve(clock.now + 60) == 0.0
    assert second.reserve(clock.now + 60) == pytest.approx(RECENT / 10), "after the other's slot"
    assert first.reserve(clock.now + 60) == pytest.approx(2 * RECENT / 10)
    clock.now += QUIET_RELEASE
    assert second.reserve(clock.now + 60) == 0.0
    assert first.rate is None, "released for both"


def test_a_new_process_starts_from_what_the_others_learned(clock: Clock, state_file: Path) -> None:
    burst_pacer = on_file(clock, state_file)
    for _ in range(6):
        burst_pacer.accepted()
    burst_pacer.rate_limited()
    later = on_file(clock, state_file)
    assert later.rate == pytest.approx(6 / RECENT)
    MACHINE_WIDE.forget()  # forgets only the default's origins; this file was opened by hand
    assert later.rate is not None
    later.forget()
    assert burst_pacer.rate is None


def _works(pacer: Pacer, clock: Clock) -> None:
    """Unpaced at first, then paced from its acceptances like any pacer."""
    assert pacer.rate is None
    assert pacer.take_turn(clock.now + 60, lambda _: None)
    for _ in range(3):
        pacer.accepted()
    pacer.rate_limited()
    assert pacer.rate == pytest.approx(3 / RECENT)


GARBAGE = {
    "empty": b"",
    "truncated": b"CAOPACE\x00\x02",
    "zeros": bytes(pacing.SIZE),
    "random": bytes(range(256)) * (pacing.SIZE // 256 + 1),
    "another layout": b"CAOPACE\x00" + struct.pack("=II", 1, 4096) + bytes(40_000),
}


@pytest.mark.parametrize("content", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_file_holding_anything_else_is_rewritten_as_unpaced(clock: Clock, state_file: Path, content: bytes) -> None:
    state_file.write_bytes(content)
    pacer = on_file(clock, state_file)
    assert pacer.shared
    _works(pacer, clock)


def _valid_file(clock: Clock, state_file: Path, **fields: float) -> None:
    """A file of the right layout whose header holds ``fields`` (the rest as a fresh pacer's)."""
    on_file(clock, state_file)
    values = {"rate": 50.0, "measured": 0.0, "last_slot": clock.now, "last_cut": clock.now, "last_change": clock.now}
    values.update(fields)
    with state_file.open("r+b") as file:
        file.seek(16)
        file.write(struct.pack("=5d", *values.values()))


@pytest.mark.parametrize(
    "fields",
    [
        {"rate": math.nan},
        {"rate": math.inf},
        {"rate": -5.0},
        {"measured": math.nan},
        {"last_cut": math.nan},
        {"last_slot": math.inf},
        {"last_cut": 1e12},  # from before a reboot: a clock far ahead of this boot's
        # Rates the pacer never sets (below MIN_RATE, above its ceiling): a forged 1e-300 held
        # every slot past any deadline ("rate limited (HTTP 429) after 0 attempt(s)").
        {"rate": 1e-300},
        {"rate": 0.5},
        {"rate": 1e300},
        {"measured": 1e-300},
        {"measured": 1e300},
    ],
    ids=str,
)
def test_nonsense_values_are_rewritten_as_unpaced(clock: Clock, state_file: Path, fields: dict[str, float]) -> None:
    _valid_file(clock, state_file, **fields)
    _works(on_file(clock, state_file), clock)


def test_a_file_spoiled_while_in_use_is_survived(clock: Clock, state_file: Path) -> None:
    pacer = on_file(clock, state_file)
    pacer.accepted()
    pacer.rate_limited()
    assert pacer.rate is not None
    state_file.write_bytes(GARBAGE["random"][: pacing.SIZE])
    clock.now += 1
    assert pacer.take_turn(clock.now + 60, lambda _: None)
    assert pacer.rate is None
    # Cut shorter than the mapping: the next locked step restores its length before reading it.
    os.truncate(state_file, 0)
    pacer.rate_limited()
    assert state_file.stat().st_size == pacing.SIZE
    assert pacer.rate == MIN_RATE, "a first 429 on a fresh schedule, with no acceptances counted"


def test_where_no_file_can_be_made_each_process_paces_alone(
    clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    pacer = on_file(clock, blocker / "origin.pacer")
    assert not pacer.shared
    _works(pacer, clock)
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(blocker / "pacing"))
    assert pacing.state_directory() is None
    assert not Pacing.machine_wide().pacer("https://unwritable.example:1").shared
    assert not Pacing.machine_wide(blocker / "pacing").pacer("https://unwritable.example:1").shared


def test_a_directory_others_may_enter_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever can write there could slow our fetches with a made-up rate."""
    directory = tmp_path / "pacing"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(directory))
    assert pacing.state_directory() == directory
    directory.chmod(0o777)
    assert pacing.state_directory() is None
    link = tmp_path / "link"
    link.symlink_to(directory)
    directory.chmod(0o700)
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(link))
    assert pacing.state_directory() is None


def test_the_default_directory_is_the_users_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIRECTORY_VARIABLE)
    directory = pacing.state_directory()
    assert directory is not None
    assert directory.name == f"cyberark-ops-pacing-{os.getuid()}"
    assert directory.stat().st_mode & 0o777 == 0o700
    origin = "https://vault.example:443"
    file = pacing.state_file(origin)
    assert file is not None and file.parent == directory
    assert "vault" not in file.name


def test_four_processes_share_one_pacer_against_a_rate_limited_server(vault: Vault) -> None:
    """Four spawned task processes, one client each, default retries, a server limited to 20/s."""
    vault.rate_limit(20, burst=5)
    settings = {"base_url": vault.url, "ca_bundle": vault.ca, "account": vault.account, "deadline": 60.0}
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_pacing_worker.fetch, args=(settings, HOST_LOGIN, HOST_API_KEY, 15, start, results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    try:
        start.set()
        reports = [results.get(timeout=240) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    assert [r["failures"] for r in reports] == [[]] * 4
    assert all(r["values"] == ["Demo-PG-Passw0rd!"] * 15 for r in reports)
    assert all(r["shared"] for r in reports), "each process used the machine's pacer"
    here = MACHINE_WIDE.pacer(vault.url.rstrip("/"))
    assert here.shared
    assert here.rate is not None, "their 429s set one pace, which this process sees too"
