"""PVWA's logon types, in a module that imports nothing.

The API table (``cyberark_ops.apis``) makes one auth method of each, and provider discovery reads
that table in every Airflow process, so the names live here rather than in ``auth/pvwa.py``, whose
import brings the transport and ``requests``.
"""

from __future__ import annotations

PVWA_LOGON_TYPES = {"cyberark": "CyberArk", "ldap": "LDAP", "radius": "RADIUS", "windows": "Windows"}
"""The ``auth_method`` extra (lower case) -> the type in PVWA's ``/API/auth/<type>/Logon`` path."""

__all__ = ["PVWA_LOGON_TYPES"]
