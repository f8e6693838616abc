"""PVWA (PAM Self-Hosted REST, "Gen 2") and the Privilege Cloud platform-token flow.

Self-hosted clients log on and send the session token raw in ``Authorization``; Privilege Cloud
clients get an Identity platform token and send ``Authorization: Bearer``. Both reach the same
account endpoints, so one handler set serves both, and each request resolves to a ``Principal``
whose per-safe permissions decide what it may list and retrieve.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from ..api import AppContext, RouteSpec
from ..errors import SeedError
from ..http import Request, Response, json_response
from .errors import (
    account_exists,
    account_not_found,
    checked_out_by_another,
    forbidden,
    invalid_parameter,
    not_checked_out,
    oauth_error,
    pvwa_error,
    reason_required,
    ticket_required,
    unauthorized,
)
from .records import AUTH_TYPES, Account, Principal, random_password
from .seed import DuplicateAccount
from .state import LockedByOther, NotCheckedOut, VaultModel

API = r"(?i)/PasswordVault/API"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
SEARCH_TYPES = ("contains", "startswith")
# Sortable fields of the account object (lower-cased -> JSON key).
SORT_FIELDS = {
    key.casefold(): key
    for key in (
        "id",
        "name",
        "userName",
        "address",
        "safeName",
        "platformId",
        "createdTime",
        "categoryModificationTime",
    )
}
_FILTER_SPLIT = re.compile(r"\s+AND\s+", re.IGNORECASE)
_FILTER_TERM = re.compile(r"\s*(safeName)\s+eq\s+(.+?)\s*\Z|\s*(modificationTime)\s+gte\s+(\d{1,12})\s*\Z", re.I)


def _is_json(request: Request) -> bool:
    media = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def json_body(request: Request, *, required: bool) -> dict[str, Any]:
    """The JSON object body with lower-cased keys (Web API binds names case-insensitively)."""
    content_type = (request.headers.get("Content-Type") or "").strip()
    if (content_type or request.body) and not _is_json(request):
        media = (content_type or "none").split(";", 1)[0].strip()[:64]
        raise pvwa_error(
            415, "PASWS167E", f"The request content type [{media}] is not supported; use application/json."
        )
    if not request.body.strip():
        if required:
            raise invalid_parameter("body", "The request body is missing.")
        return {}
    try:
        data = json.loads(request.body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise invalid_parameter("body", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise invalid_parameter("body", "The request body must be a JSON object.")
    return {str(k).casefold(): v for k, v in data.items()}


def account_json(account: Account) -> dict[str, Any]:
    body: dict[str, Any] = {
        "categoryModificationTime": int(account.modified_at),
        "platformId": account.platform_id,
        "safeName": account.safe,
        "id": account.id,
        "name": account.name,
    }
    if account.address:
        body["address"] = account.address
    if account.user_name:
        body["userName"] = account.user_name
    body["secretType"] = "password"
    if account.properties:
        body["platformAccountProperties"] = dict(account.properties)
    body["secretManagement"] = {
        "automaticManagementEnabled": True,
        "status": "success",
        "lastModifiedTime": int(account.modified_at),
    }
    body["createdTime"] = int(account.created_at)
    return body


def _keywords_match(account: Account, keywords: list[str], search_type: str) -> bool:
    fields = [
        account.name,
        account.user_name,
        account.address,
        account.safe,
        account.platform_id,
        *account.properties.values(),
    ]
    folded = [f.casefold() for f in fields if f]
    for keyword in keywords:
        word = keyword.casefold()
        if search_type == "startswith":
            if not any(f.startswith(word) for f in folded):
                return False
        elif not any(word in f for f in folded):
            return False
    return True


def parse_filter(text: str) -> tuple[str | None, int | None]:
    safe: str | None = None
    since: int | None = None
    for term in _FILTER_SPLIT.split(text.strip()):
        found = _FILTER_TERM.match(term)
        if found is None:
            raise invalid_parameter("filter", "Use 'safeName eq <safe>' and/or 'modificationTime gte <unix time>'.")
        if found.group(1):
            safe = found.group(2)
        else:
            since = int(found.group(4))
    return safe, since


def parse_sort(text: str) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        field = SORT_FIELDS.get(words[0].casefold())
        direction = words[1].casefold() if len(words) > 1 else "asc"
        if field is None or len(words) > 2 or direction not in ("asc", "desc"):
            raise invalid_parameter("sort", "Use up to three '<property> [asc|desc]' separated by commas.")
        keys.append((field, direction == "desc"))
    if len(keys) > 3:
        raise invalid_parameter("sort", "At most three sort properties are allowed.")
    return keys


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name.casefold())
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise invalid_parameter(name, f"{name} must be an integer.")
    value = int(raw)
    if not low <= value <= high:
        raise invalid_parameter(name, f"{name} must be between {low} and {high}.")
    return value


def _vault(app: AppContext) -> VaultModel:
    return app.model("vault", VaultModel)


def principal(app: AppContext, request: Request) -> Principal:
    vault = _vault(app)
    header = (request.headers.get("Authorization") or "").strip()
    if not header:
        raise unauthorized()
    now = app.clock.now()
    scheme, _, rest = header.partition(" ")
    found = (
        vault.platform_principal(rest.strip(), now)
        if scheme.lower() == "bearer"
        else vault.session_principal(header, now)
    )
    if found is None:
        raise unauthorized()
    request.audit.identity = found.name
    return found


def visible_account(app: AppContext, request: Request, who: Principal) -> Account:
    account_id = request.param("id")
    request.audit.object = account_id[:256]
    account = _vault(app).account(account_id, app.clock.now())
    if account is None or not who.sees(account.safe):
        raise account_not_found(account_id)
    request.audit.detail = f"Safe={account.safe};Name={account.name}"
    return account


def logon(app: AppContext, request: Request) -> Response:
    vault = _vault(app)
    method = {a.casefold(): a for a in AUTH_TYPES}[request.param("method").casefold()]
    request.audit.detail = f"auth={method}"
    body = json_body(request, required=True)
    username, password = body.get("username"), body.get("password")
    if isinstance(username, str) and username:
        request.audit.identity = username[:256]
    if not isinstance(username, str) or not username or not isinstance(password, str) or not password:
        raise invalid_parameter("username/password", "username and password are required strings.")
    result, token = vault.logon(username, password, method, app.clock.now())
    if result == "locked":
        raise pvwa_error(
            500,
            "ITATS127E",
            f"User [{username[:128]}] is suspended (locked). Contact the Vault administrator.",
        )
    if result != "ok" or token is None:
        raise pvwa_error(403, "PASWS013E", f"Authentication failure for User [{username[:128]}].")
    return json_response(200, token)


def logoff(app: AppContext, request: Request) -> Response:
    vault = _vault(app)
    who = principal(app, request)
    if who.kind == "user":
        vault.logoff((request.headers.get("Authorization") or "").strip())
    # A platform token is an Identity JWT; PVWA cannot revoke it, it simply expires.
    return json_response(200, {})


def list_accounts(app: AppContext, request: Request) -> Response:
    vault = _vault(app)
    who = principal(app, request)
    params = {k.casefold(): v for k, v in request.query_pairs()}
    search = params.get("search", "")
    search_type = (params.get("searchtype") or "contains").casefold()
    if search_type not in SEARCH_TYPES:
        raise invalid_parameter("searchType", "searchType must be contains or startswith.")
    safe_filter, since = parse_filter(params["filter"]) if params.get("filter") else (None, None)
    sort_keys = parse_sort(params.get("sort", ""))
    offset = _int_param(params, "offset", 0, 0, 10**9)
    limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    request.audit.object = ";".join(f"{k}={params[k]}" for k in ("search", "filter") if params.get(k))[:1024] or "*"

    keywords = search.split()
    found = [
        a
        for a in vault.accounts(app.clock.now())
        if who.can(a.safe, "list")
        and (safe_filter is None or a.safe.casefold() == safe_filter.casefold())
        and (since is None or a.modified_at >= since)
        and _keywords_match(a, keywords, search_type)
    ]
    items = [account_json(a) for a in found]
    for field, descending in reversed(sort_keys):
        items.sort(key=lambda item: str(item.get(field, "")).casefold(), reverse=descending)
    page = items[offset : offset + limit]
    body: dict[str, Any] = {"value": page, "count": len(items)}
    if offset + limit < len(items):
        link: dict[str, Any] = {"offset": offset + limit, "limit": limit}
        for key, name in (
            ("search", "search"),
            ("searchtype", "searchType"),
            ("sort", "sort"),
            ("filter", "filter"),
        ):
            if params.get(key):
                link[name] = params[key]
        body["nextLink"] = "api/Accounts?" + urlencode(link, quote_via=quote)
    return json_response(200, body)


def get_account(app: AppContext, request: Request) -> Response:
    who = principal(app, request)
    return json_response(200, account_json(visible_account(app, request, who)))


def _field(body: dict[str, Any], name: str) -> Any:
    """A body field whatever its case: clients send ``reason`` and ``Reason`` alike."""
    for key, value in body.items():
        if key.casefold() == name.casefold():
            return value
    return None


def _typed_field(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    """An optional body field, refused with PVWA's invalid-parameter answer when it is not ``kind``."""
    value = _field(body, name)
    if value is not None and not isinstance(value, kind):
        raise invalid_parameter(name, f"{name} must be {what}.")
    return value


