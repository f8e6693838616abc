"""Airflow imports that moved between 3.1 and 3.3, resolved once."""

from __future__ import annotations

from typing import Any

try:  # 3.1+
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]

from airflow.sdk.log import mask_secret

try:
    from airflow.sdk.observability.stats import Stats
except ImportError:  # pragma: no cover - older task SDKs
    try:
        from airflow.observability.stats import Stats  # type: ignore[no-redef]
    except ImportError:
        from airflow.stats import Stats  # type: ignore[no-redef]


def current_context() -> Any | None:
    """The running task's context, or None outside a task (DAG parsing, the UI's Test button)."""
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # noqa: BLE001 - "no context" is raised differently across versions
        return None


def min_masked_length() -> int:
    """Airflow never masks values shorter than ``[logging] min_length_masked_secret``."""
    try:
        from airflow.configuration import conf

        return int(conf.getint("logging", "min_length_masked_secret", fallback=5))
    except Exception:  # noqa: BLE001 - a worker without airflow-core config keeps the default
        return 5


__all__ = ["BaseHook", "Stats", "current_context", "mask_secret", "min_masked_length"]
