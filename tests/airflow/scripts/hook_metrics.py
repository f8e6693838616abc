"""Subprocess entry point for ``tests/airflow/test_metrics.py``: hook fetches that emit metrics.

Outside a task nothing initialises the Task SDK's ``Stats`` (it stays a no-op logger), so this
script does what ``airflow.sdk.execution_time.task_runner.main()`` does first thing in every task
process: ``stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=...)``,
which reads ``[metrics] statsd_*`` from the environment. Then it runs one fetch per outcome,
steering the dev server through its admin API (faults, token revocation) between fetches.

Environment: ``AIRFLOW_CONN_CYBERARK_DEFAULT`` (a Conjur connection), ``DEVSERVER_URL``,
``DEVSERVER_CA``, ``DEVSERVER_ADMIN_TOKEN`` and the ``AIRFLOW__METRICS__*`` settings.
Prints one ``STEP <name> <outcome>`` line per fetch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import requests


def admin(method: str, path: str, body: dict[str, Any] | None = None) -> None:
    response = requests.request(
        method,
        os.environ["DEVSERVER_URL"] + "/_dev" + path,
        json=body,
        headers={"Authorization": f"Bearer {os.environ['DEVSERVER_ADMIN_TOKEN']}"},
        verify=os.environ["DEVSERVER_CA"],
        timeout=10,
    )
    response.raise_for_status()


def main() -> int:
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    stats.initialize(
        factory=stats_utils.get_stats_factory(),
        export_legacy_names=conf.getboolean("metrics", "legacy_names_on"),
    )

    from cyberark_ops import CyberArkHook
    from cyberark_ops.client import CyberArkError

    hook = CyberArkHook("cyberark_default")

    def step(name: str, fetch: Callable[[], object]) -> None:
        try:
            fetch()
            outcome = "success"
        except CyberArkError as exc:
            outcome = type(exc).__name__
        print(f"STEP {name} {outcome}", flush=True)

    # Authenticates (the first token: one renewal), then one retrieve.
    step("success", lambda: hook.get_secret("prod/db/password"))
    step("batch", lambda: hook.get_secrets(["prod/db/username", "prod/db/dbname"]))
    step("not_found", lambda: hook.get_secret("prod/db/nope"))
    # Two 503s, then the third attempt goes through: two retries, one successful fetch.
    admin("POST", "/faults", {"endpoint": "conjur.retrieve", "status": 503, "count": 2})
    step("retried_503", lambda: hook.get_secret("prod/db/username"))
    # One 429 with Retry-After: 0, then success: rate limited once, retried once.
    admin("POST", "/faults", {"endpoint": "conjur.retrieve", "status": 429, "count": 1, "retry_after": 0})
    step("rate_limited_429", lambda: hook.get_secret("prod/db/host"))
    # A 429 whose Retry-After lies beyond the deadline: the fetch fails with RateLimited at once
    # (429s are retried until the deadline, not counted against max_retries).
    admin("POST", "/faults", {"endpoint": "conjur.retrieve", "status": 429, "count": 10, "retry_after": 60})
    step("exhausted_429", lambda: hook.get_secret("prod/db/host"))
    admin("DELETE", "/faults")
    # Every token issued so far is void: the next call gets a 401 and the hook renews its token.
    admin("POST", "/tokens/revoke")
    step("token_renewal", lambda: hook.get_secret("prod/db/port"))
    hook.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
