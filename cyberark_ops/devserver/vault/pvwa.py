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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from ..http import Handler, Request, Response, Router, json_response
from .models import AUTH_TYPES, AccountView, Principal

if TYPE_CHECKING:
    from ..app import DevApp

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


class PvwaError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def response(self) -> Response:
        body: dict[str, Any] = {"ErrorCode": self.code, "ErrorMessage": self.message}
        if self.details:
            body["Details"] = self.details
        return json_response(self.status, body)


def invalid_parameter(name: str, why: str) -> PvwaError:
    return PvwaError(
        400,
        "PASWS167E",
        "There are some invalid parameters.",
        [{"ErrorCode": "PASWS167E", "ErrorMessage": why, "ParameterName": name}],
    )


UNAUTHORIZED = PvwaError(401, "PASWS006E", "The session token is missing, invalid or expired.")
FORBIDDEN = PvwaError(403, "PASWS041E", "You are not authorized to perform this action.")
REASON_REQUIRED = PvwaError(400, "PASWS204E", "You must specify a reason for this operation.")


def _not_found(account_id: str) -> PvwaError:
    return PvwaError(404, "PASWS044E", f"Account [{account_id[:128]}] was not found.")


def _is_json(request: Request) -> bool:
    media = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def json_body(request: Request, *, required: bool) -> dict[str, Any]:
    """The JSON object body with lower-cased keys (Web API binds names case-insensitively)."""
    content_type = (request.headers.get("Content-Type") or "").strip()
    if (content_type or request.body) and not _is_json(request):
        media = (content_type or "none").split(";", 1)[0].strip()[:64]
        raise PvwaError(415, "PASWS167E", f"The request content type [{media}] is not supported; use application/json.")
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


def account_json(account: AccountView) -> dict[str, Any]:
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


def _keywords_match(account: AccountView, keywords: list[str], search_type: str) -> bool:
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


def build_router(app: DevApp) -> Router:
    router = Router()
    vault = app.vault

    def principal(request: Request) -> Principal:
        header = (request.headers.get("Authorization") or "").strip()
        if not header:
            raise UNAUTHORIZED
        now = app.clock.now()
        scheme, _, rest = header.partition(" ")
        found = (
            vault.platform_principal(rest.strip(), now)
            if scheme.lower() == "bearer"
            else vault.session_principal(header, now)
        )
        if found is None:
            raise UNAUTHORIZED
        request.audit.identity = found.name
        return found

    def visible_account(request: Request, who: Principal) -> AccountView:
        account_id = request.param("id")
        request.audit.object = account_id[:256]
        account = vault.account(account_id, app.clock.now())
        if account is None or not who.sees(account.safe):
            raise _not_found(account_id)
        request.audit.detail = f"Safe={account.safe};Name={account.name}"
        return account

    def guarded(method: str, pattern: str, endpoint: str) -> Callable[[Handler], Handler]:
        """``router.add`` that turns a raised ``PvwaError`` into its response."""

        def register(handler: Handler) -> Handler:
            def run(request: Request) -> Response:
                try:
                    return handler(request)
                except PvwaError as error:
                    return error.response()

            router.add(method, pattern, endpoint)(run)
            return handler

        return register

    @guarded("POST", API + r"/auth/(?P<method>CyberArk|LDAP|RADIUS|Windows)/Logon/?", "pvwa.logon")
    def logon(request: Request) -> Response:
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
            raise PvwaError(
                500,
                "ITATS127E",
                f"User [{username[:128]}] is suspended (locked). Contact the Vault administrator.",
            )
        if result != "ok" or token is None:
            raise PvwaError(403, "PASWS013E", f"Authentication failure for User [{username[:128]}].")
        return json_response(200, token)

    @guarded("POST", API + r"/auth/Logoff/?", "pvwa.logoff")
    def logoff(request: Request) -> Response:
        who = principal(request)
        if who.kind == "user":
            vault.logoff((request.headers.get("Authorization") or "").strip())
        # A platform token is an Identity JWT; PVWA cannot revoke it, it simply expires.
        return json_response(200, {})

    @guarded("GET", API + r"/Accounts/?", "pvwa.list_accounts")
    def list_accounts(request: Request) -> Response:
        who = principal(request)
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

    @guarded("GET", API + r"/Accounts/(?P<id>[^/]+)/?", "pvwa.get_account")
    def get_account(request: Request) -> Response:
        who = principal(request)
        return json_response(200, account_json(visible_account(request, who)))

    @guarded("POST", API + r"/Accounts/(?P<id>[^/]+)/Password/Retrieve/?", "pvwa.retrieve_password")
    def retrieve_password(request: Request) -> Response:
        who = principal(request)
        account = visible_account(request, who)
        body = json_body(request, required=False)
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise invalid_parameter("reason", "reason must be a string.")
        if reason:
            request.audit.reason = reason[:1024]
        if not who.can(account.safe, "retrieve"):
            raise FORBIDDEN
        if account.reason_required and not (reason or "").strip():
            raise REASON_REQUIRED
        version = body.get("version")
        versions = {v.version_id: v.value for v in account.versions}
        if version is None:
            value = account.secret
        elif isinstance(version, int) and not isinstance(version, bool) and version in versions:
            value = versions[version]
        else:
            raise invalid_parameter("Version", "Version must be the number of an existing version.")
        return json_response(200, value)

    @guarded("GET", API + r"/Accounts/(?P<id>[^/]+)/Secret/Versions/?", "pvwa.secret_versions")
    def secret_versions(request: Request) -> Response:
        who = principal(request)
        account = visible_account(request, who)
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

    def oauth_error(status: int, error: str, description: str) -> Response:
        response = json_response(status, {"error": error, "error_description": description})
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.add("POST", r"(?i)/oauth2/platformtoken/?", "pvwa.platform_token")
    def platform_token(request: Request) -> Response:
        media = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            return oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
        try:
            form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            return oauth_error(400, "invalid_request", "The request body is not a valid form.")
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("Authorization") or ""
        if basic[:6].lower() == "basic " and not client_id:
            try:
                decoded = base64.b64decode(basic[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return oauth_error(400, "invalid_request", "Malformed Basic client authentication.")
            client_id, _, client_secret = decoded.partition(":")
        if client_id:
            request.audit.identity = client_id[:256]
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return oauth_error(400, "invalid_request", "grant_type is required.")
        if grant_type != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
        if not client_id or not client_secret:
            return oauth_error(400, "invalid_request", "client_id and client_secret are required.")
        issued = vault.issue_platform_token(client_id, client_secret, app.clock.now())
        if issued is None:
            return oauth_error(401, "access_denied", "invalid client creds or client not allowed")
        token, expires_in = issued
        response = json_response(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in})
        response.headers["Cache-Control"] = "no-store"
        return response

    return router
