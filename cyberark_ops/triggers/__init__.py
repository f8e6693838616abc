"""Triggers: fetches that run in the triggerer's event loop, for deferrable operators and sensors."""

from __future__ import annotations

from .cyberark import CyberArkSecretTrigger

__all__ = ["CyberArkSecretTrigger"]
