"""Figure 7: import cost on top of an already imported Airflow, as a task process sees it.

Each measurement is a fresh interpreter that imports ``airflow.sdk`` first, then times the
baseline imports (``requests``, the client layer's one dependency, plus the Airflow module the
component extends, which its users import anyway), then the component on top of them. The pair
comes from one process, so the machine's load hits both; the figure is the median over rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from ._common import Config, Row, median

FIG = "7 import cost"
TARGET_MS = 10.0
# module -> (label, what it costs anyway: requests plus the Airflow module the component extends)
MODULES = {
    "cyberark_ops": ("the package", "requests"),
    "cyberark_ops.hooks.cyberark": ("the hook", "requests, airflow.sdk.bases.hook"),
    "cyberark_ops.operators.sql": ("the operator module", "requests, airflow.providers.common.sql.operators.sql"),
    "cyberark_ops.secrets": ("the secrets backend", "requests, airflow.secrets.base_secrets"),
}
PROBE = (
    "import time, airflow.sdk\n"
    "t0 = time.perf_counter()\n"
    "import {baseline}\n"
    "t1 = time.perf_counter()\n"
    "import {module}\n"
    "t2 = time.perf_counter()\n"
    "print(t1 - t0, t2 - t1)\n"
)


def _probe(module: str, baseline: str) -> tuple[float, float]:
    """Seconds for the baseline imports, then for ``module`` on top of them, in a fresh interpreter."""
    # A task process loads compiled bytecode; PYTHONDONTWRITEBYTECODE (set in some sandboxes) would
    # make every run compile every module from source instead, Airflow's included.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(  # noqa: S603 - this interpreter with a fixed probe
        [sys.executable, "-c", PROBE.format(module=module, baseline=baseline)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    base, extra = out.stdout.strip().splitlines()[-1].split()
    return float(base), float(extra)


def run(config: Config) -> list[Row]:
    """Each fresh process pairs its own baseline with the module's extra cost, which cancels load drift."""
    base: dict[str, list[float]] = {m: [] for m in MODULES}
    extra: dict[str, list[float]] = {m: [] for m in MODULES}
    requests_only: list[float] = []
    if not config.quick:
        for module, (_, baseline) in MODULES.items():  # bytecode compiled before the first timed run
            _probe(module, baseline)
    # Timed probes run one at a time; a quick run only checks the plumbing, so it runs them at once.
    with ThreadPoolExecutor(len(MODULES) if config.quick else 1) as pool:
        for _ in range(config.import_rounds):
            futures = {module: pool.submit(_probe, module, baseline) for module, (_, baseline) in MODULES.items()}
            for module, future in futures.items():
                b, e = future.result()
                base[module].append(b)
                extra[module].append(e)
                if MODULES[module][1] == "requests":
                    requests_only.append(b)
    rows = [
        Row(
            FIG,
            "`import requests` after `import airflow.sdk` (fresh process)",
            f"median {median(requests_only) * 1000:.1f} ms (n={len(requests_only)})",
            "1.00",
            "—",
            None,
        )
    ]
    for module, (label, baseline) in MODULES.items():
        cost = median(extra[module]) * 1000
        rows.append(
            Row(
                FIG,
                f"`import {module}` ({label}) after `import airflow.sdk` and `import {baseline}`",
                f"+{cost:.1f} ms beyond them ({median(base[module]) * 1000:.0f} ms for them; n={len(extra[module])})",
                f"{cost / (median(requests_only) * 1000):.2f}x `import requests`",
                f"≤ {TARGET_MS:g} ms beyond requests",
                cost <= TARGET_MS,
            )
        )
    return rows
