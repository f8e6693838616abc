"""``cyberark-ops migrate``: move the secrets Airflow holds into CyberArk, verified (re-exports only)."""

from __future__ import annotations

from .apply import MigrationError, apply_plan, migration_client, run_apply
from .bulk import BulkFileError, write_bulk_file
from .plan import Entry, Left, Plan, PlanError, conjur_policy, make_plan, planned_path, yaml_quoted
from .report import Report, Row
from .sources import Held, read_airflow
from .state import State

__all__ = [
    "BulkFileError",
    "Entry",
    "Held",
    "Left",
    "MigrationError",
    "Plan",
    "PlanError",
    "Report",
    "Row",
    "State",
    "apply_plan",
    "conjur_policy",
    "make_plan",
    "migration_client",
    "planned_path",
    "read_airflow",
    "run_apply",
    "write_bulk_file",
    "yaml_quoted",
]
