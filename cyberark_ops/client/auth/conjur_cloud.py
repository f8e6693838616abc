"""Conjur's cloud authenticators: the worker's AWS, Azure or Google Cloud identity traded for a Conjur
token, with no API key stored anywhere (wire facts: docs/cyberark-apis.md §8).

* ``authn-iam``: an STS ``GetCallerIdentity`` request signed with SigV4 from botocore's credential
  chain; the signed headers go to Conjur, which calls STS itself. botocore is imported only here,
  and only when signing (extra ``aws``).
* ``authn-azure``: a managed-identity token from the Azure Instance Metadata Service.
* ``authn-gcp``: a GCE / GKE metadata identity token whose audience names the Conjur host.

Every metadata and STS address is configurable so that tests reach stand-ins on loopback; the
defaults are the real ones. The metadata services speak plain http on the machine itself, which
``local_base`` allows for their hosts (and loopback) only.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import re
import threading
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from xml.sax.saxutils import unescape

from ..errors import ConfigurationError
from ..transport import Call
from ..validation import require_name, validate_base_url
from .conjur import JWT_SHAPE, ConjurAuth
from .core import AuthContext, fingerprint

STS_QUERY = "Action=GetCallerIdentity&Version=2011-06-15"
AWS_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
AZURE_IMDS_URL = "http://169.254.169.254"
AZURE_TOKEN_PATH = "/metadata/identity/oauth2/token"  # noqa: S105 - a path
AZURE_RESOURCE = "https://management.azure.com/"
GCP_METADATA_URL = "http://metadata.google.internal"
GCP_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
METADATA_HOSTS = frozenset({"169.254.169.254", "fd00:ec2::254", "metadata.google.internal", "metadata"})
"""Hosts that answer on the machine itself (link-local): plain http never leaves it."""
MAX_CLAIMS_TEXT = 64 * 1024

OnSecret = Callable[[str], None]


def _ignore(_value: str) -> None:
    return None


def local_base(url: object, field_name: str) -> tuple[str, bool]:
    """A metadata or STS base URL and whether it is plain http on this machine.

    https goes anywhere; http only to a metadata host or loopback, whatever
    ``allow_insecure_http`` says (a metadata service has no https)."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{field_name}: must be a URL such as {AZURE_IMDS_URL}", field=field_name)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        raise ConfigurationError(f"{field_name}: is not a URL", field=field_name) from None
    local = parts.scheme == "http" and _is_local(hostname)
    if parts.scheme == "http" and not local:
        raise ConfigurationError(
            f"{field_name}: plain http:// is allowed only for a metadata service on this machine "
            f"({', '.join(sorted(METADATA_HOSTS))}) or loopback; use https://",
            field=field_name,
        )
    try:
        return validate_base_url(url, field_name, allow_insecure_http=local), local
    except ConfigurationError:
        raise
    except ValueError:
        raise ConfigurationError(f"{field_name}: is not a URL", field=field_name) from None


def _is_local(host: str) -> bool:
    if host.lower() in METADATA_HOSTS or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWT, unverified (Conjur verifies it): for messages, never trust."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > MAX_CLAIMS_TEXT:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


@dataclass(frozen=True)
class CloudIdentity:
    """Who the worker is in its cloud and which Conjur host that maps to (never a token)."""

    cloud: str
    identity: str
    """AWS: the ARN; Azure: ``xms_mirid``; GCP: the service account's email."""
    conjur_host: str
    details: dict[str, str] = field(default_factory=dict)
    """Facts the host's annotations are compared with (subscription, project, ...)."""
    problem: str | None = None
    """Why Conjur will refuse this identity for ``conjur_host``, when that shows from here."""


class ConjurCloudAuth(ConjurAuth):
    """A cloud authenticator: ``cloud_identity`` tells the doctor who the worker is, asking the cloud only."""

    @abstractmethod
    def cloud_identity(self, ctx: AuthContext) -> CloudIdentity:
        """Asks the cloud (STS, the metadata service), never Conjur."""


