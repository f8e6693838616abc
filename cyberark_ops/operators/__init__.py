"""Vaulted operators: the credential is fetched inside ``execute`` and never stored by Airflow."""

from __future__ import annotations

from .sql import VaultedSqlOperator
from .vaulted import VaultedMixin, bind_connection, vaulted

__all__ = ["VaultedMixin", "VaultedSqlOperator", "bind_connection", "vaulted"]
