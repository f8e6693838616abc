"""A stand-in for the HTTP API of the ``cyberark_http_token`` example DAG: ``GET /demo/inventory``.

It answers 200 only to ``Authorization: Bearer <current value of the Conjur variable
prod/api/key>`` and, like a careless API, echoes that header back, so the example shows its token
scrubbed from XCom without a second server. A ``dev.*`` endpoint: no rate limit, no fault
injection, and not counted as a vault call.
"""

from __future__ import annotations

import hmac

from .api import AppContext, RouteSpec
from .conjur.state import ConjurModel
from .http import Request, Response, empty_response, json_response

INVENTORY_PATH = "/demo/inventory"
INVENTORY_TOKEN_ID = "prod/api/key"  # noqa: S105 - a variable id, not its value


def demo_inventory(app: AppContext, request: Request) -> Response:
    model = app.models.get("conjur")
    token, _ = model.read(INVENTORY_TOKEN_ID, None) if isinstance(model, ConjurModel) else (None, None)
    if token is None:
        return empty_response(404)
    authorization = request.headers.get("Authorization") or ""
    if not hmac.compare_digest(authorization.encode(), b"Bearer " + token):
        request.audit.detail = "inventory: wrong or missing bearer token"
        return json_response(401, {"error": "unauthorized"})
    request.audit.detail = "inventory: bearer token accepted"
    return json_response(200, {"items": 3, "echo": authorization})


DEMO_API: list[RouteSpec] = [RouteSpec("GET", INVENTORY_PATH, "dev.demo_inventory", demo_inventory)]