def _aws_identity_parts(arn: str) -> tuple[str, str] | None:
    """``(account, name)`` Conjur matches against the host id's last two segments: the segment after
    the first ``/`` of the ARN's resource (Conjur 1.24: ``arn.split(':')[5].split('/')[1]``), i.e.
    the role of an assumed-role ARN, a user's or role's name, and for one with a path its first
    path segment."""
    found = re.fullmatch(r"arn:aws[\w-]*:(?:sts|iam)::(\d{12}):(.+)", arn)
    if found is None:
        return None
    resource = found[2].split("/")
    if len(resource) < 2 or not resource[1]:
        return None
    return found[1], resource[1]


_STS_FIELD = re.compile(r"<(Arn|Account)>([^<]{1,2048})</\1>")


def parse_caller_identity(text: bytes) -> tuple[str, str] | None:
    """``(Arn, Account)`` from an STS ``GetCallerIdentity`` answer, or None. Read by pattern, not
    by an XML parser: two text elements are all it needs, and no DTD or entity is ever expanded."""
    if len(text) > MAX_CLAIMS_TEXT:
        return None
    found: dict[str, str] = {}
    for name, value in _STS_FIELD.findall(text.decode("utf-8", "replace")):
        found.setdefault(name, unescape(value.strip()))
    arn, account = found.get("Arn"), found.get("Account")
    return (arn, account) if arn and account else None


