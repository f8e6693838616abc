"""HTTP face of the Conjur emulation: routes, status codes and bodies as Conjur 1.24 answers them.

The wire facts are tabled in docs/devserver.md ("Conjur endpoints", "Conjur access tokens"); this
module follows them, including the quirks clients depend on: encoded *and* literal ``/`` in
variable ids, ``+`` kept literal in paths, rack-level text/plain token errors, 403 before 404 in
batch, and MIME base64 with 60-character lines. Handlers are module-level functions listed in
``ROUTES``; errors are raised (``errors.py``) and answered by ``DevApp._call``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from urllib.parse import parse_qsl, unquote_to_bytes

from ..api import AppContext, AppHandler, RouteSpec
from ..audit import printable as _printable
from ..cloud.state import CloudModel
from ..errors import DevHttpError, bad_field
from ..http import Request, Response, empty_response, json_response, text_response
from ..knobs import MAX_TTL, finite_number
from .errors import argument_error, bare, conjur_error, record_not_found, secret_not_found, unprocessable
from .policy import PolicyInvalid
from .records import RESOURCE_KINDS, Role, TokenClaims
from .ruby import iso_time, lenient_b64decode, mime_base64
from .state import ConjurModel

CONJUR_VERSION = "1.24.0"
API_VERSION = "5.3.2"
MAX_LIST_LIMIT = 1000

# An account segment never holds a slash, not even an encoded one (Conjur's ExcludeEncodedSlash).
_ACCT = r"(?P<account>(?:(?!%2[fF])[^/])+)"
_SEGMENT = r"[^/]+"
_REQUEST_ID_UNSAFE = re.compile(r"[^\w\-@]", re.ASCII)
_ACCOUNT_NAME = re.compile(r"[^ :]+")
_DIGITS = re.compile(r"[0-9]+")

_STATUS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Conjur Status</title></head>
<body>
<h1>Conjur</h1>
<p>Status: Your Conjur server is running!</p>
<dl>
<dt>Details:</dt>
<dd>Version {version}</dd>
<dd>API Version {api_version}</dd>
<dd>Account {account}</dd>
</dl>
<p>This is the cyberark-ops dev server, an emulation for development and tests.</p>
</body>
</html>
"""


def _segment(request: Request, name: str) -> str | None:
    """A path parameter decoded as Rails does: ``%XX`` to bytes, then UTF-8, ``+`` kept literal.

    Works on the raw request line (latin-1 decoded by http.server), so unencoded UTF-8 in a path
    decodes too; anything that is not UTF-8 gives None, which callers answer like a missing object.
    """
    raw = request.params.get(name)
    if raw is None:
        return None
    try:
        return unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def _query(request: Request) -> dict[str, str]:
    """Query parameters with Rack's rules: ``+`` is a space, the last repeat wins."""
    return dict(request.query_pairs())


def _accepts_base64_list(request: Request) -> bool:
    """Authenticate's rule: ``base64`` anywhere in the Accept-Encoding list, any case."""
    header = request.headers.get("Accept-Encoding") or ""
    return any(part.split(";", 1)[0].strip().lower() == "base64" for part in header.split(","))


def _basic(request: Request) -> tuple[str, str] | None:
    header = (request.headers.get("Authorization") or "").strip()
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    decoded = lenient_b64decode(encoded.strip())
    if decoded is None:
        return None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    login, sep, secret = text.partition(":")
    if not sep or not login or not secret:
        return None
    return login, secret


def _role_spec(spec: str, account: str) -> tuple[str, str] | None:
    """``host:airflow/worker`` or ``demo:host:airflow/worker`` -> (kind, id)."""
    parts = spec.split(":", 2)
    if len(parts) == 3 and parts[0] == account:
        parts = parts[1:]
    elif len(parts) == 3:
        parts = [parts[0], f"{parts[1]}:{parts[2]}"]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def _model(app: AppContext) -> ConjurModel:
    return app.model("conjur", ConjurModel)


