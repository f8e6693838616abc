"""Privilege Cloud's authentication: an Identity OAuth confidential client exchanged for a
platform token, which the PVWA API of the tenant accepts as a bearer token."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from ..errors import AuthenticationFailed
from ..transport import Call
from ..validation import require_name, require_secret, validate_base_url
from .core import AccessToken, AuthContext, fingerprint, renewal_delay
from .pvwa import PVWAAuth


class PlatformTokenAuth(PVWAAuth):
    """Privilege Cloud: an Identity OAuth confidential client (``/oauth2/platformtoken``)."""

    empty_answer = "a token answer without access_token"
    __slots__ = ("_client_id", "_client_secret", "_identity_url")

    def __init__(self, identity_url: str, client_id: str, client_secret: str) -> None:
        # http:// is checked against the transport's allow_insecure_http when it is used.
        self._identity_url = validate_base_url(identity_url, "identity_url", allow_insecure_http=True)
        self._client_id = require_name(client_id, "client_id")
        self._client_secret = require_secret(client_secret, "client_secret")

    @property
    def login(self) -> str:
        return self._client_id

    def fingerprint(self) -> str:
        return fingerprint("platformtoken", self._identity_url, self._client_id, self._client_secret)

    def token_call(self, ctx: AuthContext) -> Call:
        return Call(
            "POST",
            "/oauth2/platformtoken",
            base=self._identity_url,
            action="platform_token",
            target=f"for client {self._client_id!r} at {self._identity_url}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                }
            ).encode(),
            hints={
                400: "Check client_id / client_secret and that the service user is an OAuth confidential client.",
                401: "Check client_id / client_secret and that the service user is an OAuth confidential client.",
            },
            status_errors={400: AuthenticationFailed, 403: AuthenticationFailed},
        )

    def token_from_json(self, data: Any) -> AccessToken | None:
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return None
        try:
            lifetime = float(data.get("expires_in"))
        except (TypeError, ValueError):
            lifetime = 900.0
        return AccessToken(
            f"Bearer {token}", renew_in=renewal_delay(lifetime), lifetime=lifetime, subject=self._client_id
        )


__all__ = ["PlatformTokenAuth"]
