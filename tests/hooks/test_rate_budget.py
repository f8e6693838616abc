"""The hook under rate limits: its own rate budget waits no longer than the deadline, and a burst of
threads rides out the server's 429s with the default settings."""

from __future__ import annotations

import threading
import time

import pytest

from cyberark_ops import CyberArkHook
from cyberark_ops.client import RateLimited
from tests.hooks.conftest import Connections


def test_the_rate_budget_wait_is_bounded_by_the_deadline(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur("slow_budget", rate_limit_per_second=0.01, deadline=5))
    assert hook.get_secret("prod/db/password")
    started = time.monotonic()
    with pytest.raises(RateLimited, match="rate_limit_per_second") as raised:
        hook.get_secret("prod/db/username")
    assert time.monotonic() - started < 1
    assert raised.value.retry_after is not None and raised.value.retry_after > 5


def test_a_burst_of_threads_rides_out_a_server_rate_limit_with_defaults(conns: Connections) -> None:
    """50 threads x 10 fetches through one hook, server limited to 100 requests/s, default retry
    settings and no client-side budget: the shared pacer learns the limit from the 429s."""
    conns.server.app.knobs.set_rate_limit(100, 100)
    hook = CyberArkHook(conns.conjur("burst", max_retries=3, deadline=60))
    failures: list[BaseException] = []
    values: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            try:
                value = hook.get_secret("prod/db/password")
            except Exception as exc:
                with lock:
                    failures.append(exc)
            else:
                with lock:
                    values.append(value)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    limited = [e for e in conns.calls() if e.get("fault") == "rate_limit"]
    print(f"500 fetches in {elapsed:.2f}s ({elapsed / 5:.2f}x N/R), {len(limited)} server 429s")
    assert failures == []
    assert values == ["Demo-PG-Passw0rd!"] * 500
    hook.close()
