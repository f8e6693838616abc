"""authn-azure and authn-gcp as Conjur 1.24 checks them: the identity token, its claims, and the host's
annotations (docs/cyberark-apis.md §8.2, §8.3). Codes and messages go to the audit log; the HTTP
answer is an empty 401 (403 without ``authenticate``, 400 without a ``jwt`` field, a JSON 401 for an
expired token), as in Conjur.
"""

from __future__ import annotations

import re
from typing import Any

from ..cloud.state import CloudModel
from ..encoding import b64url_decode, json_object
from ..errors import DevHttpError
from .errors import authn_rejected, conjur_error
from .jwt import JWT_SHAPE, verify_jwt
from .records import JwtService, Role

_MIRID = re.compile(
    r"/subscriptions/(?P<subscriptions>[^/]+)/resourcegroups/(?P<resourcegroups>[^/]+)"
    r"/providers/(?P<namespace>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)"
)
AZURE_RESTRICTIONS = ("subscription-id", "resource-group", "user-assigned-identity", "system-assigned-identity")
GCP_RESTRICTIONS = {
    "project-id": ("google", "compute_engine", "project_id"),
    "instance-name": ("google", "compute_engine", "instance_name"),
    "service-account-id": ("sub",),
    "service-account-email": ("email",),
}


def token_field(fields: dict[str, str], login: str | None) -> str:
    token = (fields.get("jwt") or "").strip()
    if not token:
        error = DevHttpError(400, detail="CONJ00009E Field 'jwt' is missing or empty in request body")
        error.identity = login
        raise error
    if not JWT_SHAPE.fullmatch(token):
        raise authn_rejected(401, "CONJ00077E The request body does not contain a JWT token", identity=login)
    return token


def unverified_claims(token: str) -> dict[str, Any] | None:
    return json_object(b64url_decode(token.split(".")[1]))


def verified(token: str, sts: CloudModel | None, issuer: str, role_login: str, now: float) -> dict[str, Any]:
    """The claims once the signature (against the provider's keys), time and issuer verify."""
    if sts is None:
        raise authn_rejected(
            401, "CONJ00011E Failed to discover Identity Provider: provider unreachable", identity=role_login
        )
    try:
        claims = verify_jwt(token, sts.public_keys(), JwtService("cloud", issuer), now)
    except DevHttpError as error:
        if b"CONJ00016E" in (error.response.body or b""):
            raise _expired(role_login) from None
        raise authn_rejected(
            401, f"CONJ00035E Failed to decode token (3rdPartyError ='{error.detail}')", identity=role_login
        ) from None
    return claims


def _expired(login: str) -> DevHttpError:
    error = conjur_error(401, "unauthorized", "CONJ00016E Token expired")
    error.detail = "CONJ00016E Token expired"
    error.identity = login
    return error


def _restrictions(role: Role, prefix: str, service_id: str | None) -> dict[str, str]:
    """``<prefix>/<name>`` annotations, where ``<prefix>/<service_id>/<name>`` wins; an unknown name is CONJ00050E."""
    general: dict[str, str] = {}
    specific: dict[str, str] = {}
    for key, value in role.annotations.items():
        if not key.startswith(prefix + "/"):
            continue
        rest = key[len(prefix) + 1 :]
        if service_id is not None and rest.startswith(service_id + "/"):
            specific[rest[len(service_id) + 1 :]] = value
        elif "/" not in rest:
            general[rest] = value
    return {**general, **specific}


def check_azure(role: Role, service_id: str, claims: dict[str, Any]) -> None:
    for claim in ("xms_mirid", "oid"):
        if not isinstance(claims.get(claim), str) or not claims[claim]:
            raise authn_rejected(401, f"CONJ00051E Claim '{claim}' not found or empty in token", identity=role.login)
    mirid = _MIRID.fullmatch(claims["xms_mirid"])
    if mirid is None:
        raise authn_rejected(401, "CONJ00052E Failed to parse xms_mirid", identity=role.login)
    restrictions = _restrictions(role, "authn-azure", service_id)
    unknown = sorted(set(restrictions) - set(AZURE_RESTRICTIONS))
    if unknown:
        raise authn_rejected(
            401, f"CONJ00050E Resource type '{unknown[0]}' is not a supported resource restriction", identity=role.login
        )
    missing = [name for name in ("subscription-id", "resource-group") if name not in restrictions]
    if missing:
        quoted = ", ".join(f'"{name}"' for name in missing)
        raise authn_rejected(
            401, f"CONJ00057E Role does not have the required constraints: '[{quoted}]'", identity=role.login
        )
    if "user-assigned-identity" in restrictions and "system-assigned-identity" in restrictions:
        raise authn_rejected(
            401,
            "CONJ00055E IllegalConstraintCombinations: user-assigned-identity and system-assigned-identity",
            identity=role.login,
        )
    user_assigned = mirid["namespace"] == "Microsoft.ManagedIdentity"
    actual = {
        "subscription-id": mirid["subscriptions"],
        "resource-group": mirid["resourcegroups"],
        "user-assigned-identity": mirid["name"] if user_assigned else None,
        "system-assigned-identity": None if user_assigned else claims["oid"],
    }
    for name, wanted in restrictions.items():
        if actual[name] != wanted:
            raise authn_rejected(
                401,
                f"CONJ00049E Resource restriction '{name}' does not match with the corresponding value in the request",
                identity=role.login,
            )


def gcp_login(claims: dict[str, Any] | None, account: str) -> str:
    """The login a GCP token's ``aud`` names: ``conjur/<account>/<login>``."""
    audience = claims.get("aud") if claims else None
    parts = audience.split("/", 2) if isinstance(audience, str) else []
    if len(parts) != 3 or parts[0] != "conjur" or not parts[2]:
        raise authn_rejected(
            401,
            "CONJ00067E 'audience' token claim is invalid. The format should be 'conjur/<account-name>/<host-id>'",
        )
    if parts[1] != account:
        raise authn_rejected(401, f"CONJ00070E 'audience' token claim does not match the account '{account}'")
    return parts[2]


def check_gcp(role: Role, claims: dict[str, Any]) -> None:
    for claim in ("sub", "aud"):
        if not claims.get(claim):
            raise authn_rejected(401, f"CONJ00051E Claim '{claim}' not found or empty in token", identity=role.login)
    restrictions = _restrictions(role, "authn-gcp", None)
    unknown = sorted(set(restrictions) - set(GCP_RESTRICTIONS))
    if unknown:
        raise authn_rejected(
            401, f"CONJ00050E Resource type '{unknown[0]}' is not a supported resource restriction", identity=role.login
        )
    if not {"project-id", "service-account-id", "service-account-email"} & set(restrictions):
        raise authn_rejected(
            401,
            'CONJ00069E Role must have at least one of the following constraints: ["project-id", "service-account-id",'
            ' "service-account-email"]',
            identity=role.login,
        )
    for name, wanted in restrictions.items():
        value: Any = claims
        for part in GCP_RESTRICTIONS[name]:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            raise authn_rejected(
                401,
                f"CONJ00068E Claim '{'.'.join(GCP_RESTRICTIONS[name])}' is missing from Google's JWT token. Verify that"
                " you configured the host with permitted restrictions and requested the token using 'format=full'",
                identity=role.login,
            )
        if str(value) != wanted:
            raise authn_rejected(
                401,
                f"CONJ00049E Resource restriction '{name}' does not match with the corresponding value in the request",
                identity=role.login,
            )
