"""``cyberark-ops doctor``: what is wrong with a CyberArk connection, and how to fix it.

Every check goes through the same settings, builders and client layer a task uses, so a pass here
means a task's fetch gets as far. What depends on the API (its remedies, whether it needs a client
certificate, how to list what the identity sees) is the API table's ``DoctorChecks`` entry, so an
API or auth method registered from outside is checked like the built-in ones.

The package runs one way: ``report`` (the result model, scrubbing and rendering) at the bottom;
the check areas above it (``tls``, ``server``, ``auth``, ``access``); ``runner`` on top; and
``sources`` beside them (where the settings come from: the only place Airflow is imported). This
module only re-exports, so ``from cyberark_ops.doctor import X`` names what it always did.
"""

from __future__ import annotations

from .access import DOCTOR_REASON, SHOWN_NAMES, check_least_privilege, check_paths
from .auth import SHORT_TOKEN, check_authentication, check_cloud_identity, check_token_ttl
from .report import (
    DETAIL_CHARS,
    FAIL,
    NAME_CHARS,
    PASS,
    PATH_CHARS,
    SKIP,
    SOURCE_CHARS,
    STATUSES,
    WARN,
    Check,
    Report,
    render_json,
    render_rich,
    render_text,
    use_rich,
)
from .runner import run
from .server import SKEW_FAIL, SKEW_WARN, check_clock, check_reachability
from .sources import DoctorUsageError, settings_from_backend_kwargs, settings_from_connection
from .tls import EXPIRY_WARNING, check_ca_bundle, check_client_certificate

__all__ = [
    "DETAIL_CHARS",
    "DOCTOR_REASON",
    "EXPIRY_WARNING",
    "FAIL",
    "NAME_CHARS",
    "PASS",
    "PATH_CHARS",
    "SHORT_TOKEN",
    "SHOWN_NAMES",
    "SKEW_FAIL",
    "SKEW_WARN",
    "SKIP",
    "SOURCE_CHARS",
    "STATUSES",
    "WARN",
    "Check",
    "DoctorUsageError",
    "Report",
    "check_authentication",
    "check_ca_bundle",
    "check_client_certificate",
    "check_clock",
    "check_cloud_identity",
    "check_least_privilege",
    "check_paths",
    "check_reachability",
    "check_token_ttl",
    "render_json",
    "render_rich",
    "render_text",
    "run",
    "settings_from_backend_kwargs",
    "settings_from_connection",
    "use_rich",
]