def retrieve_password(app: AppContext, request: Request) -> Response:
    who = principal(app, request)
    account = visible_account(app, request, who)
    body = json_body(request, required=False)
    reason = _typed_field(body, "reason", str, "a string")
    if reason:
        request.audit.reason = reason[:1024]
    ticket = {name: _typed_field(body, name, str, "a string") for name in ("TicketingSystem", "TicketId")}
    if not who.can(account.safe, "retrieve"):
        raise forbidden()
    if account.reason_required and not (reason or "").strip():
        raise reason_required()
    if account.ticket_required and not all((value or "").strip() for value in ticket.values()):
        raise ticket_required()
    notes = [request.audit.detail or ""]
    if any(ticket.values()):
        notes.append(
            f"TicketingSystem={(ticket['TicketingSystem'] or '')[:64]};TicketId={(ticket['TicketId'] or '')[:64]}"
        )
    version = _field(body, "version")
    versions = {v.version_id: v.value for v in account.versions}
    if version is not None and not (isinstance(version, int) and not isinstance(version, bool) and version in versions):
        raise invalid_parameter("Version", "Version must be the number of an existing version.")
    try:
        current, effect = _vault(app).retrieve(account.id, who.name, app.clock.now())
    except LockedByOther:
        notes.append("refused: checked out by another user")
        request.audit.detail = ";".join(n for n in notes if n)
        raise checked_out_by_another(account.id) from None
    if effect:
        notes.append(effect)
    request.audit.detail = ";".join(n for n in notes if n)
    return json_response(200, current if version is None else versions[version])


