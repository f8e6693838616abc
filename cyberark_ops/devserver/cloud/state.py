"""The cloud identity providers a Conjur cloud authenticator trusts, as far as the dev server emulates
them: AWS STS ``GetCallerIdentity`` over seeded IAM identities, and the Azure Instance Metadata
Service and GCE metadata server issuing identity tokens for seeded VMs.

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
from ..conjur.issuer import DevIssuer
from ..conjur.jwt import PublicKeys
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
STS_HOST = re.compile(r"sts(?:\.(?P<region>[^.]+))?\.amazonaws\.com")
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
        """What Conjur matches against the last segment of the host id: the segment after the first
        ``/`` of the ARN's resource (Conjur 1.24: ``arn.split(':')[5].split('/')[1]``), so the role of
        an assumed-role ARN, a user's or role's name, and for one with a path the path's first segment."""
        return self.arn.split(":", 5)[5].split("/")[1]

    @property
    def user_id(self) -> str:
        found = _ARN.fullmatch(self.arn)
        assert found is not None
        unique = hashlib.sha256(self.arn.encode()).hexdigest()[:17].upper()
        if found["assumed"]:
            return f"AROA{unique}:{found['session']}"
        return f"AIDA{unique}"


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AZURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.()-]{0,89}")
_GCP_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_GCP_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
AZURE_ISSUER = "https://sts.windows.net/{tenant}/"
GOOGLE_ISSUER = "https://accounts.google.com"
TOKEN_TTL = 3600.0
CLOUD_KEY_FILE = "cloud-jwt-key.pem"
"""The key that signs the stand-ins' identity tokens, apart from the Conjur issuer's own key."""


@dataclass(frozen=True)
class AzureIdentity:
    """One managed identity on a VM: the VM's system-assigned one, or a user-assigned one."""

    xms_mirid: str
    oid: str
    client_id: str
    tenant_id: str


@dataclass
class AzureVm:
    name: str
    subscription_id: str
    resource_group: str
    tenant_id: str
    system_assigned: AzureIdentity | None
    user_assigned: dict[str, AzureIdentity]
    """By client id."""

    def identity(self, client_id: str | None) -> AzureIdentity:
        """Which identity IMDS uses: the one asked for; else the system-assigned one; else the only
        user-assigned one. Raises ``LookupError`` with IMDS's message."""
        if client_id:
            found = self.user_assigned.get(client_id)
            if found is None and self.system_assigned is not None and self.system_assigned.client_id == client_id:
                found = self.system_assigned
            if found is None:
                raise LookupError("Identity not found")
            return found
        if self.system_assigned is not None:
            return self.system_assigned
        if len(self.user_assigned) == 1:
            return next(iter(self.user_assigned.values()))
        if not self.user_assigned:
            raise LookupError("Identity not found")
        raise LookupError(
            "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in"
            " the token request"
        )


@dataclass(frozen=True)
class GcpInstance:
    instance_name: str
    project_id: str
    project_number: str
    zone: str
    instance_id: str
    service_account_email: str
    service_account_id: str
    """The ``sub`` claim: the service account's numeric unique id."""


class StsRefused(Exception):
    """An STS error answer: HTTP status, STS error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CloudModel:
    def __init__(
        self,
        identities: dict[str, AwsIdentity],
        *,
        state_dir: Path,
        azure_vms: dict[str, AzureVm] | None = None,
        gcp_instances: dict[str, GcpInstance] | None = None,
    ) -> None:
        self._identities = identities
        self.azure_vms = azure_vms or {}
        self.gcp_instances = gcp_instances or {}
        self.issuer = DevIssuer(state_dir, CLOUD_KEY_FILE)
        self._lock = threading.Lock()

    @classmethod
    def from_seed(cls, data: Any, where: str, *, state_dir: Path) -> CloudModel:
        """Validates a ``cloud:`` seed section; every error names the field's path, never a secret."""
        mapping = check.mapping(data or {}, where, {"aws_identities", "azure_vms", "gcp_instances"})
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
        azure: dict[str, AzureVm] = {}
        check.each(mapping, "azure_vms", where, lambda item, at: _add_azure_vm(azure, item, at))
        gcp: dict[str, GcpInstance] = {}
        check.each(mapping, "gcp_instances", where, lambda item, at: _add_gcp_instance(gcp, item, at))
        return cls(identities, state_dir=state_dir, azure_vms=azure, gcp_instances=gcp)

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
            host_match = STS_HOST.fullmatch(values["host"].lower())
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

    # -- identity tokens (Azure IMDS, GCE metadata) --------------------------------------------

    def public_keys(self) -> PublicKeys:
        """What Conjur would discover from the provider's JWKS: the stand-ins' signing key."""
        return self.issuer.public_keys()

    def azure_token(self, vm_name: str, client_id: str | None, resource: str, now: float) -> tuple[str, AzureIdentity]:
        """A managed-identity access token as IMDS issues it (v1 issuer, ``xms_mirid``, ``oid``);
        raises ``LookupError`` with IMDS's message."""
        vm = self.azure_vms.get(vm_name)
        if vm is None:
            raise LookupError("Identity not found")
        identity = vm.identity(client_id)
        claims = {
            "aud": resource,
            "iss": AZURE_ISSUER.format(tenant=identity.tenant_id),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + TOKEN_TTL),
            "appid": identity.client_id,
            "appidacr": "2",
            "idp": AZURE_ISSUER.format(tenant=identity.tenant_id),
            "oid": identity.oid,
            "sub": identity.oid,
            "tid": identity.tenant_id,
            "xms_mirid": identity.xms_mirid,
            "ver": "1.0",
        }
        return self.issuer.mint(claims, TOKEN_TTL, now), identity

    def gcp_token(self, instance_name: str, audience: str, *, full: bool, now: float) -> str:
        """An identity token as the GCE metadata server issues it; ``google.compute_engine`` only with
        ``format=full``. Raises ``LookupError`` for an unknown instance."""
        instance = self.gcp_instances.get(instance_name)
        if instance is None:
            raise LookupError("no such instance")
        claims: dict[str, Any] = {
            "aud": audience,
            "azp": instance.service_account_id,
            "email": instance.service_account_email,
            "email_verified": True,
            "iss": GOOGLE_ISSUER,
            "sub": instance.service_account_id,
            "iat": int(now),
            "exp": int(now + TOKEN_TTL),
        }
        if full:
            claims["google"] = {
                "compute_engine": {
                    "instance_creation_timestamp": int(now) - 86400,
                    "instance_id": instance.instance_id,
                    "instance_name": instance.instance_name,
                    "project_id": instance.project_id,
                    "project_number": int(instance.project_number),
                    "zone": instance.zone,
                }
            }
        return self.issuer.mint(claims, TOKEN_TTL, now)


