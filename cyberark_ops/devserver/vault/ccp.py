"""CCP (Central Credential Provider, ``AIMWebService``) GetPassword over REST.

The order of checks follows the real provider: request format first (AppID, then the query),
then the application's authentication (AppID exists, machine, certificate), then the search. A
safe the application may not use answers exactly like a missing object, as on a real Vault, so a
client cannot tell "forbidden" from "absent" and must not retry either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..api import AppContext, RouteSpec
from ..errors import DevHttpError
from ..http import Request, Response, json_response
from ..tls import subject_string
from .errors import ccp_bad_query, ccp_error
from .records import Account, CcpApplication, normalize_subject
from .state import VaultModel

# Request parameter (lower-cased) -> the property name used in query texts and error messages.
SEARCH_PARAMS = {
    "safe": "Safe",
    "folder": "Folder",
    "object": "Object",
    "username": "UserName",
    "address": "Address",
    "database": "Database",
    "policyid": "PolicyID",
}
MAX_REGEXP = 512
_PROPERTY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

NOT_FOUND_TAIL = (
    " Please check that there is a password object that answers your query in the Vault and that both the"
    " Provider and the application user have the appropriate permissions needed in order to use the password."
)


@dataclass(frozen=True)
class Criterion:
    name: str
    """The property name as written (for messages)."""
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, account: Account) -> bool:
        actual = _property(account, self.name)
        if actual is None:
            return False
        if self.pattern is not None:
            return self.pattern.search(actual) is not None
        return actual.casefold() == self.value.casefold()


@dataclass(frozen=True)
class CcpQuery:
    app_id: str
    criteria: tuple[Criterion, ...]
    text: str
    """``Safe=..;Folder=..;Object=..``, as the provider prints it in messages and logs."""
    fail_on_change: bool


def _property(account: Account, name: str) -> str | None:
    key = name.casefold()
    fixed = {
        "safe": account.safe,
        "folder": account.folder,
        "object": account.name,
        "name": account.name,
        "username": account.user_name or None,
        "address": account.address or None,
        "policyid": account.platform_id,
        "devicetype": account.device_type,
    }
    if key in fixed:
        return fixed[key]
    return account.prop(name)


def parse_query(request: Request) -> CcpQuery:
    params: dict[str, str] = {}
    duplicates: list[str] = []
    for name, value in request.query_pairs():
        key = name.casefold()
        if key in params:
            duplicates.append(name)
        else:
            params[key] = value
    app_id = params.get("appid", "")
    if app_id:
        request.audit.identity = app_id[:256]
    reason = params.get("reason")
    if reason:
        request.audit.reason = reason[:1024]
    if not app_id.strip():
        raise ccp_error(400, "AIMWS031E", "Invalid request. The AppID parameter is required.")
    if duplicates:
        raise ccp_bad_query(f"Parameter [{duplicates[0]}] was given more than once.")
    for name, value in params.items():
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise ccp_bad_query("Parameters must not contain control characters.")
    if any(c in app_id for c in "&%+;"):
        raise ccp_bad_query("The AppID contains an invalid character.")

    query_format = params.get("queryformat", "Exact").casefold()
    if query_format not in ("exact", "regexp"):
        raise ccp_bad_query("QueryFormat must be Exact or Regexp.")
    regexp = query_format == "regexp"
    fail_flag = params.get("failrequestonpasswordchange", "false").casefold()
    if fail_flag not in ("true", "false"):
        raise ccp_bad_query("FailRequestOnPasswordChange must be true or false.")
    timeout = params.get("connectiontimeout")
    if timeout is not None and (not timeout.isdigit() or len(timeout) > 6):
        raise ccp_bad_query("ConnectionTimeout must be a number of seconds.")

    pairs: list[tuple[str, str]] = []
    query = params.get("query", "")
    if query:
        seen: set[str] = set()
        for part in query.split(";"):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or not _PROPERTY_NAME.match(name) or not value:
                raise ccp_bad_query("Query must look like Prop1=Value1;Prop2=Value2.")
            if name.casefold() in seen:
                raise ccp_bad_query(f"Property [{name}] appears more than once in Query.")
            seen.add(name.casefold())
            pairs.append((name, value))
        if not pairs:
            raise ccp_bad_query("Query is empty.")
    else:
        for key, display in SEARCH_PARAMS.items():
            value = params.get(key, "")
            if value:
                pairs.append((display, value))
        if not pairs:
            raise ccp_bad_query("The query must contain the AppID and at least one other parameter.")
        if "folder" not in {name.casefold() for name, _ in pairs}:
            pairs.insert(1 if pairs[0][0] == "Safe" else 0, ("Folder", "Root"))

    criteria = []
    for name, value in pairs:
        forbidden = "&%;" if regexp else "&%+;"
        if any(c in value for c in forbidden):
            raise ccp_bad_query(f"The value of [{name}] contains an invalid character.")
        pattern = None
        if regexp:
            if len(value) > MAX_REGEXP:
                raise ccp_bad_query(f"The regular expression for [{name}] is too long.")
            try:
                pattern = re.compile(value, re.IGNORECASE)
            except (re.error, RecursionError, OverflowError):
                raise ccp_bad_query(f"The regular expression for [{name}] is invalid.") from None
        criteria.append(Criterion(name, value, pattern))
    text = ";".join(f"{name}={value}" for name, value in pairs)
    return CcpQuery(app_id, tuple(criteria), text, fail_flag == "true")


def authenticate(application: CcpApplication | None, app_id: str, request: Request) -> CcpApplication:
    if application is None or application.disabled:
        raise ccp_error(403, "APPAP008E", f"ITATS982E User {app_id} is not defined")

    def denied(why: str) -> DevHttpError:
        return ccp_error(
            403,
            "APPAP306E",
            f"Authentication error for App ID [{application.app_id}]. "
            f"Reason: APPAP133E Failed to verify application authentication data: {why}",
        )

    if not application.machine_allowed(request.client_ip):
        raise denied(f'Machine address "{request.client_ip}" is unauthorized')
    subject = subject_string(request.peer_cert)
    if application.allowed_cert_subjects or application.require_certificate:
        if subject is None:
            raise denied("No client certificate was presented")
        if application.allowed_cert_subjects and normalize_subject(subject) not in application.allowed_cert_subjects:
            serial = str((request.peer_cert or {}).get("serialNumber", "unknown"))
            raise denied(f'CertificateSN "{serial}" is unauthorized')
    return application


def _qualified(account: Account) -> str:
    return f"Safe={account.safe};Folder={account.folder};Object={account.name}"


def select_account(accounts: list[Account], query: CcpQuery) -> Account:
    matches = [a for a in accounts if all(c.matches(a) for c in query.criteria)]
    if len(matches) > 1 and any(c.name.casefold() == "virtualusername" for c in query.criteria):
        # A dual-account group answers a VirtualUsername query with its Active member.
        active = [a for a in matches if (a.prop("DualAccountStatus") or "").casefold() == "active"]
        if len(active) == 1:
            matches = active
    if not matches:
        raise ccp_error(
            404,
            "APPAP004E",
            f"Password object matching query [{query.text}] was not found (Diagnostic Info: 5)." + NOT_FOUND_TAIL,
        )
    if len(matches) > 1:
        raise ccp_error(
            400,
            "APPAP227E",
            f"Too many password objects matching query [{query.text}] were found: "
            f"({_qualified(matches[0])} and {_qualified(matches[1])}) (Diagnostic Info: 41)",
        )
    return matches[0]


def ccp_properties(account: Account) -> dict[str, str]:
    """The flat, all-string property set CCP returns; only properties the account defines."""
    body = {"Content": account.secret, "CreationMethod": "PVWA"}
    if account.address:
        body["Address"] = account.address
    body["Safe"] = account.safe
    if account.user_name:
        body["UserName"] = account.user_name
    body["Name"] = account.name
    body["PolicyID"] = account.platform_id
    body["DeviceType"] = account.device_type
    body["Folder"] = account.folder
    body.update(account.properties)
    body["PasswordChangeInProcess"] = "True" if account.change_in_process else "False"
    return body


def get_password(app: AppContext, request: Request) -> Response:
    vault = app.model("vault", VaultModel)
    subject = subject_string(request.peer_cert)
    if subject:
        request.audit.detail = f"cert={subject}"
    query = parse_query(request)
    request.audit.object = query.text[:1024]
    application = authenticate(vault.ccp_application(query.app_id), query.app_id, request)
    visible = [a for a in vault.accounts(app.clock.now()) if application.may_use_safe(a.safe)]
    account = select_account(visible, query)
    if account.change_in_process and query.fail_on_change:
        raise ccp_error(500, "APPAP282E", f"Password [{account.name}] is currently being changed by the CPM.")
    return json_response(200, ccp_properties(account))


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", r"(?i)/AIMWebService/api/Accounts/?", "ccp.get_password", get_password),
)
