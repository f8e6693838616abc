"""One pacer, composed: a fixed or adaptive algorithm over a local or shared store, chosen per
config through ``TransportConfig.pacing`` instead of a module global or an environment variable."""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import pytest

from cyberark_ops.client import ConfigurationError, ConjurClient, TokenCache, TransportConfig
from cyberark_ops.client.pacing import (
    MACHINE_WIDE,
    AdaptiveRate,
    FixedRate,
    LocalStore,
    Pacer,
    Pacing,
    SharedFileStore,
    next_slot,
    state_file,
)

from .conftest import Vault


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_one_slot_follows_the_last_at_the_rate_or_is_now() -> None:
    assert next_slot(10.0, 9.5, 2.0) == 10.0
    assert next_slot(10.0, 9.75, 2.0) == 10.25
    assert next_slot(10.0, -float("inf"), 1.0) == 10.0


def test_a_fixed_rate_paces_from_the_first_request_and_keeps_its_rate_after_a_429() -> None:
    clock = Clock()
    pacer = Pacer(FixedRate(4.0), LocalStore(), clock=clock)
    assert [pacer.reserve(clock.now + 60) for _ in range(3)] == [0.0, 0.25, 0.5]
    pacer.rate_limited()
    assert pacer.rate == 4.0, "the user's figure, not one learned from 429s"
    assert pacer.next_free() == pytest.approx(0.75)
    assert pacer.reserve(clock.now + 0.5) is None, "the next slot lies beyond the deadline"
    assert pacer.next_free() == pytest.approx(0.75), "a refused slot is not taken"


def test_a_fixed_rate_below_the_adaptive_floor_is_kept() -> None:
    """``rate_limit_per_second`` may be 0.01; only the adaptive pacer never goes below 1/s."""
    clock = Clock()
    pacer = Pacer(FixedRate(0.01), clock=clock)
    assert pacer.reserve(clock.now + 5) == 0.0
    assert pacer.reserve(clock.now + 5) is None
    assert pacer.next_free() == pytest.approx(100.0)


def test_a_fixed_rate_sleeps_each_caller_its_own_wait() -> None:
    clock = Clock()
    slept: list[float] = []
    pacer = Pacer(FixedRate(10.0), clock=clock)
    assert all(pacer.take_turn(clock.now + 60, slept.append) for _ in range(3))
    assert slept == [pytest.approx(0.1), pytest.approx(0.2)]


def test_the_default_pacer_is_adaptive_over_this_process_memory() -> None:
    pacer = Pacer()
    assert not pacer.shared
    assert "AdaptiveRate" in repr(pacer) and "LocalStore" in repr(pacer)
    assert pacer.reserve(time.monotonic() + 60) == 0.0 and pacer.rate is None


def test_one_pacing_serves_one_pacer_per_origin() -> None:
    pacing = Pacing.local()
    assert pacing.pacer("https://a:443") is pacing.pacer("https://a:443")
    assert pacing.pacer("https://a:443") is not pacing.pacer("https://b:443")
    assert Pacing.local().pacer("https://a:443") is not pacing.pacer("https://a:443"), "nothing global"


def test_what_a_pacing_learned_is_forgotten_with_it() -> None:
    pacing = Pacing.local()
    pacer = pacing.pacer("https://a:443")
    pacer.rate = 5.0
    pacing.forget()
    assert pacer.rate is None
    assert pacing.pacer("https://a:443") is not pacer


def test_a_forked_child_builds_its_own_pacers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its parent's file descriptors carry the parent's flock; the child must open its own."""
    pacing = Pacing.local()
    parents = pacing.pacer("https://a:443")
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)
    assert pacing.pacer("https://a:443") is not parents


def test_a_directory_is_injected_without_the_environment(tmp_path: Path) -> None:
    directory = tmp_path / "pacing"
    pacing = Pacing.machine_wide(directory)
    pacer = pacing.pacer("https://vault.example:443")
    assert pacer.shared
    path = state_file("https://vault.example:443", directory)
    assert path is not None and path.parent == directory and path.exists()
    pacer.rate = 7.0
    other_process = Pacer(AdaptiveRate(), SharedFileStore.open(path, time.monotonic()))
    assert other_process.rate == 7.0
    assert str(tmp_path) not in repr(pacer)


def test_a_config_carries_its_pacing_through_copies() -> None:
    config = TransportConfig(base_url="https://vault.example")
    assert config.pacing is MACHINE_WIDE
    own = Pacing.local()
    mine = dataclasses.replace(config, pacing=own)
    assert mine.pacing is own and copy.deepcopy(mine).pacing is own
    assert mine == config, "how requests are paced is not part of what the config says to reach"
    with pytest.raises(ConfigurationError) as raised:
        TransportConfig(base_url="https://vault.example", pacing="fast")  # type: ignore[arg-type]
    assert raised.value.field == "pacing"


def test_requests_take_their_slots_from_the_injected_pacer(vault: Vault, token_cache: TokenCache) -> None:
    own = Pacing.fixed(5.0)
    with ConjurClient(vault.conjur_config(pacing=own), token_cache=token_cache) as client:
        client.authenticate()
        started = time.monotonic()
        for _ in range(3):
            assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
        elapsed = time.monotonic() - started
    assert elapsed >= 2 / 5, "three requests at 5/s span at least two gaps"
    assert own.pacer(vault.url.rstrip("/")).rate == 5.0