def _rails(method: str, pattern: str, endpoint: str, handler: AppHandler) -> RouteSpec:
    """A Conjur route whose handler is wrapped in what Rails does for every request: the audit reason
    from ``X-Request-Id`` and the (sanitised or generated) request id echoed in the response, errors
    included."""

    def wrapped(app: AppContext, request: Request) -> Response:
        sent = request.headers.get("X-Request-Id")
        request_id = _REQUEST_ID_UNSAFE.sub("", sent or "")[:255] or str(uuid.uuid4())
        if sent:
            request.audit.reason = _printable(sent) or None
        try:
            response = handler(app, request)
        except DevHttpError as error:
            error.response.headers.setdefault("X-Request-Id", request_id)
            raise
        response.headers.setdefault("X-Request-Id", request_id)
        return response

    return RouteSpec(method, pattern, endpoint, wrapped)


def verified_token(app: AppContext, request: Request) -> tuple[Role, TokenClaims]:
    """The caller of a token-protected route and its token's claims; raises the rack-level error."""
    role, claims = _model(app).verify_token(request.headers.get("Authorization"), app.clock.now())
    request.audit.identity = role.login
    return role, claims


def session(app: AppContext, request: Request) -> Role:
    """The caller of a token-protected route; raises the rack-level error."""
    return verified_token(app, request)[0]


def token_response(app: AppContext, request: Request, role: Role) -> Response:
    token = json.dumps(_model(app).issue_token(role, app.clock.now()), separators=(",", ":"))
    if _accepts_base64_list(request):
        body = base64.b64encode(token.encode("ascii"))
        return Response(200, body, "text/plain; charset=utf-8", {"Content-Encoding": "base64"})
    return Response(200, token.encode("ascii"), "application/json; charset=utf-8")


# -- status --------------------------------------------------------------------------------