def check_in(app: AppContext, request: Request) -> Response:
    who = principal(app, request)
    account = visible_account(app, request, who)
    if not who.can(account.safe, "initiate_cpm"):
        raise forbidden()
    try:
        facts = _vault(app).check_in(account.id, app.clock.now())
    except NotCheckedOut:
        raise not_checked_out(account.id) from None
    request.audit.detail = f"{request.audit.detail};checked in;password changed to version {facts['version']}"
    return Response(200)


def update_password(app: AppContext, request: Request) -> Response:
    """CyberArk's "Change credentials in the Vault": the value only, never the target machine, so it needs
    "Update password value" and no CPM permission. The Vault trims leading and trailing white space
    from ``NewCredentials`` (CyberArk's page for this call says so); the dev server does the same, so
    a client that must store a value byte for byte finds out here, not in production. Account groups
    are not modelled: ``ChangeEntireGroup`` is checked for type and otherwise has no effect."""
    who = principal(app, request)
    account = visible_account(app, request, who)
    body = json_body(request, required=True)
    _typed_field(body, "ChangeEntireGroup", bool, "true or false")
    value = _field(body, "NewCredentials")
    if not who.can(account.safe, "update_password"):
        raise forbidden()
    if not isinstance(value, str) or not value.strip():
        raise invalid_parameter("NewCredentials", "NewCredentials must be a non-empty string.")
    try:
        version = _vault(app).update_password(account.id, value.strip(), who.name, app.clock.now())
    except LockedByOther:
        raise checked_out_by_another(account.id) from None
    request.audit.detail = f"{request.audit.detail};password updated in the Vault to version {version}"
    return Response(200)


STORED_SECRET_TYPES = frozenset({"password"})
_ADD_FIELDS = {
    "name",
    "address",
    "username",
    "platformid",
    "safename",
    "secrettype",
    "secret",
    "platformaccountproperties",
    "secretmanagement",
    "remotemachinesaccess",
}


