"""Conjur / Secrets Manager as an emulated API (see ``..api``): its state and its route table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .handlers import ROUTES
from .state import ConjurModel


class ConjurApi:
    """Registered as ``conjur``: seed key ``conjur:``, rotation targets ``conjur:<variable id>``."""

    routes = ROUTES
    target_hint = "<variable id>"

    @staticmethod
    def from_seed(data: Any, where: str, *, state_dir: Path) -> ConjurModel:
        return ConjurModel.from_seed(data, where, state_dir=state_dir)
