"""Pacing requests per origin so a burst of fetches rides out a CyberArk rate limit.

``pacer`` composes one ``Pacer`` from an algorithm (``adaptive``: learned from 429s; ``fixed``:
``rate_limit_per_second``) and a store (``store``: process-local, or a file shared by the machine's
processes); ``schedule`` holds the one slot computation they all use. ``TransportConfig.pacing``
picks the ``Pacing``; measurements behind the design are in docs/hook.md.
"""

from __future__ import annotations

from .adaptive import BELOW_ESTIMATE, EPISODE, QUIET_RELEASE, RECENT, AdaptiveRate
from .fixed import FixedRate
from .pacer import MACHINE_WIDE, Algorithm, Pacer, Pacing
from .schedule import MAX_RATE, MIN_RATE, Schedule, next_slot
from .store import (
    DIRECTORY_VARIABLE,
    SIZE,
    LocalStore,
    SharedFileStore,
    Store,
    open_store,
    state_directory,
    state_file,
    store_for,
)

__all__ = [
    "BELOW_ESTIMATE",
    "DIRECTORY_VARIABLE",
    "EPISODE",
    "MACHINE_WIDE",
    "MAX_RATE",
    "MIN_RATE",
    "QUIET_RELEASE",
    "RECENT",
    "SIZE",
    "AdaptiveRate",
    "Algorithm",
    "FixedRate",
    "LocalStore",
    "Pacer",
    "Pacing",
    "Schedule",
    "SharedFileStore",
    "Store",
    "next_slot",
    "open_store",
    "state_directory",
    "state_file",
    "store_for",
]
