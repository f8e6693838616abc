"""A local, faithful emulation of CyberArk Conjur, CCP and PVWA for development and tests.

This package imports nothing from ``cyberark_ops.client`` (and the client nothing from here), so
that a wire-format mistake shared by both cannot hide behind passing tests.
"""

from __future__ import annotations

from .api import ApiModel, AppContext, EmulatedApi, RouteSpec
from .app import DEFAULT_APIS, DevApp
from .clock import Clock
from .errors import DevHttpError, SeedError
from .server import DevServer

__all__ = [
    "DEFAULT_APIS",
    "ApiModel",
    "AppContext",
    "Clock",
    "DevApp",
    "DevHttpError",
    "DevServer",
    "EmulatedApi",
    "RouteSpec",
    "SeedError",
]
