"""Where the settings come from: a connection id or the secrets backend's kwargs, read as the hook
and the backend read them. Airflow is imported only here, and only to look up a connection id.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from ..settings import ConnectionSettings, secret_extras


class DoctorUsageError(Exception):
    """What the user asked for cannot be looked at (no such connection, malformed kwargs): exit 2."""


# -- where the settings come from -------------------------------------------------------------------


def settings_from_connection(conn_id: str) -> ConnectionSettings:
    """The connection as the hook reads it (any secrets backend Airflow has, env vars included)."""
    with _logs_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        from airflow.sdk import BaseHook

        from .._compat import announce_short_secrets, not_found_error, short_extras_unannounced

        try:
            with short_extras_unannounced():  # as the hook does: api="ccp" is no short secret
                conn = BaseHook.get_connection(conn_id)
        except not_found_error():
            raise DoctorUsageError(
                f"connection {conn_id!r} is not defined (checked Airflow's secrets backends)"
            ) from None
        settings = ConnectionSettings.from_connection(conn, conn_id)
        announce_short_secrets(conn.password, secret_extras(settings.extras))
    return settings


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """Points log handlers that write to stdout at stderr for a while: Airflow's own lines (its
    secrets masker warns on short extras) would otherwise land in the table or the --json document."""
    loggers = [
        logging.getLogger(),
        *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    moved: list[logging.StreamHandler[Any]] = []
    stdout = sys.stdout
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is stdout:
                handler.setStream(sys.stderr)
                moved.append(handler)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(stdout)


def settings_from_backend_kwargs(kwargs: Mapping[str, Any]) -> ConnectionSettings:
    """The settings the secrets backend would build; its own options (paths, patterns) are set aside."""
    # The backend module subclasses Airflow's BaseSecretsBackend: imported only for these kwargs.
    with _logs_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        from ..secrets import BACKEND_OPTIONS

    return ConnectionSettings.from_backend_kwargs(kwargs, reserved=BACKEND_OPTIONS)
