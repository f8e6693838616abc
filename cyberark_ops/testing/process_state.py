"""What cyberark-ops keeps per process, dropped in one call: for test suites (ours and users').

A task process starts empty and ends, so the product keeps its caches for the process's life: the
token cache, the secrets backend's cache and clients, the fixed-rate budgets, the pacers'
schedules, and the redaction registry. A test process runs many "tasks" in a row, and what one
test left there decides what the next one sees (a cached token hides an authentication failure; a
registered value rewrites the next test's data). Airflow's own secrets masker is one of them: a
task process starts with an empty one, and it compiles one alternation of every value it was ever
given on each new value, so a test process that never emptied it paid more for each registration
than the last (a quarter of a second after a thousand tests). Only modules already imported are
touched, so a test of import cost measures what it would measure alone.
"""

from __future__ import annotations

import sys

AIRFLOW_MASKER_MODULES = (
    "airflow.sdk._shared.secrets_masker.secrets_masker",
    "airflow._shared.secrets_masker.secrets_masker",
    "airflow.sdk.execution_time.secrets_masker",
    "airflow.utils.log.secrets_masker",
)
"""Where Airflow 3.1-3.3 keep a masker singleton (task SDK and core each have their own)."""


def reset_process_state() -> None:
    """Every process-wide cache and registry back to how a new task process finds it.

    The in-process output redaction of a supervised task (``task_redaction.install``) is not undone:
    it patches the process's streams and only exists in task processes, which tests start apart.
    """
    secrets = sys.modules.get("cyberark_ops.secrets")
    if secrets is not None:
        secrets.reset_backend_state()  # closes its clients first (PVWA logs off)
    auth = sys.modules.get("cyberark_ops.client.auth.core")
    if auth is not None:
        auth.PROCESS_TOKEN_CACHE.clear()
    fetch = sys.modules.get("cyberark_ops.fetch")
    if fetch is not None:
        fetch.FIXED_RATE_BUDGETS.clear()
    pacer = sys.modules.get("cyberark_ops.client.pacing.pacer")
    if pacer is not None:
        pacer.MACHINE_WIDE.forget()
    scrub = sys.modules.get("cyberark_ops.scrub")
    if scrub is not None:
        scrub.clear()
    for name in AIRFLOW_MASKER_MODULES:
        reset = getattr(sys.modules.get(name), "reset_secrets_masker", None)
        if reset is not None:
            reset()


__all__ = ["reset_process_state"]
