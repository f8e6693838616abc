"""The shared pacer's schedule, on a fake clock (the only thing these tests patch)."""

from __future__ import annotations

import pytest

from cyberark_ops.client.pacing import QUIET_RELEASE, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limited_after(clock: Clock, sends: int) -> Pacer:
    """A pacer that saw ``sends`` requests within the current second, then one 429."""
    pacer = Pacer(clock)
    for _ in range(sends):
        pacer.reserve(clock.now + 60)
    pacer.rate_limited()
    return pacer


def test_unpaced_until_the_first_429(clock: Clock) -> None:
    pacer = Pacer(clock)
    assert [pacer.reserve(clock.now + 60) for _ in range(100)] == [0.0] * 100
    assert pacer.rate is None


def test_a_429_paces_below_the_measured_rate(clock: Clock) -> None:
    pacer = limited_after(clock, 50)
    # 50 sends in an instant, measured over the shortest window (1 s): 50/s, cut by 0.7.
    assert pacer.rate == pytest.approx(35.0)
    first = pacer.reserve(clock.now + 60)
    second = pacer.reserve(clock.now + 60)
    assert first == pytest.approx(0.0)
    assert second == pytest.approx(1 / 35.0)


def test_429s_of_one_episode_cut_once(clock: Clock) -> None:
    pacer = limited_after(clock, 20)
    for _ in range(29):
        pacer.rate_limited()
    assert pacer.rate == pytest.approx(14.0)


def test_a_slot_beyond_the_deadline_is_refused(clock: Clock) -> None:
    pacer = limited_after(clock, 1)
    assert pacer.rate == pytest.approx(0.7)
    assert pacer.reserve(clock.now + 60) == 0.0
    assert pacer.reserve(clock.now + 1) is None


def test_the_rate_recovers_and_pacing_ends_when_quiet(clock: Clock) -> None:
    pacer = limited_after(clock, 10)
    cut = pacer.rate
    assert cut is not None
    clock.now += 10
    pacer.reserve(clock.now + 60)
    assert pacer.rate is not None and pacer.rate > cut
    clock.now += QUIET_RELEASE
    pacer.reserve(clock.now + 60)
    assert pacer.rate is None


def test_the_rate_never_drops_below_the_floor(clock: Clock) -> None:
    pacer = Pacer(clock)
    for _ in range(200):
        pacer.reserve(clock.now + 1e6)
        pacer.rate_limited()
        clock.now += 1.5
    assert pacer.rate is not None and pacer.rate >= 0.2