class ConjurIAMAuth(ConjurCloudAuth):
    """``authn-iam``: a SigV4-signed STS ``GetCallerIdentity``, signed afresh for each authentication.

    Credentials come from botocore's chain (environment, shared profile, container or instance
    role), resolved once per strategy; botocore refreshes temporary ones itself.
    """

    __slots__ = ("_credentials", "_lock", "_login", "_on_secret", "_profile", "_region", "_service_id", "_sts_url")

    def __init__(
        self,
        service_id: str,
        login: str,
        *,
        aws_region: str = "global",
        aws_profile: str | None = None,
        sts_url: str | None = None,
        on_secret: OnSecret | None = None,
    ) -> None:
        self._service_id = require_name(service_id, "service_id")
        self._login = require_name(login, "login")
        if not isinstance(aws_region, str) or not (aws_region == "global" or AWS_REGION.fullmatch(aws_region)):
            raise ConfigurationError(
                "aws_region: must be 'global' (sts.amazonaws.com) or a region such as eu-west-1", field="aws_region"
            )
        self._region = aws_region
        self._profile = require_name(aws_profile, "aws_profile") if aws_profile else None
        self._sts_url = local_base(sts_url, "aws_sts_url") if sts_url else None
        self._on_secret = on_secret or _ignore
        self._credentials: Any = None
        self._lock = threading.Lock()

    @property
    def login(self) -> str:
        return self._login

    @property
    def sts_host(self) -> str:
        """The STS endpoint Conjur calls with the signed headers."""
        return "sts.amazonaws.com" if self._region == "global" else f"sts.{self._region}.amazonaws.com"

    @property
    def signing_region(self) -> str:
        return "us-east-1" if self._region == "global" else self._region

    def fingerprint(self) -> str:
        return fingerprint("authn-iam", self._service_id, self._region, self._profile or "")

    def _frozen_credentials(self) -> Any:
        botocore = _botocore()
        with self._lock:
            if self._credentials is None:
                try:
                    session = botocore.session.Session(profile=self._profile)
                    self._credentials = session.get_credentials()
                except botocore.exceptions.BotoCoreError as exc:
                    field_name = "aws_profile" if self._profile else "auth_method"
                    raise ConfigurationError(
                        f"{field_name}: botocore could not resolve AWS credentials ({type(exc).__name__}: {exc})",
                        field=field_name,
                    ) from None
                if self._credentials is None:
                    raise ConfigurationError(
                        "auth_method: authn-iam found no AWS credentials (environment, shared profile, container "
                        "or instance role)",
                        field="aws_profile" if self._profile else "auth_method",
                    )
            credentials = self._credentials
        frozen = credentials.get_frozen_credentials()
        self._on_secret(frozen.secret_key)
        if frozen.token:
            self._on_secret(frozen.token)
        return frozen

    def signed_headers(
        self, host: str | None = None, url: str | None = None, region: str | None = None
    ) -> dict[str, str]:
        """The headers of a signed ``GET <url>/?Action=GetCallerIdentity&Version=2011-06-15``."""
        botocore = _botocore()
        host = host or self.sts_host
        request = botocore.awsrequest.AWSRequest(method="GET", url=f"{url or 'https://' + host}/?{STS_QUERY}")
        botocore.auth.SigV4Auth(self._frozen_credentials(), "sts", region or self.signing_region).add_auth(request)
        # botocore signs the host from the URL; the HTTP layer would add the header, so it is added here.
        return {"host": host, **dict(request.headers.items())}

    def token_call(self, ctx: AuthContext) -> Call:
        account = ctx.account or ""
        body = json.dumps(self.signed_headers()).encode()
        return Call(
            "POST",
            f"{ctx.prefix}/authn-iam/{quote(self._service_id, safe='')}/{quote(account, safe='')}/"
            f"{quote(self._login, safe='')}/authenticate",
            action="authenticate",
            target=f"with authn-iam/{self._service_id} as {self._login!r}",
            headers={"Accept-Encoding": "base64", "Content-Type": "application/json"},
            body=body,
            hints={
                401: f"Check that authn-iam/{self._service_id} is enabled and that the host id ends with "
                "<aws account id>/<iam role name> of the worker's AWS identity (cyberark-ops doctor shows it); "
                "an aws_region other than 'global' must be the region of the STS endpoint.",
                403: f"The host may not use authn-iam/{self._service_id}: permit it 'authenticate' on the webservice.",
            },
        )

    def cloud_identity(self, ctx: AuthContext) -> CloudIdentity:
        """Asks STS (``aws_sts_url``, else the endpoint Conjur uses) who the credentials belong to."""
        base, local = self._sts_url or (f"https://{self.sts_host}", False)
        host = urlsplit(base).netloc
        headers = self.signed_headers(host, base, self.signing_region)
        call = Call(
            "GET",
            "/",
            base=base,
            local_http=local,
            query=STS_QUERY,
            headers=headers,
            action="sts_get_caller_identity",
            target=f"at {host}",
            hints={403: "STS refused the AWS credentials (expired, wrong secret key or session token)."},
        )
        response = ctx.transport.request(call)
        parsed = parse_caller_identity(response.content)
        if parsed is None:
            raise ctx.transport.invalid_response(call, "something that is not an STS GetCallerIdentity answer")
        arn, account = parsed
        parts = _aws_identity_parts(arn)
        expected = f"{parts[0]}/{parts[1]}" if parts else None
        problem = None
        if expected is None:
            problem = f"Conjur cannot map the ARN {arn!r} to a host (not an IAM user, role or assumed role)"
        elif not self._login.startswith("host/") or not self._login.endswith("/" + expected):
            problem = f"Conjur maps this identity to a host id ending in {expected!r}, not to {self._login!r}"
        details = {"account": account, "service_id": self._service_id, "sts_endpoint": self.sts_host}
        return CloudIdentity("AWS", arn, self._login, details, problem)


