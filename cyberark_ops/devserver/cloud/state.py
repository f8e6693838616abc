"""The cloud identity providers a Conjur cloud authenticator trusts, as far as the dev server emulates
them: AWS STS ``GetCallerIdentity`` over seeded IAM identities.

Real Conjur calls STS over the network with the headers a workload signed; here STS is this model,
called in process by the Conjur emulation and over HTTP by any SigV4 client (``/aws-sts/``). A
signature is checked as STS checks it (``sigv4``), against each identity's own secret key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import seedcheck as check
from ..errors import SeedError
from .sigv4 import (
    EMPTY_PAYLOAD_SHA256,
    SignatureProblem,
    canonical_request,
    check_time,
    expected_signature,
    parse_authorization,
    signatures_match,
)

STS_ACTION_QUERY = "Action=GetCallerIdentity&Version=2011-06-15"
"""What Conjur asks STS with the forwarded headers (``GET https://<host>/?...``)."""

REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
_STS_HOST = re.compile(r"sts(?:\.(?P<region>[^.]+))?\.amazonaws\.com")
_ARN = re.compile(
    r"arn:aws:(?P<service>sts|iam)::(?P<account>\d{12}):"
    r"(?:(?P<assumed>assumed-role)/(?P<role>[\w+=,.@-]+)/(?P<session>[\w+=,.@-]+)|(?P<kind>user|role)/(?:[\w+=,.@/-]*/)?(?P<name>[\w+=,.@-]+))"
)
_ACCESS_KEY = re.compile(r"(AKIA|ASIA)[A-Z0-9]{12,124}")


@dataclass
class AwsIdentity:
    """An IAM user's or an assumed role's credentials and who STS says they are."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    arn: str
    session_token: str | None = field(default=None, repr=False)
    """Temporary credentials (``ASIA…``) are valid only with their session token."""

    @property
    def account(self) -> str:
        found = _ARN.fullmatch(self.arn)
        assert found is not None  # checked by the seed
        return found["account"]

    @property
    def role_name(self) -> str:
        """What Conjur matches against the last segment of the host id: the role of an assumed-role ARN,
        else the user's or role's name."""
        found = _ARN.fullmatch(self.arn)
        assert found is not None
        return found["role"] or found["name"]

    @property
    def user_id(self) -> str:
        found = _ARN.fullmatch(self.arn)
        assert found is not None
        unique = hashlib.sha256(self.arn.encode()).hexdigest()[:17].upper()
        if found["assumed"]:
            return f"AROA{unique}:{found['session']}"
        return f"AIDA{unique}"


class StsRefused(Exception):
    """An STS error answer: HTTP status, STS error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CloudModel:
    def __init__(self, identities: dict[str, AwsIdentity]) -> None:
        self._identities = identities
        self._lock = threading.Lock()

    @classmethod
    def from_seed(cls, data: Any, where: str, *, state_dir: Path) -> CloudModel:
        """Validates a ``cloud:`` seed section; every error names the field's path, never a secret."""
        mapping = check.mapping(data or {}, where, {"aws_identities"})
        identities: dict[str, AwsIdentity] = {}

        def add(item: Any, item_where: str) -> None:
            entry = check.mapping(item, item_where, {"access_key_id", "secret_access_key", "arn", "session_token"})
            key_id = entry.get("access_key_id")
            if not isinstance(key_id, str) or not _ACCESS_KEY.fullmatch(key_id):
                raise SeedError(f"{item_where}.access_key_id", "must look like an AWS access key id (AKIA… or ASIA…)")
            if key_id in identities:
                raise SeedError(f"{item_where}.access_key_id", f"duplicate access key id {key_id!r}")
            secret = entry.get("secret_access_key")
            if not isinstance(secret, str) or len(secret) < 16 or check.has_control(secret):
                raise SeedError(f"{item_where}.secret_access_key", "must be a string of at least 16 characters")
            arn = entry.get("arn")
            if not isinstance(arn, str) or not _ARN.fullmatch(arn):
                raise SeedError(
                    f"{item_where}.arn",
                    "must be an IAM user, role or assumed-role ARN"
                    " (arn:aws:sts::123456789012:assumed-role/role/session)",
                )
            token = entry.get("session_token")
            if key_id.startswith("ASIA") and not token:
                raise SeedError(f"{item_where}.session_token", "temporary credentials (ASIA…) need a session token")
            if token is not None and (not isinstance(token, str) or not token or check.has_control(token)):
                raise SeedError(f"{item_where}.session_token", "must be a non-empty string")
            identities[key_id] = AwsIdentity(key_id, secret, arn, token)

        check.each(mapping, "aws_identities", where, add)
        return cls(identities)

    # -- ApiModel ------------------------------------------------------------------------------

    def rotate(self, object_id: str, value: str | None, now: float, change_window: float) -> dict[str, Any]:
        """A new secret access key for identity ``object_id`` (an access key id)."""
        with self._lock:
            identity = self._identities[object_id]
            identity.secret_access_key = value if value else secrets.token_urlsafe(30)
        return {"object": object_id}

    def tick(self, now: float) -> None:
        return None

    def revoke_tokens(self) -> int:
        return 0

    def set_token_ttl(self, seconds: float) -> None:
        return None

    # -- STS -----------------------------------------------------------------------------------

    def identity(self, access_key_id: str) -> AwsIdentity | None:
        with self._lock:
            return self._identities.get(access_key_id)

    def get_caller_identity(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        *,
        header: Callable[[str], str | None],
        payload: bytes,
        now: float,
    ) -> AwsIdentity:
        """Who signed this request, as STS ``GetCallerIdentity`` answers it; raises :class:`StsRefused`.

        ``header`` looks a request header up by (any case of) its name.
        """
        try:
            auth = parse_authorization(header("authorization"))
            if auth.service != "sts":
                raise SignatureProblem(
                    "SignatureDoesNotMatch", "Credential should be scoped to correct service: 'sts'."
                )
            if auth.region != "us-east-1" and not REGION.fullmatch(auth.region):
                raise SignatureProblem("SignatureDoesNotMatch", "Credential should be scoped to a valid region.")
            if "host" not in auth.signed_headers:
                raise SignatureProblem(
                    "SignatureDoesNotMatch", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
                )
            values: dict[str, str] = {}
            for name in auth.signed_headers:
                value = header(name)
                if value is None:
                    raise SignatureProblem("SignatureDoesNotMatch", f"Header '{name}' is in SignedHeaders but missing.")
                values[name] = value
            host_match = _STS_HOST.fullmatch(values["host"].lower())
            if host_match is not None:
                endpoint_region = host_match["region"] or "us-east-1"
                if auth.region != endpoint_region:
                    raise SignatureProblem(
                        "SignatureDoesNotMatch", f"Credential should be scoped to a valid region, not '{auth.region}'."
                    )
            amz_date = header("x-amz-date") or ""
            check_time(amz_date, auth, now)
            identity = self.identity(auth.access_key_id)
            if identity is None:
                raise StsRefused(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
            if identity.session_token is not None and header("x-amz-security-token") != identity.session_token:
                raise StsRefused(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
            payload_hash = header("x-amz-content-sha256") or (
                hashlib.sha256(payload).hexdigest() if payload else EMPTY_PAYLOAD_SHA256
            )
            canonical = canonical_request(
                method, raw_path, raw_query, values, signed=auth.signed_headers, payload_hash=payload_hash
            )
            expected = expected_signature(identity.secret_access_key, auth, amz_date, canonical)
            if not signatures_match(expected, auth.signature):
                raise SignatureProblem(
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided. Check your AWS"
                    " Secret Access Key and signing method. Consult the service documentation for details.",
                )
        except SignatureProblem as problem:
            status = 403 if problem.code in {"SignatureDoesNotMatch", "MissingAuthenticationToken"} else 400
            raise StsRefused(status, problem.code, problem.message) from None
        return identity
