"""Hook defects found by trying it as a hostile user would; each test failed before its fix."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import threading
import time
from pathlib import Path

import pytest

from cyberark_ops import CyberArkHook
from cyberark_ops.client import ConfigurationError, RateLimited
from cyberark_ops.client.conjur import ConjurClient
from cyberark_ops.settings import ConnectionSettings
from tests.client.conftest import HOST_API_KEY
from tests.hooks.conftest import Connections
from tests.versions import needs_airflow

# Airflow 3.1 builds an env-var connection with core's Connection, which refuses such extras itself;
# the secrets chain swallows that and reports the conn_id as undefined, so the hook never sees them.
hook_sees_bad_extras = needs_airflow("3.2", "3.1 refuses a non-object extra before the hook reads it")


def _raw_connection(conns: Connections, monkeypatch: pytest.MonkeyPatch, conn_id: str, extra: str) -> str:
    conn = {"conn_type": "cyberark", "host": conns.info["url"], "login": "host/x", "password": "k", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


@hook_sees_bad_extras
@pytest.mark.parametrize("extra", ["[1, 2]", '"abc"', "42", "null"])
def test_extras_that_are_json_but_not_an_object_are_named(
    conns: Connections, monkeypatch: pytest.MonkeyPatch, extra: str
) -> None:
    hook = CyberArkHook(_raw_connection(conns, monkeypatch, "shape", extra))
    with pytest.raises(ConfigurationError, match="extra: must be a JSON object") as raised:
        hook.get_secret("prod/db/password")
    assert raised.value.field == "extra"


@hook_sees_bad_extras
def test_unparseable_extras_are_named(conns: Connections, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = CyberArkHook(_raw_connection(conns, monkeypatch, "broken", '{"account": "demo",'))
    with pytest.raises(ConfigurationError, match="extra: is not valid JSON"):
        hook.get_secret("prod/db/password")


@pytest.mark.parametrize("value", ["NaN", "inf", "-inf", 1e12, True, "1e999"])
def test_non_finite_numbers_in_extras_are_refused(conns: Connections, value: object) -> None:
    hook = CyberArkHook(conns.conjur("numbers", deadline=value))
    with pytest.raises(ConfigurationError) as raised:
        hook.get_secret("prod/db/password")
    assert raised.value.field == "deadline"
    assert conns.calls() == []


@pytest.mark.parametrize("value", [1e-9, 0, -1, "NaN", "inf", 1e9])
def test_rate_budgets_out_of_range_are_refused(conns: Connections, value: object) -> None:
    hook = CyberArkHook(conns.conjur("budget", rate_limit_per_second=value))
    with pytest.raises(ConfigurationError, match="rate_limit_per_second"):
        hook.get_secret("prod/db/password")


def test_the_rate_budget_wait_is_bounded_by_the_deadline(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur("slow_budget", rate_limit_per_second=0.01, deadline=5))
    assert hook.get_secret("prod/db/password")
    started = time.monotonic()
    with pytest.raises(RateLimited, match="rate_limit_per_second") as raised:
        hook.get_secret("prod/db/username")
    assert time.monotonic() - started < 1
    assert raised.value.retry_after is not None and raised.value.retry_after > 5


def test_a_binary_api_key_file_is_a_configuration_error(conns: Connections, tmp_path: Path) -> None:
    key_file = tmp_path / "key.bin"
    key_file.write_bytes(b"\xff\xfe\x00binary")
    hook = CyberArkHook(conns.conjur("binary", password=None, api_key_file=str(key_file)))
    with pytest.raises(ConfigurationError, match="api_key_file") as raised:
        hook.get_secret("prod/db/password")
    assert raised.value.field == "api_key_file"


@pytest.mark.parametrize("path", ["prod/db/password\n", "prod/db/password\r\n", " prod/db/password"])
def test_ids_with_crlf_or_whitespace_are_refused_not_stripped(conns: Connections, path: str) -> None:
    hook = CyberArkHook(conns.conjur())
    with pytest.raises(ConfigurationError):
        hook.get_secret(path)
    assert [e for e in conns.calls() if e["action"] == "conjur.retrieve"] == []


def test_a_huge_id_gives_a_short_error_and_a_short_log_line(
    conns: Connections, caplog: pytest.LogCaptureFixture
) -> None:
    hook = CyberArkHook(conns.conjur())
    with pytest.raises(ConfigurationError) as raised:
        hook.get_secret("a" * 100_000)
    assert len(str(raised.value)) < 400
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)


def test_threads_sharing_one_hook_build_one_client(conns: Connections, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    original = ConjurClient.__init__

    def counting_init(self: ConjurClient, *args: object, **kwargs: object) -> None:
        time.sleep(0.05)  # widen the race window
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        built.append(self)

    monkeypatch.setattr(ConjurClient, "__init__", counting_init)
    hook = CyberArkHook(conns.conjur())
    barrier = threading.Barrier(8)
    results: list[str] = []

    def fetch() -> None:
        barrier.wait()
        results.append(hook.get_secret("prod/db/password"))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(built) == 1
    hook.close()


def test_pickled_or_copied_hooks_carry_no_api_key(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    assert hook.api == "conjur"
    hook.get_secret("prod/db/password")
    data = pickle.dumps(hook)
    assert HOST_API_KEY.encode() not in data
    clone = pickle.loads(data)
    assert clone.get_secret("prod/db/password") == hook.get_secret("prod/db/password")
    assert HOST_API_KEY not in repr(copy.deepcopy(hook).__dict__)
    hook.close()
    clone.close()


def test_connection_settings_refuse_pickle_and_asdict(conns: Connections) -> None:
    settings = CyberArkHook(conns.conjur(api_key=HOST_API_KEY, password=None)).settings
    assert isinstance(settings, ConnectionSettings)
    assert HOST_API_KEY not in repr(settings)
    with pytest.raises(TypeError):
        pickle.dumps(settings)
    with pytest.raises(TypeError):
        dataclasses.asdict(settings)  # type: ignore[call-overload]


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
