"""AWS Signature Version 4, checked the way AWS STS checks it.

Written from AWS's published algorithm, independently of any client's signer (the client side uses
botocore), so that a canonicalisation bug cannot hide on both sides. Only what STS needs:
``AWS4-HMAC-SHA256`` in the ``Authorization`` header (no presigned query strings).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from calendar import timegm
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = 15 * 60
"""STS refuses a request dated more than 15 minutes from its clock, in either direction."""

_AUTHORIZATION = re.compile(
    ALGORITHM + r"\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})"
)
_AMZ_DATE = re.compile(r"(\d{8})T(\d{6})Z")
_SPACES = re.compile(r"\s+")


class SignatureProblem(Exception):
    """Why a signature does not verify, in the words STS uses (``code`` is the STS error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Authorization:
    """The parsed ``Authorization`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str | None) -> Authorization:
    if not header:
        raise SignatureProblem("MissingAuthenticationToken", "Request is missing Authentication Token")
    found = _AUTHORIZATION.fullmatch(header.strip())
    if found is None:
        raise SignatureProblem(
            "IncompleteSignature", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'."
        )
    scope = found["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise SignatureProblem(
            "IncompleteSignature",
            "Credential should have exactly 5 parts: <access key>/<date>/<region>/<service>/aws4_request.",
        )
    signed = tuple(found["signed"].split(";"))
    if list(signed) != sorted(signed) or any(not name or name != name.lower() for name in signed):
        raise SignatureProblem("IncompleteSignature", "SignedHeaders must be lower case and sorted.")
    return Authorization(scope[0], scope[1], scope[2], scope[3], signed, found["sig"])


def amz_time(value: str | None) -> float:
    """Seconds since the epoch of an ``X-Amz-Date`` value (``20260101T120000Z``)."""
    found = _AMZ_DATE.fullmatch(value or "")
    if found is None:
        raise SignatureProblem("IncompleteSignature", "X-Amz-Date is missing or not in the form YYYYMMDD'T'HHMMSS'Z'.")
    try:
        return float(timegm(time.strptime(found[0], "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise SignatureProblem("IncompleteSignature", "X-Amz-Date is not a valid date.") from None


def format_amz_time(seconds: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


def _uri_encode(text: str) -> str:
    # RFC 3986 unreserved characters only; AWS wants upper-case hex.
    return quote(text, safe="-_.~")


def canonical_query(raw_query: str) -> str:
    """Each name and value form-decoded (STS is a query API: ``+`` is a space) and re-encoded as AWS wants."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_uri_encode(unquote_plus(key)), _uri_encode(unquote_plus(value))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: dict[str, str], *, signed: tuple[str, ...], payload_hash: str
) -> str:
    """``headers`` are keyed by lower-case name. The path is taken as sent (STS does not normalise it
    beyond an empty path meaning ``/``)."""
    lines = [f"{name}:{_SPACES.sub(' ', headers[name].strip())}\n" for name in signed]
    return "\n".join(
        [method.upper(), raw_path or "/", canonical_query(raw_query), "".join(lines), ";".join(signed), payload_hash]
    )


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_access_key).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def expected_signature(secret_access_key: str, auth: Authorization, amz_date: str, canonical: str) -> str:
    scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = signing_key(secret_access_key, auth.date, auth.region, auth.service)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def check_time(amz_date: str, auth: Authorization, now: float) -> None:
    """The request's date must be within 15 minutes of ``now`` and agree with the credential scope."""
    signed_at = amz_time(amz_date)
    if amz_date[:8] != auth.date:
        raise SignatureProblem(
            "SignatureDoesNotMatch",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP:"
            f" '{auth.date}' != '{amz_date[:8]}'",
        )
    if signed_at < now - MAX_SKEW:
        raise SignatureProblem(
            "SignatureDoesNotMatch",
            f"Signature expired: {amz_date} is now earlier than {format_amz_time(now - MAX_SKEW)}"
            f" ({format_amz_time(now)} - 15 min.)",
        )
    if signed_at > now + MAX_SKEW:
        raise SignatureProblem(
            "SignatureDoesNotMatch",
            f"Signature not yet current: {amz_date} is still later than {format_amz_time(now + MAX_SKEW)}"
            f" ({format_amz_time(now)} + 15 min.)",
        )


def signatures_match(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))
