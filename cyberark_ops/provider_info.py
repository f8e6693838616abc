"""The provider metadata Airflow validates against its ``provider_info.schema.json``."""

from __future__ import annotations

from typing import Any

from . import __version__

PACKAGE_NAME = "cyberark-ops"


def provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "CyberArk (cyberark-ops)",
        "description": (
            "Just-in-time credentials from CyberArk Conjur / Secrets Manager, the Central Credential "
            "Provider and PVWA / Privilege Cloud, with nothing left behind in Airflow."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "CyberArk",
                "external-doc-url": "https://docs.cyberark.com/",
                "tags": ["security"],
            }
        ],
    }
