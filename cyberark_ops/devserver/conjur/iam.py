"""authn-iam as Conjur 1.24 checks it: the JSON of signed STS headers, the header rules, the STS call,
and the host id matched against the AWS identity (docs/cyberark-apis.md §8.1).

Every failure is a 401 with an empty body; the CONJ code and message go to the audit log only.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..cloud.state import REGION, STS_ACTION_QUERY, STS_HOST, CloudModel, StsRefused
from .errors import authn_rejected
from .records import IamService, Role

ALLOWED_SIGNED_HEADERS = frozenset(
    {"host", "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
)
_SIGNED = re.compile(r"SignedHeaders=([^,\s]+)")
MAX_BODY = 64 * 1024

INVALID_HEADERS = "CONJ00018E Invalid or expired AWS headers: "


def signed_headers(body: bytes, service: IamService, login: str) -> dict[str, str]:
    """The headers Conjur forwards to STS: parsed, lower-cased, checked and filtered."""
    try:
        parsed: Any = json.loads(body[:MAX_BODY]) if len(body) <= MAX_BODY else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
        raise authn_rejected(401, INVALID_HEADERS + "the body is not a JSON object of signed headers", identity=login)
    headers = {key.lower(): value for key, value in parsed.items()}
    found = _SIGNED.search(headers.get("authorization", ""))
    if found is None:
        raise authn_rejected(401, INVALID_HEADERS + "no SignedHeaders in the authorization header", identity=login)
    signed = found[1].split(";")
    allowed = ALLOWED_SIGNED_HEADERS | service.optional_signed_headers
    unexpected = sorted(set(signed) - allowed)
    if unexpected:
        raise authn_rejected(401, INVALID_HEADERS + f"Unexpected signed headers found {unexpected}", identity=login)
    missing = sorted(name for name in signed if name not in headers)
    if missing:
        raise authn_rejected(401, INVALID_HEADERS + f"Missing required signed headers: {missing}", identity=login)
    host = headers.get("host")
    if host is not None:
        host_match = STS_HOST.fullmatch(host.lower())
        if not host.lower().endswith(".amazonaws.com") or host_match is None:
            problem = "host must be an AWS STS endpoint (*.amazonaws.com)"
            raise authn_rejected(401, INVALID_HEADERS + problem, identity=login)
        region = host_match["region"]
        if region is not None and not REGION.fullmatch(region):
            raise authn_rejected(401, INVALID_HEADERS + f"invalid region {region!r}", identity=login)
    return {name: value for name, value in headers.items() if name in allowed}


def verify(sts: CloudModel | None, headers: dict[str, str], role: Role, now: float) -> None:
    """Calls STS with the forwarded headers and matches its answer against the host id."""
    if sts is None:
        raise authn_rejected(
            401,
            "CONJ00063E Verification of IAM identity failed with exception: STS is not reachable",
            identity=role.login,
        )
    try:
        identity = sts.get_caller_identity("GET", "/", STS_ACTION_QUERY, header=headers.get, payload=b"", now=now)
    except StsRefused as refused:
        raise authn_rejected(401, INVALID_HEADERS + refused.message, identity=role.login) from None
    parts = role.id.split("/")
    expected = f"{identity.account}/{identity.role_name}"
    if role.kind != "host" or len(parts) < 2 or "/".join(parts[-2:]) != expected:
        raise authn_rejected(
            401, f"CONJ00002E Invalid credentials (host to match: .../{expected})", identity=role.login
        )
