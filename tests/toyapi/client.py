"""The toy fourth API's client, built only from the public pieces of ``cyberark_ops.client``.

Used by ``tests/client/test_fourth_api.py`` (against an in-test server) and, registered through
the API table, by ``tests/hooks/test_toy_api.py`` (through ``CyberArkHook``, against the dev
server's toy emulator in ``tests/toyapi/emulator.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cyberark_ops.client import (
    AccessToken,
    ApiProfile,
    AuthContext,
    AuthenticatedClient,
    AuthenticationFailed,
    Call,
    ConfigurationError,
    Credential,
    CyberArkError,
    JSONTokenAuth,
    NotFound,
    TransportConfig,
    error_body_parser,
    nested_error_fields,
    renewal_delay,
)
from cyberark_ops.client.auth import fingerprint


@dataclass(frozen=True)
class ToyRef:
    name: str

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigurationError("reference: a toy secret name is one non-empty segment", field="reference")

    def __str__(self) -> str:
        return f"toy:{self.name}"


def parse_toy_ref(reference: str, rest: str) -> ToyRef:
    return ToyRef(rest)


TOY_CODES: dict[str, tuple[type[CyberArkError], bool, str]] = {
    "TOY401": (AuthenticationFailed, False, "Check the toy user and key."),
    "TOY404": (NotFound, False, "Check the secret's name and that the toy user may read it."),
}

TOY = ApiProfile(
    name="toy",
    display_name="Toy",
    code_table=TOY_CODES,
    parse_error_body=error_body_parser(lambda data: nested_error_fields(data, "code", "message")),
)


class ToyKeyAuth(JSONTokenAuth):
    """``POST /toy/auth`` with a user and key; the answer's token goes in ``Authorization: Toy ...``."""

    api = "toy"
    empty_answer = "an auth answer without a token"
    __slots__ = ("_key", "_user")

    def __init__(self, user: str, key: str) -> None:
        self._user = user
        self._key = key

    @property
    def login(self) -> str:
        return self._user

    def fingerprint(self) -> str:
        return fingerprint("toy", self._user, self._key)

    def token_call(self, ctx: AuthContext) -> Call:
        return Call(
            "POST",
            f"{ctx.prefix}/toy/auth",
            action="authenticate",
            target=f"as {self._user!r}",
            headers={"Content-Type": "application/json"},
            body=json.dumps({"user": self._user, "key": self._key}).encode(),
        )

    def token_from_json(self, data: Any) -> AccessToken | None:
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return None
        lifetime = float(data.get("expires_in") or 60)
        return AccessToken(
            f"Toy {data['token']}", renew_in=renewal_delay(lifetime), lifetime=lifetime, subject=self._user
        )


@dataclass(frozen=True, kw_only=True)
class ToyConfig(TransportConfig):
    auth: ToyKeyAuth


class ToyClient(AuthenticatedClient["str | ToyRef", ToyConfig]):
    profile = TOY

    def get(self, ref: str | ToyRef, *, reason: str | None = None) -> Credential:
        if isinstance(ref, ToyRef):
            ref = ref.name
        call = Call("GET", f"/toy/secrets/{quote(ref, safe='')}", action="retrieve", target=f"secret {ref!r}")
        response = self._transport.request(call, self._auth)
        data = self._transport.json(response, call)
        if not isinstance(data, dict) or not isinstance(data.get("value"), str):
            raise self._transport.invalid_response(call, "a secret without a value", response.status_code)
        return Credential(secret=data["value"], username=data.get("username"), source=f"toy:{ref}")

    def _repr_fields(self) -> dict[str, object]:
        return {**super()._repr_fields(), "user": self.login}
