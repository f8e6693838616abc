"""The admin API under ``/_dev/``: knobs, rotation, clock, token revocation and the audit log.

Every call needs ``Authorization: Bearer <admin token>`` (the token printed at start); the admin
API is a test and demo tool, so it refuses to act on a guessable or missing token.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from .api import AppContext, AppHandler, RouteSpec
from .errors import DevHttpError, SeedError, bad_field
from .http import Request, Response, json_response
from .knobs import MAX_CLOCK_STEP, MAX_TTL, Fault, finite_number


def require_admin(app: AppContext, request: Request) -> None:
    """Returns when the request carries the admin token, else raises the 401 to send."""
    header = request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), app.admin_token.encode()):
        request.audit.identity = "admin"
        return
    raise DevHttpError.json(401, {"error": "admin token missing or wrong (Authorization: Bearer <admin_token>)"})


def admin_error(exc: Exception) -> DevHttpError:
    """The admin API's answer to bad input raised while handling an admin route."""
    if isinstance(exc, SeedError):
        return bad_field(exc.where, str(exc))
    if isinstance(exc, KeyError):
        return DevHttpError.json(404, {"error": f"no such object: {exc.args[0]}"})
    return DevHttpError.json(400, {"error": "a field has the wrong type"})


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise SeedError("body", "not valid JSON") from None
    if not isinstance(data, dict):
        raise SeedError("body", "must be a JSON object")
    return data


def _query_int(text: str, where: str) -> int:
    # int() itself accepts " 1_0 " and raises on 5000 digits; a plain digit run is all a seq needs.
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise SeedError(where, "must be a non-negative integer")
    return finite_number(int(text), where, low=0, high=2**63 - 1, integer=True)


def _utf8(value: str, where: str) -> str:
    """JSON can carry lone surrogates; stored, they would fail every later read of the value."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SeedError(where, "must be valid Unicode (no lone surrogates)") from None
    return value


ADMIN_API: list[RouteSpec] = []
"""The admin API's route table; ``dev.health`` is the one route without the admin token."""


def _admin(method: str, path: str) -> Callable[[AppHandler], AppHandler]:
    """Lists an admin-only handler in ``ADMIN_API`` as ``dev.<its name>`` at ``/_dev/<path>``."""

    def register(handler: AppHandler) -> AppHandler:
        ADMIN_API.append(RouteSpec(method, rf"/_dev/{path}", f"dev.{handler.__name__}", handler, admin=True))
        return handler

    return register


def health(app: AppContext, request: Request) -> Response:
    return json_response(200, {"status": "ok"})


ADMIN_API.append(RouteSpec("GET", r"/_dev/health", "dev.health", health))


@_admin("GET", "audit")
def audit(app: AppContext, request: Request) -> Response:
    query = request.query()
    since = _query_int(query.pop("since", "0") or "0", "since")
    events = app.audit.events(since, **query)
    return json_response(200, {"events": events, "last_seq": app.audit.last_seq})


@_admin("DELETE", "audit")
def audit_clear(app: AppContext, request: Request) -> Response:
    app.audit.clear()
    return json_response(200, {"cleared": True, "last_seq": app.audit.last_seq})


@_admin("GET", "knobs")
def knobs(app: AppContext, request: Request) -> Response:
    return json_response(200, {**app.knobs.to_dict(), "rotations": app.rotations()})


@_admin("PUT", "latency")
def latency(app: AppContext, request: Request) -> Response:
    body = _body(request)
    app.knobs.set_latency(str(body.get("endpoint", "*")), body.get("seconds", 0), "seconds")
    return json_response(200, app.knobs.to_dict())


@_admin("POST", "faults")
def fault_add(app: AppContext, request: Request) -> Response:
    fault = app.knobs.add_fault(Fault.from_dict(_body(request), "fault"))
    return json_response(201, {"id": fault.id})


@_admin("DELETE", "faults")
def fault_clear(app: AppContext, request: Request) -> Response:
    app.knobs.clear_faults()
    return json_response(200, app.knobs.to_dict())


@_admin("PUT", "rate-limit")
def rate_limit(app: AppContext, request: Request) -> Response:
    body = _body(request)
    # The body's own field names, not the seed's ``rate_limit.`` prefix.
    app.knobs.set_rate_limit(body.get("per_second"), body.get("burst"), where="")
    return json_response(200, app.knobs.to_dict())


@_admin("PUT", "token-ttl")
def token_ttl(app: AppContext, request: Request) -> Response:
    seconds = _body(request).get("seconds")
    if seconds is None:
        raise SeedError("seconds", "required")
    ttl = finite_number(seconds, "seconds", low=1.0, high=MAX_TTL)
    app.set_token_ttl(ttl)
    return json_response(200, {"token_ttl": ttl})


@_admin("POST", "tokens/revoke")
def revoke_tokens(app: AppContext, request: Request) -> Response:
    return json_response(200, {"revoked": app.revoke_tokens()})


@_admin("POST", "clock")
def clock(app: AppContext, request: Request) -> Response:
    advance = _body(request).get("advance", 0)
    if isinstance(advance, (int, float)) and not isinstance(advance, bool) and advance < 0:
        raise SeedError("advance", "the clock only moves forward")
    seconds = finite_number(advance, "advance", low=0.0, high=MAX_CLOCK_STEP)
    try:
        app.clock.advance(seconds)
    except ValueError as exc:
        raise SeedError("advance", str(exc)) from None
    app.tick()
    return json_response(200, {"now": app.clock.now(), "offset": app.clock.offset})


@_admin("POST", "rotate")
def rotate(app: AppContext, request: Request) -> Response:
    body = _body(request)
    target = body.get("target")
    if not isinstance(target, str):
        raise SeedError("target", "required, e.g. 'conjur:prod/db/password' or 'vault:<account id>'")
    request.audit.object = target
    if body.get("every") is not None:
        # The body's own field names, as for every other admin call.
        rotation = app.schedule_rotation(body, where="")
        return json_response(201, {"scheduled": rotation.id, "next_at": rotation.next_at})
    value = body.get("value")
    if value is not None and not isinstance(value, str):
        raise SeedError("value", "must be a string")
    if value is not None:
        _utf8(value, "value")
        if not value:
            # Served as an empty secret afterwards; omit value for a generated one.
            raise SeedError("value", "must not be empty (omit it for a generated value)")
    window = finite_number(body.get("change_window", 0.0), "change_window", low=0.0, high=MAX_TTL)
    result = app.rotate(target, value, window)
    return json_response(200, result)


@_admin("DELETE", "rotations")
def rotations_clear(app: AppContext, request: Request) -> Response:
    app.cancel_rotations()
    return json_response(200, {"rotations": []})
