"""Airflow imports that moved between 3.1 and 3.3, resolved once."""

from __future__ import annotations

import importlib
from typing import Any

from ._airflow_first import import_airflow_first

import_airflow_first(__name__)

from airflow.sdk import BaseHook  # noqa: E402 - after Airflow has started
from airflow.sdk.log import mask_secret  # noqa: E402


def first_attribute(name: str, *modules: str) -> Any:
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {', '.join(modules)} provides {name}")


# Moved in task-sdk 1.2; the old path warns on 3.3.
Stats: Any = first_attribute("Stats", "airflow.sdk.observability.stats", "airflow.observability.stats", "airflow.stats")


def not_found_error() -> type[Exception]:
    """Airflow's "connection not defined" error: the task SDK's own, or core's where task-sdk 1.1 (3.1) has none."""
    error: type[Exception] = first_attribute("AirflowNotFoundException", "airflow.sdk.exceptions", "airflow.exceptions")
    return error


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


__all__ = ["BaseHook", "Stats", "current_context", "mask_secret", "min_masked_length", "not_found_error"]