def status(app: AppContext, request: Request) -> Response:
    model = _model(app)
    for part in (request.headers.get("Accept") or "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media == "application/json":
            return json_response(200, {"version": CONJUR_VERSION})
        if media in ("text/html", "*/*"):
            break
    page = _STATUS_PAGE.format(version=CONJUR_VERSION, api_version=API_VERSION, account=model.account)
    return text_response(200, page, "text/html; charset=utf-8")


def authenticators(app: AppContext, request: Request) -> Response:
    model = _model(app)
    return json_response(200, model.authenticators())


def whoami(app: AppContext, request: Request) -> Response:
    model = _model(app)
    _, claims = verified_token(app, request)
    return json_response(
        200,
        {
            "client_ip": request.client_ip,
            "user_agent": request.headers.get("User-Agent") or "",
            "account": model.account,
            "username": claims.subject,
            "token_issued_at": iso_time(claims.issued_at),
        },
    )


# -- authn ---------------------------------------------------------------------------------


def login(app: AppContext, request: Request) -> Response:
    model = _model(app)
    credentials = _basic(request)
    if credentials is None:
        request.audit.detail = "no or malformed Basic credentials"
        raise bare(401)
    username, secret = credentials
    request.audit.identity = _printable(username)
    role = model.role_for_login(username)
    if _segment(request, "account") != model.account or role is None or not model.check_login(role, secret):
        request.audit.detail = "invalid credentials"
        raise bare(401)
    request.audit.identity = role.login
    return text_response(200, model.api_key_of(role))


def authenticate(app: AppContext, request: Request) -> Response:
    model = _model(app)
    login_name = _segment(request, "login")
    request.audit.identity = _printable(login_name) if login_name else None
    role = model.role_for_login(login_name) if login_name else None
    try:
        api_key = request.body.decode("utf-8").strip()
    except UnicodeDecodeError:
        api_key = ""
    if _segment(request, "account") != model.account or role is None or not api_key:
        request.audit.detail = "invalid credentials"
        raise bare(401)
    if not model.check_api_key(role, api_key):
        request.audit.detail = "invalid credentials"
        raise bare(401)
    request.audit.identity = role.login
    return token_response(app, request, role)


def authenticate_jwt(app: AppContext, request: Request) -> Response:
    model = _model(app)
    service_id = _segment(request, "service_id")
    account = _segment(request, "account")
    url_id: str | None = None
    if "id" in request.params:
        url_id = _segment(request, "id")
        if url_id is None:
            raise bare(401)
        request.audit.identity = _printable(url_id)
    request.audit.object = f"authn-jwt/{_printable(service_id)}" if service_id else None
    # Conjur parses the body as a form whatever the Content-Type says.
    fields = dict(_form_pairs(request.body))
    token = (fields.get("jwt") or "").strip()
    if not token:
        request.audit.detail = "jwt field missing or empty"
        raise bare(400)
    if service_id is None or account is None:
        raise bare(401)
    role = model.authenticate_jwt(service_id, account, token, url_id, app.clock.now())
    request.audit.identity = role.login
    return token_response(app, request, role)


def _service_account_login(request: Request, authenticator: str) -> tuple[str, str, str]:
    """The ``/{authenticator}/{service_id}/{account}/{login}/authenticate`` segments, audited."""
    service_id = _segment(request, "service_id")
    account = _segment(request, "account")
    login_name = _segment(request, "login")
    request.audit.identity = _printable(login_name) if login_name else None
    request.audit.object = f"{authenticator}/{_printable(service_id)}" if service_id else None
    if service_id is None or account is None or login_name is None:
        raise bare(401)
    return service_id, account, login_name


def authenticate_iam(app: AppContext, request: Request) -> Response:
    model = _model(app)
    service_id, account, login_name = _service_account_login(request, "authn-iam")
    role = model.authenticate_iam(service_id, account, login_name, request.body, sts=_cloud(app), now=app.clock.now())
    request.audit.identity = role.login
    return token_response(app, request, role)


def _cloud(app: AppContext) -> CloudModel | None:
    found = app.models.get("cloud")
    return found if isinstance(found, CloudModel) else None


def authenticate_azure(app: AppContext, request: Request) -> Response:
    model = _model(app)
    service_id, account, login_name = _service_account_login(request, "authn-azure")
    fields = dict(_form_pairs(request.body))
    role = model.authenticate_azure(service_id, account, login_name, fields, provider=_cloud(app), now=app.clock.now())
    request.audit.identity = role.login
    return token_response(app, request, role)


def authenticate_gcp(app: AppContext, request: Request) -> Response:
    model = _model(app)
    account = _segment(request, "account")
    request.audit.object = "authn-gcp"
    if account is None:
        raise bare(401)
    role = model.authenticate_gcp(account, dict(_form_pairs(request.body)), provider=_cloud(app), now=app.clock.now())
    request.audit.identity = role.login
    return token_response(app, request, role)


def load_policy(app: AppContext, request: Request) -> Response:
    model = _model(app)
    caller = session(app, request)
    account, policy_id = _segment(request, "account"), _segment(request, "identifier")
    request.audit.object = f"policy/{_printable(policy_id or '')}"
    if not request.body:
        raise conjur_error(
            422,
            "validation_failed",
            "policy_text is not present",
            details=[{"code": "validation_failed", "target": "policy_text", "message": "is not present"}],
        )
    dry_run = _query(request).get("dryRun", "").lower() == "true"
    try:
        loaded = (
            model.load_policy(request.method, policy_id, request.body, caller=caller, dry_run=dry_run)
            if account == model.account and policy_id
            else None
        )
    except PolicyInvalid as problem:
        request.audit.detail = str(problem)[:500]
        raise conjur_error(422, "policy_invalid", str(problem)[:500]) from None
    if loaded is None:
        raise record_not_found(account or model.account, "policy", policy_id or "")
    request.audit.detail = f"version={loaded['version']};created_roles={len(loaded['created_roles'])}" + (
        ";dry run" if dry_run else ""
    )
    return json_response(200 if dry_run else 201, loaded)


def rotate_api_key(app: AppContext, request: Request) -> Response:
    model = _model(app)
    header = request.headers.get("Authorization") or ""
    caller: Role | None = None
    if header.startswith("Token "):
        caller = session(app, request)
    else:
        credentials = _basic(request)
        if credentials is not None:
            request.audit.identity = _printable(credentials[0])
            candidate = model.role_for_login(credentials[0])
            if candidate is not None and model.check_login(candidate, credentials[1]):
                caller = candidate
    if caller is None or _segment(request, "account") != model.account:
        request.audit.detail = "invalid credentials"
        raise bare(401)
    request.audit.identity = caller.login
    spec = _query(request).get("role")
    target: Role | None = caller
    if spec:
        parsed = _role_spec(spec, model.account)
        if parsed is None or parsed[0] not in ("host", "user"):
            raise argument_error("role")
        target = model.find_role(*parsed)
        request.audit.object = _printable(f"{parsed[0]}/{parsed[1]}")
        if target is None:
            if not caller.admin:
                raise bare(403)
            raise record_not_found(model.account, parsed[0], parsed[1])
    assert target is not None
    request.audit.object = target.login
    if not model.may_rotate(caller, target):
        raise bare(403)
    return text_response(200, model.rotate_api_key(target))


# -- secrets -------------------------------------------------------------------------------


def variable_target(app: AppContext, request: Request) -> tuple[str | None, str | None, str, frozenset[str] | None]:
    """Caller check and the variable a ``/secrets/{account}/{kind}/{id}`` request names: account,
    decoded identifier, the id as shown in messages, and the caller's privileges on it."""
    model = _model(app)
    role = session(app, request)
    account, kind, identifier = (_segment(request, n) for n in ("account", "kind", "identifier"))
    if kind != "variable":
        raise bare(404)
    shown = identifier if identifier is not None else request.params["identifier"]
    request.audit.object = _printable(shown, 1000)
    privileges = model.privileges(role, identifier) if identifier and account == model.account else None
    return account, identifier, shown, privileges


def retrieve(app: AppContext, request: Request) -> Response:
    model = _model(app)
    account, identifier, shown, privileges = variable_target(app, request)
    full_id = f"{account or request.params['account']}:variable:{shown}"
    if not privileges:
        raise secret_not_found(full_id)
    if "execute" not in privileges:
        raise bare(403)
    version: int | None = None
    version_raw = _query(request).get("version")
    if version_raw is not None:
        if not _DIGITS.fullmatch(version_raw):
            raise argument_error("version")
        version = int(version_raw)
        request.audit.detail = f"version={version}"
    assert identifier is not None
    value, mime_type = model.read(identifier, version)
    if value is None:
        raise secret_not_found(full_id)
    return Response(200, value, mime_type or "application/octet-stream", {"Content-Disposition": "attachment"})


def store(app: AppContext, request: Request) -> Response:
    model = _model(app)
    account, identifier, shown, privileges = variable_target(app, request)
    if not privileges:
        raise record_not_found(account or request.params["account"], "variable", shown)
    if "update" not in privileges:
        raise bare(403)
    assert identifier is not None
    if "expirations" in _query(request):
        request.audit.detail = "expirations reset"
        return empty_response(201)
    if _blank(request.body):
        raise argument_error("'value' may not be empty")
    version, changed = model.write(identifier, request.body)
    request.audit.detail = f"version={version}" + ("" if changed else " (unchanged)")
    return empty_response(201)


def batch_retrieve(app: AppContext, request: Request) -> Response:
    model = _model(app)
    role = session(app, request)
    raw = _query(request).get("variable_ids", "")
    ids = raw.split(",")
    while ids and not ids[-1]:
        ids.pop()  # Ruby's String#split drops trailing empty fields
    if not ids or any(not i for i in ids):
        raise argument_error("variable_ids")
    prefix = f"{model.account}:variable:"
    names = [i[len(prefix) :] if i.startswith(prefix) else i for i in ids]
    request.audit.object = _printable(",".join(names), 4000)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise argument_error(f"duplicate variable_ids: {','.join(duplicates)}")
    wanted = [i[len(prefix) :] for i in ids if i.startswith(prefix)]
    found = model.read_many(role, wanted)
    # Conjur authorizes every variable it found before it reports the first missing one.
    if any("execute" not in privileges for privileges, _ in found.values()):
        raise bare(403)
    for full_id, name in zip(ids, names, strict=True):
        if full_id != prefix + name or name not in found:
            raise secret_not_found(full_id)
    for full_id, name in zip(ids, names, strict=True):
        if found[name][1] is None:
            raise secret_not_found(full_id)
    values = {full_id: found[name][1] or b"" for full_id, name in zip(ids, names, strict=True)}
    if (request.headers.get("Accept-Encoding") or "").strip().lower() == "base64":
        encoded = {k: mime_base64(v) for k, v in values.items()}
        return json_response(200, encoded, {"Content-Encoding": "base64"})
    try:
        text = {k: v.decode("utf-8") for k, v in values.items()}
    except UnicodeDecodeError:
        raise conjur_error(
            406,
            "not_acceptable",
            "CONJ00074E Issue encoding secret into JSON format, "
            "try including 'Accept-Encoding: base64' header in request.",
        ) from None
    return json_response(200, text)


# -- resources -----------------------------------------------------------------------------


def list_resources(app: AppContext, request: Request) -> Response:
    model = _model(app)
    role = session(app, request)
    query = _query(request)
    account = _segment(request, "account") if "account" in request.params else query.get("account")
    account = account if account is not None else model.account
    kind = _segment(request, "kind") if "kind" in request.params else query.get("kind")
    search = query.get("search")
    request.audit.object = _printable(kind) if kind else None
    if not _ACCOUNT_NAME.fullmatch(account):
        raise unprocessable("account")
    if kind is not None and kind not in RESOURCE_KINDS:
        raise unprocessable(f"kind must be one of {', '.join(sorted(RESOURCE_KINDS))}")
    if search is not None and not search:
        raise unprocessable("search may not be empty")
    count = query.get("count")
    if count is not None and count not in ("true", "false"):
        raise unprocessable("count must be true or false")
    limits: dict[str, int | None] = {}
    for name in ("limit", "offset"):
        value = query.get(name)
        if value is not None and not _DIGITS.fullmatch(value):
            raise unprocessable(f"'{name}' must be a non-negative integer")
        limits[name] = int(value) if value is not None else None
    limit, offset = limits["limit"], limits["offset"]
    if limit is not None and limit > MAX_LIST_LIMIT:
        raise conjur_error(
            422,
            "unprocessable_entity",
            f"'limit' contains an invalid value. 'limit' must be an integer no greater than {MAX_LIST_LIMIT}",
        )
    viewer = role
    acting = query.get("role") or query.get("acting_as")
    if acting:
        parsed = _role_spec(acting, model.account)
        other = model.find_role(*parsed) if parsed else None
        if other is None or (other is not role and not role.admin):
            raise bare(403)
        viewer = other
    items = model.resources(viewer, kind, search) if account == model.account else []
    if count == "true":
        return json_response(200, {"count": len(items)})
    if offset is not None and limit is None:
        limit = 10
    start = offset or 0
    return json_response(200, items[start : start + (limit if limit is not None else MAX_LIST_LIMIT)])


def show_resource(app: AppContext, request: Request) -> Response:
    model = _model(app)
    role = session(app, request)
    account, kind, identifier = (_segment(request, n) for n in ("account", "kind", "identifier"))
    if account is None or kind is None or identifier is None:
        raise bare(404)
    request.audit.object = _printable(identifier, 1000)
    query = _query(request)
    if query.get("check") == "true":
        privilege = query.get("privilege")
        if not privilege:
            raise argument_error("privilege")
        viewer = role
        if query.get("role"):
            parsed = _role_spec(query["role"], model.account)
            other = model.find_role(*parsed) if parsed else None
            if other is None or (other is not role and not role.admin):
                raise bare(403)
            viewer = other
        allowed = account == model.account and model.has_privilege(viewer, kind, identifier, privilege)
        return empty_response(204 if allowed else 404)
    found = model.resource(role, kind, identifier) if account == model.account else None
    if found is None:
        raise record_not_found(account, kind, identifier)
    return json_response(200, found)


# -- dev helpers ---------------------------------------------------------------------------


def dev_jwt(app: AppContext, request: Request) -> Response:
    """Mints a JWT from the dev issuer (admin only)."""
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise bad_field("body", "body must be a JSON object")
    claims = body.get("claims", {})
    ttl = body.get("ttl", 300)
    if not isinstance(claims, dict):
        raise bad_field("claims", "claims must be a JSON object")
    seconds = finite_number(ttl, "ttl", low=1.0, high=MAX_TTL)
    subject = claims.get("sub")
    request.audit.object = _printable(subject) if isinstance(subject, str) else None
    return json_response(200, {"jwt": _model(app).mint_jwt(claims, seconds, app.clock.now())})


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    """``URI.decode_www_form``: ``&``-separated, ``+`` is a space; bytes outside UTF-8 survive as
    replacement characters, which then fail the JWT shape check rather than the request."""
    return parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")


def _blank(body: bytes) -> bool:
    """Ruby's ``String#blank?``: empty or only whitespace."""
    try:
        return body.decode("utf-8").strip() == ""
    except UnicodeDecodeError:
        return False


ROUTES: tuple[RouteSpec, ...] = (
    _rails("GET", r"/", "conjur.status", status),
    _rails("GET", r"/authenticators", "conjur.authenticators", authenticators),
    _rails("GET", r"/whoami", "conjur.whoami", whoami),
    _rails("GET", rf"/authn/{_ACCT}/login", "conjur.login", login),
    _rails("POST", rf"/authn/{_ACCT}/(?P<login>{_SEGMENT})/authenticate", "conjur.authenticate", authenticate),
    _rails(
        "POST",
        rf"/authn-jwt/(?P<service_id>{_SEGMENT})/{_ACCT}/authenticate",
        "conjur.authenticate_jwt",
        authenticate_jwt,
    ),
    _rails(
        "POST",
        rf"/authn-jwt/(?P<service_id>{_SEGMENT})/{_ACCT}/(?P<id>{_SEGMENT})/authenticate",
        "conjur.authenticate_jwt",
        authenticate_jwt,
    ),
    _rails(
        "POST",
        rf"/authn-iam/(?P<service_id>{_SEGMENT})/{_ACCT}/(?P<login>{_SEGMENT})/authenticate",
        "conjur.authenticate_iam",
        authenticate_iam,
    ),
    _rails(
        "POST",
        rf"/authn-azure/(?P<service_id>{_SEGMENT})/{_ACCT}/(?P<login>{_SEGMENT})/authenticate",
        "conjur.authenticate_azure",
        authenticate_azure,
    ),
    _rails("POST", rf"/authn-gcp/{_ACCT}/authenticate", "conjur.authenticate_gcp", authenticate_gcp),
    *(
        _rails(method, rf"/policies/{_ACCT}/policy/(?P<identifier>.+)", "conjur.load_policy", load_policy)
        for method in ("POST", "PATCH", "PUT")
    ),
    _rails("PUT", rf"/authn/{_ACCT}/api_key", "conjur.rotate_api_key", rotate_api_key),
    _rails("GET", rf"/secrets/{_ACCT}/(?P<kind>{_SEGMENT})/(?P<identifier>.+)", "conjur.retrieve", retrieve),
    _rails("POST", rf"/secrets/{_ACCT}/(?P<kind>{_SEGMENT})/(?P<identifier>.+)", "conjur.store", store),
    _rails("GET", r"/secrets", "conjur.batch", batch_retrieve),
    _rails("GET", r"/resources", "conjur.resources", list_resources),
    _rails("GET", rf"/resources/{_ACCT}", "conjur.resources", list_resources),
    _rails("GET", rf"/resources/{_ACCT}/(?P<kind>{_SEGMENT})", "conjur.resources", list_resources),
    _rails("GET", rf"/resources/{_ACCT}/(?P<kind>{_SEGMENT})/(?P<identifier>.+)", "conjur.resource", show_resource),
    RouteSpec("POST", r"/_dev/conjur/jwt", "dev.conjur_jwt", dev_jwt, admin=True),
)
