"""What every figure shares: the dev server in its own process, the seed, timing and the table rows.

The server runs as a separate ``cyberark-ops devserver`` process so that it does not compete with
the measured client for one GIL: the client and the server each get a core, as in production.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import yaml

from cyberark_ops.devserver.seed import demo_seed

HOST_LOGIN = "host/airflow/worker"
HOST_API_KEY = "c3m1acy12jr30a9xs415hhfcyjceajy2zrv74ksr54cn3eaem87vtk6"
SECRET_ID = "prod/db/password"  # noqa: S105 - a variable id, not a value
BATCH_IDS = [f"bench/batch/secret-{i:02d}" for i in range(1, 51)]
BACKEND_ENV = "bench"
BACKEND_IDS = [f"bench_{i}" for i in range(10)]
CCP_APP, CCP_SAFE, CCP_OBJECT = "AirflowProd", "DB-Prod", "pg-prod"


def bench_seed() -> dict[str, Any]:
    """The demo seed plus 50 batch variables and 10 connections for the secrets backend."""
    seed = copy.deepcopy(demo_seed())
    conjur = seed["conjur"]
    conjur["variables"] += [{"id": vid, "value": f"bench-value-{i:02d}"} for i, vid in enumerate(BATCH_IDS, 1)]
    conjur["variables"] += [
        {"id": f"airflow/{BACKEND_ENV}/connections/{cid}", "value": f"sqlite:////tmp/{cid}.sqlite"}
        for cid in BACKEND_IDS
    ]
    conjur["permits"].append(
        {
            "role": f"host:{HOST_LOGIN.removeprefix('host/')}",
            "privileges": ["read", "execute"],
            "resources": ["bench/*"],
        }
    )
    return seed


@dataclass
class Row:
    """One line of the results table; ``met`` is None for reference rows that have no target."""

    figure: str
    what: str
    measured: str
    ratio: str
    target: str
    met: bool | str | None

    def cells(self) -> list[str]:
        if isinstance(self.met, str):
            status = self.met
        else:
            status = {True: "met", False: "**missed**", None: "reference"}[self.met]
        return [self.figure, self.what, self.measured, self.ratio, self.target, status]


@dataclass
class Config:
    """Iteration counts; ``--quick`` shrinks every one of them (the smoke test's mode)."""

    quick: bool
    latency_n: int = 2000
    sdk_n: int = 150
    cold_n: int = 150
    batch_reps: int = 15
    backend_lookups: int = 1000
    concurrency_n: int = 500
    concurrency_rate: float = 100.0
    scrub_bytes: int = 50_000_000
    scrub_repeats: int = 3
    operator_n: int = 200
    throughput_seconds: float = 4.0
    import_rounds: int = 7
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, quick: bool) -> Config:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            latency_n=100,
            sdk_n=10,
            cold_n=10,
            batch_reps=2,
            backend_lookups=100,
            concurrency_n=30,
            concurrency_rate=30.0,
            scrub_bytes=2_000_000,
            scrub_repeats=1,
            operator_n=10,
            throughput_seconds=1.0,
            import_rounds=1,
        )


def median(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def interleaved(scenarios: Mapping[str, tuple[Callable[[], object], int]], rounds: int = 10) -> dict[str, list[float]]:
    """Times each scenario's operation ``n`` times, in ``rounds`` shuffled turns.

    A drift in machine speed (four agents share two cores) then hits every scenario alike, which
    is what makes a ratio between them meaningful.
    """
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    names = list(scenarios)
    rnd = random.Random(17)
    for work, n in scenarios.values():  # warm-up: connections, tokens, caches
        for _ in range(max(2, n // 20)):
            work()
    for r in range(rounds):
        rnd.shuffle(names)
        for name in names:
            work, n = scenarios[name]
            share = n // rounds + (1 if r < n % rounds else 0)
            timer = time.perf_counter
            spent = samples[name]
            for _ in range(share):
                start = timer()
                work()
                spent.append(timer() - start)
    return samples


class Server:
    """A ``cyberark-ops devserver`` process on loopback over TLS, with its admin API at hand."""

    def __init__(self, state_dir: Path, seed: Mapping[str, Any] | None = None) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        seed_file = state_dir / "seed.yaml"  # YAML: the demo seed holds a binary value
        seed_file.write_text(yaml.safe_dump(dict(seed) if seed is not None else bench_seed()))
        exe = Path(sys.executable).with_name("cyberark-ops")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "cyberark_ops.cli"]
        self._proc = subprocess.Popen(  # noqa: S603 - our own entry point with fixed arguments
            [*command, "devserver", "--seed", str(seed_file), "--state-dir", str(state_dir / "server")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(10)
            raise RuntimeError(f"the dev server exited with {self._proc.returncode} before printing its address")
        self.info: dict[str, Any] = json.loads(line)
        self.url: str = self.info["url"]
        self.ca: str = self.info["ca_cert"]
        self.account: str = self.info["conjur_account"]
        self._admin = requests.Session()
        self._admin.trust_env = False
        self._admin.headers["Authorization"] = f"Bearer {self.info['admin_token']}"

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self._admin.request(method, f"{self.url}/_dev{path}", json=body, verify=self.ca, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def set_rate_limit(self, per_second: float | None, burst: float | None = None) -> None:
        self.admin("PUT", "/rate-limit", {"per_second": per_second, "burst": burst})

    def audit_since(self, seq: int = 0, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in {"since": str(seq), **filters}.items())
        answer: dict[str, Any] = self.admin("GET", f"/audit?{query}")
        events: list[dict[str, Any]] = answer["events"]
        return events

    @contextmanager
    def counting(self, api: str = "conjur") -> Iterator[list[dict[str, Any]]]:
        """Collects the vault calls (audit events of ``api``) made inside the block.

        The in-memory audit is cleared first (the sequence keeps counting), so the read after the
        block holds only this block's events.
        """
        self.admin("DELETE", "/audit")
        found: list[dict[str, Any]] = []
        yield found
        found.extend(self.audit_since(0, api=api))

    def close(self) -> None:
        self._admin.close()
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)


def raw_token_header(server: Server, session: requests.Session) -> dict[str, str]:
    """Authenticates by hand (``Accept-Encoding: base64``) and builds the ``Authorization`` header."""
    login = quote(HOST_LOGIN, safe="")
    response = session.post(
        f"{server.url}/authn/{server.account}/{login}/authenticate",
        data=HOST_API_KEY,
        headers={"Accept-Encoding": "base64", "Content-Type": "text/plain"},
        verify=server.ca,
        timeout=30,
    )
    response.raise_for_status()
    return {"Authorization": f'Token token="{response.text}"'}


def quiet_environment() -> None:
    """No proxy may sit between the benchmark and loopback."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
