"""The hook's metrics, as StatsD packets on the wire, for every fetch outcome.

A subprocess (``scripts/hook_metrics.py``) configured only through ``AIRFLOW__METRICS__*`` runs
fetches against an in-process dev server: a success, a batch, a NotFound, two 503s then success,
one 429 then success, a 429 asking to wait beyond the deadline, and a revoked token. This test listens on the
UDP port it gave Airflow and checks each metric against what the dev server's audit log says
really happened. ``statsd_influxdb_enabled`` is on because plain StatsD has no tags: without it,
Airflow's StatsD logger drops ``api``/``action``/``kind`` and only the bare names arrive.
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cyberark_ops.devserver import DevServer
from tests.airflow import PYTHON, SCRIPTS, airflow_env, connection, run, vault_calls
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN

pytestmark = pytest.mark.airflow

PREFIX = "cyberark_it"
SECRET = "Demo-PG-Passw0rd!"


@dataclass(frozen=True)
class Packet:
    name: str
    tags: dict[str, str]
    value: float
    kind: str


@dataclass
class Run:
    result: subprocess.CompletedProcess[str]
    raw: list[str]
    packets: list[Packet]
    calls: list[dict[str, Any]]

    def named(self, name: str) -> list[Packet]:
        return [p for p in self.packets if p.name == f"{PREFIX}.{name}"]

    @property
    def steps(self) -> dict[str, str]:
        return dict(re.findall(r"^STEP (\S+) (\S+)$", self.result.stdout, re.MULTILINE))


def parse(line: str) -> Packet:
    """``<prefix>.<name>[,k=v...]:<value>|<type>`` (InfluxDB-style tags appended to the name)."""
    stat, _, rest = line.partition(":")
    value, _, kind = rest.partition("|")
    name, *tags = stat.split(",")
    return Packet(name, dict(tag.split("=", 1) for tag in tags), float(value), kind)


def drain(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    sock.settimeout(1.0)
    while True:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return lines
        lines += data.decode().splitlines()


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    home = tmp_path_factory.mktemp("metrics")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        DevServer(state_dir=home / "devserver") as server,
    ):
        sock.bind(("127.0.0.1", 0))
        info = server.info()
        env = airflow_env(
            home / "airflow",
            {
                "AIRFLOW__METRICS__STATSD_ON": "True",
                "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(sock.getsockname()[1]),
                "AIRFLOW__METRICS__STATSD_PREFIX": PREFIX,
                "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
                "AIRFLOW_CONN_CYBERARK_DEFAULT": connection(
                    server, login=HOST_LOGIN, password=HOST_API_KEY, api="conjur", account=info["conjur_account"]
                ),
                "DEVSERVER_URL": info["url"],
                "DEVSERVER_CA": info["ca_cert"],
                "DEVSERVER_ADMIN_TOKEN": info["admin_token"],
            },
        )
        result = run([PYTHON, str(SCRIPTS / "hook_metrics.py")], env, timeout=120)
        raw = drain(sock)
        yield Run(result, raw, [parse(line) for line in raw if line.startswith(PREFIX)], vault_calls(server))


def test_every_step_ended_as_planned(metrics: Run) -> None:
    assert metrics.steps == {
        "success": "success",
        "batch": "success",
        "not_found": "NotFound",
        "retried_503": "success",
        "rate_limited_429": "success",
        "exhausted_429": "RateLimited",
        "token_renewal": "success",
    }


def test_fetch_duration_is_one_timing_per_successful_fetch(metrics: Run) -> None:
    timings = metrics.named("cyberark.fetch.duration")
    assert {p.kind for p in timings} == {"ms"}
    assert Counter(p.tags["action"] for p in timings) == {"get_secret": 4, "get_secrets": 1}
    assert {p.tags["api"] for p in timings} == {"conjur"}
    # The same milliseconds as the fetch's log line (so a seconds/ms mix-up would show).
    output = metrics.result.stdout + metrics.result.stderr
    logged = re.findall(r"CyberArk fetch api=conjur .* outcome=success duration_ms=([0-9.]+)", output)
    assert len(logged) == len(timings)
    for sent, shown in zip(sorted(p.value for p in timings), sorted(map(float, logged)), strict=True):
        assert abs(sent - shown) <= 0.05 + 1e-9  # the log line rounds to 0.1 ms
    assert all(0 < p.value < 20_000 for p in timings)


def test_errors_are_counted_by_kind(metrics: Run) -> None:
    errors = metrics.named("cyberark.fetch.errors")
    assert {p.kind for p in errors} == {"c"}
    assert Counter((p.tags["api"], p.tags["kind"]) for p in errors) == {
        ("conjur", "NotFound"): 1,
        ("conjur", "RateLimited"): 1,
    }


def test_retries_count_every_request_sent_again(metrics: Run) -> None:
    statuses = Counter(e["status"] for e in metrics.calls if e["action"] == "conjur.retrieve")
    assert (statuses[503], statuses[429]) == (2, 2)
    retries = metrics.named("cyberark.retries")
    # Every 503/429 was retried, except the 429 whose Retry-After lay beyond the deadline.
    assert sum(p.value for p in retries) == statuses[503] + statuses[429] - 1 == 3
    assert {p.tags["api"] for p in retries} == {"conjur"}


def test_rate_limited_counts_each_429_once(metrics: Run) -> None:
    rate_limited = metrics.named("cyberark.rate_limited")
    answered_429 = sum(1 for e in metrics.calls if e["status"] == 429)
    assert sum(p.value for p in rate_limited) == answered_429 == 2
    assert {p.tags["api"] for p in rate_limited} == {"conjur"}


def test_token_renewals_count_the_first_token_and_the_one_after_revocation(metrics: Run) -> None:
    renewals = metrics.named("cyberark.token_renewals")
    assert sum(p.value for p in renewals) == 2
    actions = [(e["action"], e["status"]) for e in metrics.calls]
    assert actions.count(("conjur.authenticate", 200)) == 2
    assert ("conjur.retrieve", 401) in actions  # the revoked token was refused once, then renewed


def test_packets_carry_no_secret_and_no_object_name(metrics: Run) -> None:
    assert metrics.raw, "no StatsD packet arrived"
    for line in metrics.raw:
        assert SECRET not in line
        assert "prod/db" not in line
