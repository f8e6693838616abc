"""HTTP face of the STS stand-in: ``GetCallerIdentity`` as AWS STS answers it (query API, XML).

Any SigV4 client pointed at ``https://<dev server>/aws-sts/`` (botocore's ``endpoint_url``) gets the
seeded identity that signed the request, or STS's own error document and code.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from ..api import RouteSpec
from ..http import Request, Response
from .state import CloudModel, StsRefused

if TYPE_CHECKING:
    from ..app import DevApp

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


def sts(app: DevApp, request: Request) -> Response:
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


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", r"/aws-sts/?", "sts.get_caller_identity", sts),
    RouteSpec("POST", r"/aws-sts/?", "sts.get_caller_identity", sts),
)
