"""cyberark-ops: just-in-time CyberArk credentials for Apache Airflow 3.

Top-level names import lazily so that ``import cyberark_ops`` (done by Airflow's provider discovery
in every process) stays cheap and pulls in neither Airflow nor requests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_LAZY: dict[str, str] = {
    "CyberArkHook": "cyberark_ops.hooks.cyberark",
    "Credential": "cyberark_ops.client.credential",
    "VaultedSqlOperator": "cyberark_ops.operators.sql",
    "VaultedMixin": "cyberark_ops.operators.vaulted",
    "vaulted": "cyberark_ops.operators.vaulted",
    "Secret": "cyberark_ops.decorators",
    "with_cyberark_secret": "cyberark_ops.decorators",
}

if TYPE_CHECKING:
    from .client.credential import Credential
    from .decorators import Secret, with_cyberark_secret
    from .hooks.cyberark import CyberArkHook
    from .operators.sql import VaultedSqlOperator
    from .operators.vaulted import VaultedMixin, vaulted

__all__ = [
    "Credential",
    "CyberArkHook",
    "Secret",
    "VaultedMixin",
    "VaultedSqlOperator",
    "__version__",
    "get_provider_info",
    "vaulted",
    "with_cyberark_secret",
]


def get_provider_info() -> dict[str, Any]:
    """Airflow's provider discovery reads this; a malformed dict breaks the whole ``airflow`` CLI."""
    from .provider_info import provider_info

    return provider_info()


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cyberark_ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