class _NoSigningDetail(logging.Filter):
    """botocore.auth logs the canonical request at DEBUG, session token included: never let it out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_SIGNING_FILTER = _NoSigningDetail()


def _botocore() -> Any:
    signing_log = logging.getLogger("botocore.auth")
    if _SIGNING_FILTER not in signing_log.filters:
        signing_log.addFilter(_SIGNING_FILTER)
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.exceptions
        import botocore.session
    except ImportError:
        raise ConfigurationError(
            "auth_method: authn-iam signs with botocore, which is not installed: pip install 'cyberark-ops[aws]'",
            field="auth_method",
        ) from None
    return botocore


class _MetadataTokenAuth(ConjurCloudAuth):
    """A token from the machine's metadata service, posted as ``jwt=`` to a Conjur authenticator."""

    __slots__ = ("_local", "_login", "_metadata_url", "_on_secret")
    authenticator = ""

    def __init__(self, login: str, metadata_url: str, on_secret: OnSecret | None) -> None:
        self._login = require_name(login, "login")
        self._metadata_url, self._local = local_base(metadata_url, "metadata_url")
        self._on_secret = on_secret or _ignore

    @property
    def login(self) -> str:
        return self._login

    def _checked(self, token: str, call: Call, ctx: AuthContext) -> str:
        token = token.strip()
        if not JWT_SHAPE.match(token):
            raise ctx.transport.invalid_response(call, "something that is not a compact JWT")
        self._on_secret(token)
        return token

    def _conjur_call(self, path: str, jwt: str, target: str, hints: dict[int, str]) -> Call:
        return Call(
            "POST",
            path,
            action="authenticate",
            target=target,
            headers={"Accept-Encoding": "base64", "Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode({"jwt": jwt}).encode(),
            hints=hints,
        )


def _azure_mirid(mirid: str) -> dict[str, str]:
    """The segments of ``xms_mirid`` Conjur compares with a host's annotations."""
    parts = mirid.strip("/").split("/")
    facts: dict[str, str] = {}
    for key, name in (("subscriptions", "subscription-id"), ("resourcegroups", "resource-group")):
        lowered = [part.lower() for part in parts]
        if key in lowered and lowered.index(key) + 1 < len(parts):
            facts[name] = parts[lowered.index(key) + 1]
    if "microsoft.managedidentity" in mirid.lower() and parts:
        facts["user-assigned-identity"] = parts[-1]
    return facts


class ConjurAzureAuth(_MetadataTokenAuth):
    """``authn-azure``: a managed identity's token from IMDS (a user-assigned one by ``client_id``)."""

    __slots__ = ("_client_id", "_service_id")

    def __init__(
        self,
        service_id: str,
        login: str,
        *,
        client_id: str | None = None,
        metadata_url: str = AZURE_IMDS_URL,
        on_secret: OnSecret | None = None,
    ) -> None:
        super().__init__(login, metadata_url, on_secret)
        self._service_id = require_name(service_id, "service_id")
        self._client_id = require_name(client_id, "azure_client_id") if client_id else None

    def fingerprint(self) -> str:
        return fingerprint("authn-azure", self._service_id, self._metadata_url, self._client_id or "")

    def _imds_token(self, ctx: AuthContext) -> str:
        query = {"api-version": "2018-02-01", "resource": AZURE_RESOURCE}
        if self._client_id:
            query["client_id"] = self._client_id
        call = Call(
            "GET",
            AZURE_TOKEN_PATH,
            base=self._metadata_url,
            local_http=self._local,
            query=urlencode(query),
            headers={"Metadata": "true"},
            action="azure_identity_token",
            target="from the Azure Instance Metadata Service",
            hints={
                400: "IMDS has no such managed identity: check azure_client_id (a user-assigned identity's client "
                "id) and that the VM has a managed identity.",
            },
        )
        data = ctx.transport.json(ctx.transport.request(call), call)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise ctx.transport.invalid_response(call, "an answer without an access_token")
        return self._checked(token, call, ctx)

    def token_call(self, ctx: AuthContext) -> Call:
        account = ctx.account or ""
        return self._conjur_call(
            f"{ctx.prefix}/authn-azure/{quote(self._service_id, safe='')}/{quote(account, safe='')}/"
            f"{quote(self._login, safe='')}/authenticate",
            self._imds_token(ctx),
            f"with authn-azure/{self._service_id} as {self._login!r}",
            {
                401: f"Check that authn-azure/{self._service_id} is enabled with the tenant's provider-uri and that "
                "the host's annotations authn-azure/subscription-id, resource-group and the identity match the "
                "managed identity (cyberark-ops doctor shows them).",
                403: f"The host may not use authn-azure/{self._service_id}: permit it 'authenticate' on the "
                "webservice.",
            },
        )

    def cloud_identity(self, ctx: AuthContext) -> CloudIdentity:
        claims = jwt_claims(self._imds_token(ctx)) or {}
        mirid = str(claims.get("xms_mirid") or "")
        details = _azure_mirid(mirid)
        oid = str(claims.get("oid") or "")
        if oid and "user-assigned-identity" not in details:
            details["system-assigned-identity"] = oid
        problem = None
        if not mirid or not oid:
            problem = "the IMDS token carries no xms_mirid or oid claim, which authn-azure requires"
        return CloudIdentity("Azure", mirid or "<no xms_mirid>", self._login, details, problem)


class ConjurGCPAuth(_MetadataTokenAuth):
    """``authn-gcp``: a GCE / GKE metadata identity token; Conjur reads the host from its audience
    ``conjur/<account>/<host>``, so the URL names neither a service id nor a login."""

    __slots__ = ()

    def __init__(self, login: str, *, metadata_url: str = GCP_METADATA_URL, on_secret: OnSecret | None = None) -> None:
        super().__init__(login, metadata_url, on_secret)

    def fingerprint(self) -> str:
        return fingerprint("authn-gcp", self._metadata_url)

    def audience(self, account: str) -> str:
        return f"conjur/{account}/{self._login}"

    def _identity_token(self, ctx: AuthContext) -> str:
        call = Call(
            "GET",
            GCP_IDENTITY_PATH,
            base=self._metadata_url,
            local_http=self._local,
            query=urlencode({"audience": self.audience(ctx.account or ""), "format": "full"}),
            headers={"Metadata-Flavor": "Google"},
            action="gcp_identity_token",
            target="from the GCE metadata server",
            hints={404: "The metadata server has no service account for this instance."},
        )
        response = ctx.transport.request(call)
        return self._checked(response.content.decode("ascii", "replace"), call, ctx)

    def token_call(self, ctx: AuthContext) -> Call:
        return self._conjur_call(
            f"{ctx.prefix}/authn-gcp/{quote(ctx.account or '', safe='')}/authenticate",
            self._identity_token(ctx),
            f"with authn-gcp as {self._login!r}",
            {
                401: "Check that authn-gcp is enabled and that the host's annotations authn-gcp/project-id, "
                "service-account-id or service-account-email match the instance (cyberark-ops doctor shows them).",
                403: "The host may not use authn-gcp: permit it 'authenticate' on conjur/authn-gcp.",
            },
        )

    def cloud_identity(self, ctx: AuthContext) -> CloudIdentity:
        claims = jwt_claims(self._identity_token(ctx)) or {}
        google = claims.get("google")
        engine = google.get("compute_engine") if isinstance(google, dict) else None
        details: dict[str, str] = {}
        if isinstance(claims.get("sub"), str):
            details["service-account-id"] = claims["sub"]
        if isinstance(claims.get("email"), str):
            details["service-account-email"] = claims["email"]
        if isinstance(engine, dict):
            for claim, annotation in (("project_id", "project-id"), ("instance_name", "instance-name")):
                if isinstance(engine.get(claim), (str, int)):
                    details[annotation] = str(engine[claim])
        audience = str(claims.get("aud") or "")
        host = audience.split("/", 2)[2] if audience.count("/") >= 2 else self._login
        problem = None if audience == self.audience(ctx.account or "") else f"the token's audience is {audience!r}"
        email = details.get("service-account-email", "<no email claim>")
        return CloudIdentity("GCP", email, host, details, problem)


__all__ = [
    "AZURE_IMDS_URL",
    "GCP_METADATA_URL",
    "STS_QUERY",
    "CloudIdentity",
    "ConjurAzureAuth",
    "ConjurCloudAuth",
    "ConjurGCPAuth",
    "ConjurIAMAuth",
    "jwt_claims",
    "local_base",
    "parse_caller_identity",
]
