"""ToyVault: a toy fourth API for the dev server, proving an API can be added from outside the
``cyberark_ops.devserver`` package. Register it with
``DevServer(seed, apis={**DEFAULT_APIS, "toy": ToyApi})``.

Wire contract (all bodies JSON, ``Content-Type: application/json; charset=utf-8``):

``POST /toy/auth`` with body ``{"user": "<name>", "key": "<key>"}``
    200 ``{"token": "<token>", "expires_in": N}``; ``N`` is the dev server's token TTL in whole
    seconds (300 unless the seed's ``devserver.token_ttl`` or ``PUT /_dev/token-ttl`` says
    otherwise). Wrong user or key: 401 ``TOY401``. A body that is not such an object: 400
    ``TOY400``.

``GET /toy/secrets/{name}`` with header ``Authorization: Toy <token>``
    200 ``{"name": "<name>", "value": "<value>", "username": "<username>"}``. ``{name}`` is
    percent-decoded (``%2F`` and ``/`` are the same). Missing, unknown, expired or revoked token:
    401 ``TOY401``; unknown secret: 404 ``TOY404``.

Errors are ``{"error": {"code": "TOY401" | "TOY404" | "TOY400", "message": "<text>"}}``.

Seed section ``toy``::

    toy:
      users: {alice: alice-key}                                  # user name -> key
      secrets: {db: {value: s3cret, username: dbuser}}           # name -> value and username

Tokens expire after the token TTL and all die on ``POST /_dev/tokens/revoke``. Rotation targets
are ``toy:<secret name>`` (``POST /_dev/rotate``): the value changes, the username stays. Audit
entries are ``toy.auth`` (identity = user) and ``toy.get_secret`` (identity = user, object = name).
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyberark_ops.devserver import AppContext, DevHttpError, RouteSpec, SeedError
from cyberark_ops.devserver.http import Request, Response, json_response

DEFAULT_TOKEN_TTL = 300.0


def toy_error(status: int, message: str) -> DevHttpError:
    return DevHttpError.json(status, {"error": {"code": f"TOY{status}", "message": message}})


@dataclass
class _Secret:
    value: str
    username: str


@dataclass(frozen=True)
class _Token:
    user: str
    expires_at: float


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SeedError(where, "must be a non-empty string")
    return value


# -- handlers (module level; they find the state with app.model) ---------------------------------


def _toy(app: AppContext) -> ToyApi:
    return app.model("toy", ToyApi)


def auth(app: AppContext, request: Request) -> Response:
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    user, key = (body.get("user"), body.get("key")) if isinstance(body, dict) else (None, None)
    if not isinstance(user, str) or not isinstance(key, str):
        raise toy_error(400, 'body must be {"user": "...", "key": "..."}')
    request.audit.identity = user[:256]
    issued = _toy(app).login(user, key, app.clock.now())
    if issued is None:
        raise toy_error(401, "wrong user or key")
    token, expires_in = issued
    return json_response(200, {"token": token, "expires_in": expires_in})


def get_secret(app: AppContext, request: Request) -> Response:
    name = request.param("name")
    request.audit.object = name[:256]
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    user = _toy(app).user_of(token.strip(), app.clock.now()) if scheme == "Toy" else None
    if user is None:
        raise toy_error(401, "token missing, invalid, expired or revoked")
    request.audit.identity = user
    secret = _toy(app).secret(name)
    if secret is None:
        raise toy_error(404, f"no secret named {name!r}")
    return json_response(200, {"name": name, "value": secret.value, "username": secret.username})


# -- the API: state, seed loading and route table ------------------------------------------------


class ToyApi:
    """The toy API's state; the class itself is what gets registered (an ``EmulatedApi``)."""

    target_hint = "<secret name>"
    routes = (
        RouteSpec("POST", r"/toy/auth", "toy.auth", auth),
        RouteSpec("GET", r"/toy/secrets/(?P<name>.+)", "toy.get_secret", get_secret),
    )

    def __init__(self, users: dict[str, str], secrets_: dict[str, _Secret]) -> None:
        self._lock = threading.Lock()
        self._users = users
        self._secrets = secrets_
        self._tokens: dict[str, _Token] = {}
        self._ttl = DEFAULT_TOKEN_TTL

    @classmethod
    def from_seed(cls, data: Any, where: str, *, state_dir: Path) -> ToyApi:
        if not isinstance(data, dict) or set(data) - {"users", "secrets"}:
            raise SeedError(where, "must be a mapping with users and secrets")
        users = data.get("users") or {}
        stored = data.get("secrets") or {}
        if not isinstance(users, dict) or not isinstance(stored, dict):
            raise SeedError(where, "users and secrets must be mappings")
        keys = {_text(name, f"{where}.users"): _text(key, f"{where}.users.{name}") for name, key in users.items()}
        found: dict[str, _Secret] = {}
        for name, item in stored.items():
            spot = f"{where}.secrets.{name}"
            if not isinstance(item, dict):
                raise SeedError(spot, "must be a mapping with value and username")
            found[_text(name, f"{where}.secrets")] = _Secret(
                _text(item.get("value"), f"{spot}.value"), str(item.get("username", ""))
            )
        return cls(keys, found)

    # -- ApiModel -------------------------------------------------------------------------------

    def rotate(self, object_id: str, value: str | None, now: float, change_window: float) -> dict[str, Any]:
        with self._lock:
            secret = self._secrets.get(object_id)
            if secret is None:
                raise KeyError(object_id)
            secret.value = value if value is not None else secrets.token_urlsafe(18)
        return {"target": f"toy:{object_id}"}

    def tick(self, now: float) -> None:
        return None

    def revoke_tokens(self) -> int:
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    def set_token_ttl(self, seconds: float) -> None:
        with self._lock:
            self._ttl = float(seconds)

    # -- what the handlers use ------------------------------------------------------------------

    def login(self, user: str, key: str, now: float) -> tuple[str, int] | None:
        with self._lock:
            expected = self._users.get(user)
            if expected is None or not hmac.compare_digest(expected.encode(), key.encode()):
                return None
            token = secrets.token_urlsafe(32)
            self._tokens[token] = _Token(user, now + self._ttl)
            return token, max(1, int(self._ttl))

    def user_of(self, token: str, now: float) -> str | None:
        with self._lock:
            found = self._tokens.get(token)
            if found is None or found.expires_at <= now:
                return None
            return found.user

    def secret(self, name: str) -> _Secret | None:
        with self._lock:
            found = self._secrets.get(name)
            return _Secret(found.value, found.username) if found else None
