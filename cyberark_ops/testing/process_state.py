"""What cyberark-ops keeps per process, dropped in one call: for test suites (ours and users').

A task process starts empty and ends, so the product keeps its caches for the process's life: the
token cache, the secrets backend's cache and clients, the fixed-rate budgets, the pacers'
schedules, and the redaction registry. A test process runs many "tasks" in a row, and what one
test left there decides what the next one sees (a cached token hides an authentication failure; a
registered value rewrites the next test's data). Only modules already imported are touched, so a
test of import cost measures what it would measure alone.
"""

from __future__ import annotations

import sys


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


__all__ = ["reset_process_state"]
