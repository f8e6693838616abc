"""The Vault's error answers: CCP's ``ErrorCode`` / ``ErrorMsg``, PVWA's ``ErrorCode`` /
``ErrorMessage`` (with ``Details`` for bad parameters) and the Identity OAuth errors."""

from __future__ import annotations

from typing import Any

from ..errors import DevHttpError

# -- CCP (AIMWebService) ---------------------------------------------------------------------------


def ccp_error(status: int, code: str, message: str) -> DevHttpError:
    return DevHttpError.json(status, {"ErrorCode": code, "ErrorMsg": message})


def ccp_bad_query(why: str) -> DevHttpError:
    return ccp_error(400, "AIMWS030E", f"Invalid query format. {why}")


# -- PVWA ------------------------------------------------------------------------------------------


def pvwa_error(status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> DevHttpError:
    body: dict[str, Any] = {"ErrorCode": code, "ErrorMessage": message}
    if details:
        body["Details"] = details
    return DevHttpError.json(status, body)


def invalid_parameter(name: str, why: str) -> DevHttpError:
    return pvwa_error(
        400,
        "PASWS167E",
        "There are some invalid parameters.",
        [{"ErrorCode": "PASWS167E", "ErrorMessage": why, "ParameterName": name}],
    )


def unauthorized() -> DevHttpError:
    return pvwa_error(401, "PASWS006E", "The session token is missing, invalid or expired.")


def forbidden() -> DevHttpError:
    return pvwa_error(403, "PASWS041E", "You are not authorized to perform this action.")


def reason_required() -> DevHttpError:
    return pvwa_error(400, "PASWS204E", "You must specify a reason for this operation.")


def checked_out_by_another(account_id: str) -> DevHttpError:
    """ITATS127E is the only code seen for a locked account (docs/cyberark-apis.md §9.4); the message
    is the dev server's own."""
    return pvwa_error(500, "ITATS127E", f"Account [{account_id[:128]}] is checked out (locked) by another user.")


def not_checked_out(account_id: str) -> DevHttpError:
    """No stored source names the real answer; the dev server's own code says so by its prefix."""
    return pvwa_error(400, "CAOPS400E", f"Account [{account_id[:128]}] is not checked out.")


def ticket_required() -> DevHttpError:
    return pvwa_error(400, "CAOPS401E", "Missing mandatory parameter - TicketingSystem and TicketId.")


def account_exists(name: str, safe: str) -> DevHttpError:
    return pvwa_error(409, "CAOPS409E", f"Account [{name[:128]}] already exists in safe [{safe[:28]}].")


def account_not_found(account_id: str) -> DevHttpError:
    return pvwa_error(404, "PASWS044E", f"Account [{account_id[:128]}] was not found.")


# -- Identity OAuth (Privilege Cloud platform tokens) ----------------------------------------------


def oauth_error(status: int, error: str, description: str) -> DevHttpError:
    return DevHttpError.json(status, {"error": error, "error_description": description}, {"Cache-Control": "no-store"})
