"""HTTP face of the cloud stand-ins.

* STS: ``GetCallerIdentity`` as AWS STS answers it (query API, XML). Any SigV4 client pointed at
  ``https://<dev server>/aws-sts/`` (botocore's ``endpoint_url``) gets the seeded identity that
  signed the request, or STS's own error document and code.
* Azure IMDS: ``/azure-imds/<vm>`` + the real path ``/metadata/identity/oauth2/token``.
* GCE metadata: ``/gcp-metadata/<instance>`` + the real path
  ``/computeMetadata/v1/instance/service-accounts/default/identity``.

A metadata server answers the machine that asks; the dev server serves many, so the VM or instance
name is part of the base URL a client is configured with.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from ..api import AppContext, RouteSpec
from ..http import Request, Response, json_response, text_response
from .state import TOKEN_TTL, CloudModel, StsRefused

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


def _xml(status: int, body: str) -> Response:
    return Response(status, ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode(), "text/xml")


def sts_error(status: int, code: str, message: str) -> Response:
    kind = "Sender" if status < 500 else "Receiver"
    return _xml(
        status,
        f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>{kind}</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>",
    )


def sts(app: AppContext, request: Request) -> Response:
    model = app.model("cloud", CloudModel)
    params = dict(request.query_pairs())
    if request.method == "POST":
        try:
            params.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return sts_error(400, "MalformedInput", "The request body is not valid form data.")
    action = params.get("Action")
    if action != "GetCallerIdentity":
        request.audit.detail = "InvalidAction"
        version = params.get("Version", "")
        return sts_error(400, "InvalidAction", f"Could not find operation {action or ''} for version {version}")
    try:
        identity = model.get_caller_identity(
            request.method,
            request.raw_path,
            request.raw_query,
            header=request.headers.get,
            payload=request.body,
            now=app.clock.now(),
        )
    except StsRefused as refused:
        request.audit.detail = refused.code
        return sts_error(refused.status, refused.code, refused.message)
    request.audit.identity = identity.arn
    return _xml(
        200,
        f'<GetCallerIdentityResponse xmlns="{STS_NAMESPACE}"><GetCallerIdentityResult>'
        f"<Arn>{escape(identity.arn)}</Arn><UserId>{escape(identity.user_id)}</UserId>"
        f"<Account>{identity.account}</Account></GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
    )


def azure_token(app: AppContext, request: Request) -> Response:
    model = app.model("cloud", CloudModel)
    request.audit.object = request.param("vm")
    if (request.headers.get("Metadata") or "").lower() != "true":
        request.audit.detail = "Metadata header missing"
        return json_response(
            400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
        )
    query = request.query()
    if not query.get("api-version"):
        return json_response(
            400, {"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"}
        )
    resource = query.get("resource")
    if not resource:
        return json_response(
            400, {"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}
        )
    now = app.clock.now()
    try:
        token, identity = model.azure_token(request.param("vm"), query.get("client_id"), resource, now)
    except LookupError as problem:
        request.audit.detail = str(problem)
        return json_response(400, {"error": "invalid_request", "error_description": str(problem)})
    request.audit.identity = identity.xms_mirid
    expires_on = int(now + TOKEN_TTL)
    return json_response(
        200,
        {
            "access_token": token,
            "client_id": identity.client_id,
            "expires_in": str(int(TOKEN_TTL)),
            "expires_on": str(expires_on),
            "ext_expires_in": str(int(TOKEN_TTL)),
            "not_before": str(int(now)),
            "resource": resource,
            "token_type": "Bearer",
        },
    )


def gcp_identity(app: AppContext, request: Request) -> Response:
    model = app.model("cloud", CloudModel)
    request.audit.object = request.param("instance")
    if request.headers.get("Metadata-Flavor") != "Google":
        request.audit.detail = "Metadata-Flavor header missing"
        return text_response(403, "Missing required header: Metadata-Flavor: Google\n")
    query = request.query()
    audience = query.get("audience")
    if not audience:
        return text_response(400, "non-empty audience parameter required\n")
    try:
        token = model.gcp_token(
            request.param("instance"), audience, full=query.get("format") == "full", now=app.clock.now()
        )
    except LookupError:
        return text_response(404, "Not Found\n")
    request.audit.identity = request.param("instance")
    return text_response(200, token, "application/text")


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", r"/azure-imds/(?P<vm>[^/]+)/metadata/identity/oauth2/token", "imds.identity_token", azure_token),
    RouteSpec(
        "GET",
        r"/gcp-metadata/(?P<instance>[^/]+)/computeMetadata/v1/instance/service-accounts/default/identity",
        "gce_metadata.identity_token",
        gcp_identity,
    ),
    RouteSpec("GET", r"/aws-sts/?", "sts.get_caller_identity", sts),
    RouteSpec("POST", r"/aws-sts/?", "sts.get_caller_identity", sts),
)
