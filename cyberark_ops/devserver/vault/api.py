"""The Vault as an emulated API (see ``..api``): one state behind two front doors, CCP and PVWA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import ccp, pvwa
from .state import VaultModel


class VaultApi:
    """Registered as ``vault``: seed key ``vault:``, rotation targets ``vault:<account id>``."""

    routes = (*ccp.ROUTES, *pvwa.ROUTES)
    target_hint = "<account id>"

    @staticmethod
    def from_seed(data: Any, where: str, *, state_dir: Path) -> VaultModel:
        return VaultModel.from_seed(data, where)
