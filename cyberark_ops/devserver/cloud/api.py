"""Cloud identity providers as an emulated API (see ``..api``): seed key ``cloud:``, routes of the STS stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .handlers import ROUTES
from .state import CloudModel


class CloudApi:
    """Registered as ``cloud``: rotation targets ``cloud:<access key id>`` give an identity a new secret key."""

    routes = ROUTES
    target_hint = "<access key id>"

    @staticmethod
    def from_seed(data: Any, where: str, *, state_dir: Path) -> CloudModel:
        return CloudModel.from_seed(data, where, state_dir=state_dir)
