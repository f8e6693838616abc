"""PVWA's authentication: the logon types of ``/API/auth/<type>/Logon`` and the Vault session
that the client logs off when done. ``PVWAAuth`` is the base of every strategy a PVWA client
takes (Privilege Cloud's platform token too)."""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import AuthenticationFailed, ConfigurationError
from ..logon_types import PVWA_LOGON_TYPES
from ..transport import Call
from ..validation import require_name, require_secret
from .core import AccessToken, AuthContext, JSONTokenAuth, fingerprint


class PVWAAuth(JSONTokenAuth):
    api = "pvwa"


# -- PVWA / Privilege Cloud ---------------------------------------------------------------------


class PVWALogonAuth(PVWAAuth):
    """``POST /API/auth/<type>/Logon``: a Vault session that the client logs off when done."""

    per_client = True
    empty_answer = "a logon answer without a session token"
    __slots__ = ("_auth_type", "_password", "_username")

    def __init__(self, username: str, password: str, auth_type: str = "CyberArk") -> None:
        self._username = require_name(username, "username")
        self._password = require_secret(password, "password")
        canonical = PVWA_LOGON_TYPES.get(str(auth_type).lower())
        if canonical is None:
            raise ConfigurationError(
                f"auth_type: {auth_type!r} is not one of {', '.join(PVWA_LOGON_TYPES.values())}",
                field="auth_type",
            )
        self._auth_type = canonical

    @property
    def login(self) -> str:
        return self._username

    @property
    def auth_type(self) -> str:
        return self._auth_type

    def fingerprint(self) -> str:
        return fingerprint("pvwa-logon", self._auth_type, self._username, self._password)

    def token_call(self, ctx: AuthContext) -> Call:
        return Call(
            "POST",
            f"{ctx.prefix}/API/auth/{self._auth_type}/Logon",
            action="logon",
            target=f"as {self._username!r} ({self._auth_type})",
            headers={"Content-Type": "application/json"},
            body=json.dumps(
                {"username": self._username, "password": self._password, "concurrentSession": True}
            ).encode(),
            hints={
                401: f"Check the username, password and auth_type ({self._auth_type}).",
                403: f"Check the username, password and auth_type ({self._auth_type}); the user may be suspended.",
            },
            status_errors={403: AuthenticationFailed},
        )

    def token_from_json(self, data: Any) -> AccessToken | None:
        if isinstance(data, dict):  # Gen1-style answer
            data = data.get("CyberArkLogonResult")
        if not isinstance(data, str) or not data:
            return None
        return AccessToken(data, renew_in=math.inf, subject=self._username)

    def logoff(self, ctx: AuthContext, token: AccessToken) -> None:
        call = Call(
            "POST",
            f"{ctx.prefix}/API/Auth/Logoff",
            action="logoff",
            target=f"session of {self._username!r}",
            headers={"Content-Type": "application/json", "Authorization": token.header},
            body=b"{}",
        )
        ctx.transport.request(call)


__all__ = ["PVWA_LOGON_TYPES", "PVWAAuth", "PVWALogonAuth"]
