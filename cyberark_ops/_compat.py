"""Airflow imports that moved between 3.1 and 3.3, resolved once."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
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


_MASKER_MODULES = (
    # The task SDK's masker and core's copy (3.2+); the older paths warn there, so only as a fallback.
    ("airflow.sdk._shared.secrets_masker.secrets_masker", "airflow._shared.secrets_masker.secrets_masker"),
    ("airflow.sdk.execution_time.secrets_masker", "airflow.utils.log.secrets_masker"),  # 3.1
)


def _masker_classes() -> list[Any]:
    for modules in _MASKER_MODULES:
        classes: list[Any] = []
        for module in modules:
            with contextlib.suppress(ImportError):
                masker = getattr(importlib.import_module(module), "SecretsMasker", None)
                if masker is not None and "_has_warned_short_secret" in vars(masker) and masker not in classes:
                    classes.append(masker)
        if classes:
            return classes
    return []


@contextlib.contextmanager
def short_extras_unannounced() -> Iterator[None]:
    """While a ``cyberark`` connection is fetched, Airflow's "Skipping masking for a secret as it's
    too short" warning stays off.

    Airflow caches every connection it fetches as a URI, which reads ``extra_dejson``, which hands
    the whole extras dict to ``mask_secret``: each short *non-secret* value (``api="ccp"``,
    ``auth_method="jwt"``, ``"30"`` from the form) trips that warning, once per process, before the
    masker even looks at the key's name. The secrets among them are re-announced by the caller
    (:func:`announce_short_secrets`), so a really short secret still warns.
    """
    silenced = [cls for cls in _masker_classes() if vars(cls).get("_has_warned_short_secret") is False]
    for cls in silenced:
        cls._has_warned_short_secret = True
    try:
        yield
    finally:
        for cls in silenced:
            cls._has_warned_short_secret = False


def announce_short_secrets(password: str | None, secret_extras: dict[str, str]) -> None:
    """Hands a connection's secrets to the masker again (a no-op for those already registered),
    so that one too short to be masked gets Airflow's own warning."""
    if password:
        mask_secret(password)
    for key, value in secret_extras.items():
        if value:
            mask_secret(value, key)


__all__ = [
    "BaseHook",
    "Stats",
    "announce_short_secrets",
    "current_context",
    "mask_secret",
    "min_masked_length",
    "not_found_error",
    "short_extras_unannounced",
]