def add_account(app: AppContext, request: Request) -> Response:
    vault = _vault(app)
    who = principal(app, request)
    body = json_body(request, required=True)
    unknown = sorted(key for key in body if key.casefold() not in _ADD_FIELDS)
    if unknown:
        raise invalid_parameter(unknown[0][:64], f"{unknown[0][:64]} is not a field of an account.")
    safe = _field(body, "safeName")
    platform = _field(body, "platformId")
    for name, value in (("safeName", safe), ("platformId", platform)):
        if not isinstance(value, str) or not value.strip():
            raise invalid_parameter(name, f"{name} is required.")
    request.audit.object = f"{safe[:28]}/{str(_field(body, 'name') or '')[:128]}"
    if not who.can(safe, "add_accounts"):
        raise forbidden()
    if (_field(body, "secretType") or "password") not in STORED_SECRET_TYPES:
        raise invalid_parameter("secretType", "the dev server stores passwords only.")
    item: dict[str, Any] = {"safe": safe, "platformId": platform}
    for api_name, seed_name in (("name", "name"), ("address", "address"), ("userName", "userName")):
        value = _field(body, api_name)
        if value is not None:
            if not isinstance(value, str):
                raise invalid_parameter(api_name, f"{api_name} must be a string.")
            item[seed_name] = value
    item.setdefault("name", f"{platform}-{item.get('address', '')}-{item.get('userName', '')}"[:128])
    secret = _field(body, "secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise invalid_parameter("secret", "secret must be a non-empty string.")
    item["secret"] = secret if secret else random_password()
    properties = _field(body, "platformAccountProperties")
    if properties is not None:
        item["properties"] = properties
    try:
        account = vault.add_account(item, app.clock.now())
    except DuplicateAccount as duplicate:
        raise account_exists(duplicate.name, duplicate.safe) from None
    except SeedError as problem:
        field = problem.where.removeprefix("body").lstrip(".") or "body"
        head, dot, rest = field.partition(".")
        field = {"safe": "safeName", "properties": "platformAccountProperties"}.get(head, head) + dot + rest
        raise invalid_parameter(field, problem.problem) from None
    request.audit.object = f"{account.safe}/{account.name}"
    request.audit.detail = f"id={account.id}"
    return json_response(201, account_json(account))


def secret_versions(app: AppContext, request: Request) -> Response:
    who = principal(app, request)
    account = visible_account(app, request, who)
    versions = [
        {
            "versionId": v.version_id,
            "modifiedBy": v.modified_by,
            "modificationDate": int(v.modified_at),
            "isTemporary": False,
        }
        for v in reversed(account.versions)
    ]
    return json_response(200, {"Versions": versions})


def platform_token(app: AppContext, request: Request) -> Response:
    vault = _vault(app)
    media = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
    try:
        form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise oauth_error(400, "invalid_request", "The request body is not a valid form.") from None
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    basic = request.headers.get("Authorization") or ""
    if basic[:6].lower() == "basic " and not client_id:
        try:
            decoded = base64.b64decode(basic[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise oauth_error(400, "invalid_request", "Malformed Basic client authentication.") from None
        client_id, _, client_secret = decoded.partition(":")
    if client_id:
        request.audit.identity = client_id[:256]
    grant_type = form.get("grant_type", "")
    if not grant_type:
        raise oauth_error(400, "invalid_request", "grant_type is required.")
    if grant_type != "client_credentials":
        raise oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    if not client_id or not client_secret:
        raise oauth_error(400, "invalid_request", "client_id and client_secret are required.")
    issued = vault.issue_platform_token(client_id, client_secret, app.clock.now())
    if issued is None:
        raise oauth_error(401, "access_denied", "invalid client creds or client not allowed")
    token, expires_in = issued
    response = json_response(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in})
    response.headers["Cache-Control"] = "no-store"
    return response


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("POST", API + r"/auth/(?P<method>CyberArk|LDAP|RADIUS|Windows)/Logon/?", "pvwa.logon", logon),
    RouteSpec("POST", API + r"/auth/Logoff/?", "pvwa.logoff", logoff),
    RouteSpec("GET", API + r"/Accounts/?", "pvwa.list_accounts", list_accounts),
    RouteSpec("POST", API + r"/Accounts/?", "pvwa.add_account", add_account),
    RouteSpec("POST", API + r"/Accounts/(?P<id>[^/]+)/CheckIn/?", "pvwa.check_in", check_in),
    RouteSpec("GET", API + r"/Accounts/(?P<id>[^/]+)/?", "pvwa.get_account", get_account),
    RouteSpec(
        "POST", API + r"/Accounts/(?P<id>[^/]+)/Password/Retrieve/?", "pvwa.retrieve_password", retrieve_password
    ),
    RouteSpec("POST", API + r"/Accounts/(?P<id>[^/]+)/Password/Update/?", "pvwa.update_password", update_password),
    RouteSpec("GET", API + r"/Accounts/(?P<id>[^/]+)/Secret/Versions/?", "pvwa.secret_versions", secret_versions),
    RouteSpec("POST", r"(?i)/oauth2/platformtoken/?", "pvwa.platform_token", platform_token),
)
