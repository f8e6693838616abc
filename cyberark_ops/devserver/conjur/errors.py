"""Conjur's error answers: conjur-rack's text/plain token errors and the Rails JSON error bodies."""

from __future__ import annotations

from typing import Any

from ..audit import printable
from ..errors import DevHttpError

# Rack-level token errors (conjur-rack), sent as text/plain.
AUTHORIZATION_MISSING = "Authorization missing"
MALFORMED_TOKEN = "Malformed authorization token"  # noqa: S105
INVALID_TOKEN = "Unauthorized: Invalid token"  # noqa: S105
UNRECOGNIZED_CLAIMS = "token contains unrecognized claims"


def conjur_error(status: int, code: str, message: str, **extra: Any) -> DevHttpError:
    """The Rails JSON error body: ``{"error": {"code": ..., "message": ..., ...}}``."""
    return DevHttpError.json(status, {"error": {"code": code, "message": message, **extra}})


def argument_error(message: str) -> DevHttpError:
    return conjur_error(422, "argument_error", message)


def unprocessable(message: str) -> DevHttpError:
    return conjur_error(422, "unprocessable_entity", message)


def bare(status: int, detail: str | None = None) -> DevHttpError:
    """A status with no body, as Conjur answers most authentication failures and 403s."""
    return DevHttpError(status, detail=detail)


def secret_not_found(full_id: str) -> DevHttpError:
    return conjur_error(404, "not_found", f"CONJ00076E Variable {full_id} is empty or not found.")


def record_not_found(account: str, kind: str, identifier: str) -> DevHttpError:
    return conjur_error(
        404,
        "not_found",
        f"{kind.capitalize()} '{identifier}' not found in account '{account}'",
        target=kind,
        details={"code": "not_found", "target": "id", "message": f"{account}:{kind}:{identifier}"},
    )


def token_rejected(status: int, message: str, detail: str) -> DevHttpError:
    """An access token problem: conjur-rack's fixed text/plain body (none when ``message`` is empty)."""
    if not message:
        return bare(status, detail)
    return DevHttpError.text(status, message, "text/plain", detail=detail)


def jwt_rejected(status: int, detail: str, *, expired: bool = False, identity: str | None = None) -> DevHttpError:
    """An authn-jwt failure. Only expiry gets a message body, as in Conjur."""
    error = conjur_error(401, "unauthorized", "CONJ00016E Token expired") if expired else bare(status)
    error.detail = detail
    error.identity = printable(identity) if identity else None
    return error


def authn_rejected(status: int, detail: str, *, identity: str | None = None) -> DevHttpError:
    """A cloud authenticator's failure: an empty body (403 for a role without ``authenticate`` on the
    webservice, else 401), the CONJ code and message only in the audit log, as Conjur logs them."""
    error = bare(status)
    error.detail = detail
    error.identity = printable(identity) if identity else None
    return error