def _uuid(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not UUID.fullmatch(value):
        raise SeedError(f"{where}.{key}", "must be a lower-case UUID (8-4-4-4-12 hex digits)")
    return value


def _name(data: dict[str, Any], key: str, where: str, pattern: re.Pattern[str], what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise SeedError(f"{where}.{key}", f"must be {what}")
    return value


def _add_azure_vm(vms: dict[str, AzureVm], item: Any, where: str) -> None:
    data = check.mapping(
        item, where, {"name", "subscription_id", "resource_group", "tenant_id", "system_assigned", "user_assigned"}
    )
    name = _name(data, "name", where, _AZURE_NAME, "an Azure resource name")
    if name in vms:
        raise SeedError(f"{where}.name", f"duplicate VM {name!r}")
    subscription = _uuid(data, "subscription_id", where)
    group = _name(data, "resource_group", where, _AZURE_NAME, "an Azure resource group name")
    tenant = _uuid(data, "tenant_id", where)
    prefix = f"/subscriptions/{subscription}/resourcegroups/{group}/providers"
    system = None
    if data.get("system_assigned") is not None:
        at = f"{where}.system_assigned"
        entry = check.mapping(data["system_assigned"], at, {"oid", "client_id"})
        system = AzureIdentity(
            f"{prefix}/Microsoft.Compute/virtualMachines/{name}",
            _uuid(entry, "oid", at),
            _uuid(entry, "client_id", at),
            tenant,
        )
    users: dict[str, AzureIdentity] = {}
    for index, raw in enumerate(check.items(data.get("user_assigned") or [], f"{where}.user_assigned")):
        at = f"{where}.user_assigned[{index}]"
        entry = check.mapping(raw, at, {"name", "resource_group", "oid", "client_id"})
        identity_name = _name(entry, "name", at, _AZURE_NAME, "an Azure resource name")
        identity_group = entry.get("resource_group", group)
        if not isinstance(identity_group, str) or not _AZURE_NAME.fullmatch(identity_group):
            raise SeedError(f"{at}.resource_group", "must be an Azure resource group name")
        client_id = _uuid(entry, "client_id", at)
        if client_id in users:
            raise SeedError(f"{at}.client_id", "duplicate client id")
        users[client_id] = AzureIdentity(
            f"/subscriptions/{subscription}/resourcegroups/{identity_group}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name}",
            _uuid(entry, "oid", at),
            client_id,
            tenant,
        )
    if system is None and not users:
        raise SeedError(where, "a VM needs a system_assigned identity or at least one user_assigned one")
    vms[name] = AzureVm(name, subscription, group, tenant, system, users)


def _add_gcp_instance(instances: dict[str, GcpInstance], item: Any, where: str) -> None:
    data = check.mapping(
        item,
        where,
        {
            "instance_name",
            "project_id",
            "project_number",
            "zone",
            "instance_id",
            "service_account_email",
            "service_account_id",
        },
    )
    name = _name(data, "instance_name", where, _GCP_NAME, "a GCE instance name (lower case, digits, '-')")
    if name in instances:
        raise SeedError(f"{where}.instance_name", f"duplicate instance {name!r}")
    project = _name(data, "project_id", where, _GCP_PROJECT, "a GCP project id")
    email = _name(data, "service_account_email", where, _EMAIL, "an e-mail address")
    digits = re.compile(r"[0-9]{1,30}")
    number = str(data.get("project_number", "100000000001"))
    account_id = str(data.get("service_account_id", ""))
    instance_id = str(data.get("instance_id", "1000000000000000001"))
    for key, value in (("project_number", number), ("service_account_id", account_id), ("instance_id", instance_id)):
        if not digits.fullmatch(value):
            raise SeedError(f"{where}.{key}", "must be a number")
    zone = (
        _name(data, "zone", where, re.compile(r"[a-z]+-[a-z]+\d-[a-z]"), "a zone such as us-central1-a")
        if ("zone" in data)
        else "us-central1-a"
    )
    instances[name] = GcpInstance(name, project, number, zone, instance_id, email, account_id)
