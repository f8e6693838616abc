"""``CyberArkHook``'s async methods on one event loop, against the dev server over HTTPS.

A fetch blocking the loop is measured by a heartbeat coroutine: how many beats it got in before
the first fetch returned, never how long anything took. The dev server's latency knob makes each
answer slow enough for a blocking fetch to show (no beat at all) and a non-blocking one not to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from airflow.sdk.log import redact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberark_ops import Credential, CyberArkHook
from cyberark_ops.client import AuthenticationFailed, ConfigurationError, NotFound
from cyberark_ops.fetch import MAX_WORKER_FETCHES, _workers, wait_for_workers
from cyberark_ops.scrub import SecretTooShort, scrub
from tests.client.conftest import HOST_API_KEY
from tests.hooks.conftest import Connections

DB_PASSWORD = "Demo-PG-Passw0rd!"
BATCH = {f"prod/batch/secret-{n:02d}": f"batch-value-{n:02d}" for n in range(1, 21)}
SLOW = 0.4
"""Seconds the dev server waits before answering a fetch, in the tests that need a slow vault."""


def slow_fetches(conns: Connections, seconds: float = SLOW) -> None:
    conns.server.app.knobs.set_latency("conjur.retrieve", seconds)


def actions(conns: Connections) -> list[str]:
    return [e["action"] for e in conns.calls()]


class Heartbeat:
    """A coroutine beating every few milliseconds; ``beats`` counts the beats so far."""

    def __init__(self) -> None:
        self.beats = 0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.beats += 1

    def __enter__(self) -> Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def beats_before_first_result(fetches: list[Callable[[], Awaitable[Any]]]) -> tuple[int, list[Any]]:
    """Starts every fetch at once beside a heartbeat; the beats counted when the first one returned."""
    with Heartbeat() as heart:
        await asyncio.sleep(0)  # the heartbeat is scheduled before any fetch starts
        started = heart.beats
        tasks = [asyncio.ensure_future(fetch()) for fetch in fetches]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        at_first = heart.beats - started
        results = await asyncio.gather(*tasks)
    return at_first, results


# -- same values, same policy -------------------------------------------------------------------------


def test_async_methods_return_what_the_sync_ones_return(conns: Connections) -> None:
    sync_hook = CyberArkHook(conns.conjur())
    async_hook = CyberArkHook(conns.conjur())

    async def fetch_all() -> tuple[str, dict[str, str], Credential]:
        return (
            await async_hook.aget_secret("prod/db/password"),
            await async_hook.aget_secrets(iter(["prod/db/username", "conjur:prod/api/key?version=2", "with,comma"])),
            await async_hook.aget_credential("prod/db/password"),
        )

    secret, several, credential = asyncio.run(fetch_all())
    assert secret == sync_hook.get_secret("prod/db/password") == DB_PASSWORD
    assert several == sync_hook.get_secrets(["prod/db/username", "conjur:prod/api/key?version=2", "with,comma"])
    assert credential.secret == DB_PASSWORD
    assert DB_PASSWORD not in repr(credential)
    assert redact(f"connecting with {secret}") == "connecting with ***"
    assert scrub({"x": f"pw={secret}"}) == {"x": "pw=***"}
    sync_hook.close()
    async_hook.close()


def test_the_async_batch_is_one_request(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    assert asyncio.run(hook.aget_secrets(list(BATCH))) == BATCH
    assert actions(conns) == ["conjur.authenticate", "conjur.batch"]
    hook.close()


def test_ccp_credential_with_reason_awaited(conns: Connections) -> None:
    hook = CyberArkHook(conns.ccp(), reason="nightly load")
    credential = asyncio.run(hook.aget_credential("Safe=DB-Prod;Object=pg-prod"))
    assert (credential.username, credential.secret) == ("etl_user", "Pg-Pr0d-Dev!")
    (call,) = conns.calls("ccp")
    assert call["reason"] == "airflow nightly load"
    hook.close()


def test_pvwa_opens_and_closes_a_session_per_awaited_fetch(conns: Connections) -> None:
    hook = CyberArkHook(conns.pvwa())

    async def twice() -> list[str]:
        return [await hook.aget_secret("DB-Prod/pg-prod"), await hook.aget_secret("DB-Prod/pg-prod")]

    sync_value = CyberArkHook(conns.pvwa()).get_secret("DB-Prod/pg-prod")
    assert asyncio.run(twice()) == [sync_value, sync_value]
    logons = [a for a in actions(conns) if a.endswith("logon")]
    logoffs = [a for a in actions(conns) if a.endswith("logoff")]
    assert len(logons) == len(logoffs) == 3


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wanted=st.lists(st.sampled_from(sorted(BATCH)), min_size=1, max_size=8))
def test_any_selection_awaited_equals_the_sync_batch(conns: Connections, wanted: list[str]) -> None:
    hook = CyberArkHook(conns.conjur())
    assert asyncio.run(hook.aget_secrets(wanted)) == hook.get_secrets(wanted) == {k: BATCH[k] for k in wanted}
    hook.close()


# -- the loop keeps running -----------------------------------------------------------------------------


def test_a_blocking_fetch_is_what_the_heartbeat_detects(conns: Connections) -> None:
    """The control: the sync method called on the loop holds it, and the heartbeat misses every beat."""
    hook = CyberArkHook(conns.conjur())
    hook.get_secret("prod/db/username")  # the connection and the token, before the slow part
    slow_fetches(conns)

    async def blocking() -> str:
        return hook.get_secret("prod/db/password")

    beats, results = asyncio.run(beats_before_first_result([blocking]))
    assert results == [DB_PASSWORD]
    assert beats == 0
    hook.close()


def test_many_awaits_at_once_keep_the_loop_beating_and_log_on_once(conns: Connections) -> None:
    slow_fetches(conns)
    hook = CyberArkHook(conns.conjur())
    fetches = 3 * MAX_WORKER_FETCHES  # more than the pool: the rest queue without holding the loop

    beats, results = asyncio.run(beats_before_first_result([lambda: hook.aget_secret("prod/db/password")] * fetches))
    assert results == [DB_PASSWORD] * fetches
    assert beats >= 3, "the loop stalled while the fetches waited for the vault"
    # One token shared by every worker thread: one logon for all of them.
    assert actions(conns).count("conjur.authenticate") == 1
    assert actions(conns).count("conjur.retrieve") == fetches
    hook.close()


def test_sync_and_async_fetches_share_one_token(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    hook.get_secret("prod/db/username")
    assert asyncio.run(hook.aget_secret("prod/db/password")) == DB_PASSWORD
    assert actions(conns) == ["conjur.authenticate", "conjur.retrieve", "conjur.retrieve"]
    hook.close()


# -- errors -------------------------------------------------------------------------------------------------


def _sync_and_async_error(hook: CyberArkHook, ref: str) -> tuple[BaseException, BaseException]:
    with pytest.raises(Exception) as sync_error:
        hook.get_secret(ref)
    with pytest.raises(Exception) as async_error:
        asyncio.run(hook.aget_secret(ref))
    return sync_error.value, async_error.value


def test_not_found_is_the_same_error_awaited(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    sync_error, async_error = _sync_and_async_error(hook, "prod/no/such/variable")
    assert type(sync_error) is type(async_error) is NotFound
    assert str(sync_error) == str(async_error)
    assert "prod/no/such/variable" in str(async_error)
    hook.close()


def test_a_wrong_api_key_fails_the_same_and_is_never_shown(conns: Connections) -> None:
    wrong = HOST_API_KEY[::-1]
    hook = CyberArkHook(conns.conjur(password=wrong))
    sync_error, async_error = _sync_and_async_error(hook, "prod/db/password")
    assert type(sync_error) is type(async_error) is AuthenticationFailed
    assert str(sync_error) == str(async_error)
    for error in (sync_error, async_error):
        assert wrong not in str(error) and wrong not in repr(error)
        assert wrong not in repr(error.__cause__) and wrong not in repr(error.__context__)
    hook.close()


def test_an_error_naming_a_fetched_value_is_scrubbed_awaited(conns: Connections) -> None:
    """A value passed where a reference belongs (a hostile or careless caller) is masked in the error."""
    hook = CyberArkHook(conns.conjur())
    value = asyncio.run(hook.aget_secret("prod/db/password"))
    with pytest.raises(NotFound) as error:
        asyncio.run(hook.aget_secret(f"prod/{value}"))
    assert value not in str(error.value) and value not in repr(error.value.args)
    assert "prod/***" in str(error.value)
    hook.close()


def test_a_short_secret_is_refused_the_same_way_awaited(conns: Connections, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET", str(len(DB_PASSWORD) + 1))
    hook = CyberArkHook(conns.conjur(), allow_short_secret=False)
    sync_error, async_error = _sync_and_async_error(hook, "prod/db/password")
    assert type(sync_error) is type(async_error) is SecretTooShort
    assert str(sync_error) == str(async_error)
    assert DB_PASSWORD not in str(async_error)
    hook.close()


def test_a_bad_reference_fails_before_any_call(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    with pytest.raises(ConfigurationError):
        asyncio.run(hook.aget_secret("ccp:Safe=;Object="))
    assert "conjur.retrieve" not in actions(conns)
    hook.close()


def test_an_unknown_connection_is_airflows_not_found(conns: Connections) -> None:
    from cyberark_ops._compat import not_found_error

    with pytest.raises(not_found_error()):
        asyncio.run(CyberArkHook("cyberark_nowhere").aget_secret("prod/db/password"))


def test_each_awaited_fetch_logs_one_line_without_the_value(
    conns: Connections, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cyberark_ops")
    hook = CyberArkHook(conns.conjur())
    asyncio.run(hook.aget_secret("prod/db/password"))
    lines = [r.getMessage() for r in caplog.records if r.name == "cyberark_ops.hooks.cyberark"]
    assert len(lines) == 1 and "outcome=success" in lines[0]
    assert DB_PASSWORD not in caplog.text
    hook.close()


# -- cancellation -------------------------------------------------------------------------------------------


def test_a_cancelled_await_leaves_the_fetched_value_registered_and_no_thread(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    asyncio.run(hook.aget_secret("prod/db/username"))  # connection and token first
    slow_fetches(conns)

    async def cancel_mid_fetch() -> None:
        task = asyncio.ensure_future(hook.aget_secret("prod/db/password"))
        while _workers.running == 0:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_mid_fetch())
    assert wait_for_workers(timeout=30), "a worker thread outlived its fetch"
    # The vault answered the started fetch, and its value was registered whole though nobody got it.
    assert actions(conns).count("conjur.retrieve") == 2
    assert redact(f"pw {DB_PASSWORD}") == "pw ***"
    assert scrub(DB_PASSWORD) == "***"
    hook.close()


def test_a_cancelled_await_still_queued_never_fetches(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    asyncio.run(hook.aget_secret("prod/db/username"))
    slow_fetches(conns)

    async def cancel_queued() -> list[str]:
        busy = [asyncio.ensure_future(hook.aget_secret("prod/db/password")) for _ in range(MAX_WORKER_FETCHES)]
        while _workers.running < MAX_WORKER_FETCHES:
            await asyncio.sleep(0.005)
        queued = asyncio.ensure_future(hook.aget_secret("prod/api/key"))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        return await asyncio.gather(*busy)

    assert asyncio.run(cancel_queued()) == [DB_PASSWORD] * MAX_WORKER_FETCHES
    assert wait_for_workers(timeout=30)
    retrieved = [e["object"] for e in conns.calls() if e["action"] == "conjur.retrieve"]
    assert not [o for o in retrieved if o.endswith("prod/api/key")], "the cancelled fetch reached the vault"
    hook.close()
