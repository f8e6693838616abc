"""What the API table in ``apis`` names for the built-in APIs: per API the builder of its client,
per auth method the builder of its strategy (or, for CCP, of the whole client), the Test button's
checks, batch retrieval and the doctor's listings.

Each builder reads what it needs from validated ``ConnectionSettings`` and hands every credential
used to reach CyberArk itself to ``register`` (so the caller can mask it) before it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .client import (
    CCPClient,
    CCPConfig,
    ConjurAccessTokenFileAuth,
    ConjurApiKeyAuth,
    ConjurAuth,
    ConjurAzureAuth,
    ConjurClient,
    ConjurConfig,
    ConjurGCPAuth,
    ConjurIAMAuth,
    ConjurJWTAuth,
    ConjurRef,
    CredentialRef,
    EventCallback,
    PlatformTokenAuth,
    PVWAAuth,
    PVWAClient,
    PVWAConfig,
    PVWALogonAuth,
    PVWARef,
)
from .client.auth.conjur_cloud import AZURE_IMDS_URL, GCP_METADATA_URL
from .settings import ConnectionSettings, as_bool, convert, settings_error

Register = Callable[[str], None]

# -- clients: one per API, around any strategy of one of its auth methods ----------------------------


def conjur_client(settings: ConnectionSettings, auth: ConjurAuth, *, on_event: EventCallback | None) -> ConjurClient:
    cloud = settings.extras.get("cloud")
    config = ConjurConfig(
        account=settings.extras.get("account") or None,
        auth=auth,
        cloud=None if cloud in (None, "") else as_bool(cloud, "cloud"),
        **settings.transport_kwargs(),
    )
    return ConjurClient(config, on_event=on_event)


def pvwa_client(settings: ConnectionSettings, auth: PVWAAuth, *, on_event: EventCallback | None) -> PVWAClient:
    """PVWA and Privilege Cloud: the same client, logged on by a logon type or a platform token."""
    return PVWAClient(
        PVWAConfig(auth=auth, **settings.transport_kwargs(), **pvwa_retrieve_kwargs(settings)), on_event=on_event
    )


def pvwa_retrieve_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """The exclusive-account and ticket extras (``PVWA_RETRIEVE_FIELDS``), as ``PVWAConfig`` fields."""
    extras = settings.extras
    kwargs: dict[str, Any] = {}
    if extras.get("check_in") is not None:
        kwargs["check_in"] = as_bool(extras["check_in"], "check_in")
    for name in ("ticketing_system", "ticket_id"):
        value = extras.get(name)
        if value is not None and value != "":
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise settings_error(name, f"must be a string, not {type(value).__name__}")
            kwargs[name] = str(value)
    return kwargs


# -- auth strategies: one per auth method ------------------------------------------------------------


def conjur_api_key(settings: ConnectionSettings, *, register: Register) -> ConjurApiKeyAuth:
    login = settings.require_login("the Conjur login (host/<id> or a user)")
    api_key = settings.credential("api_key_file", "API key", extra_field="api_key", env_field="api_key_env")
    register(api_key)
    return ConjurApiKeyAuth(login, api_key)


def conjur_jwt(settings: ConnectionSettings, *, register: Register) -> ConjurJWTAuth:
    extras = settings.extras
    service_id = extras.get("jwt_service_id")
    token_path = extras.get("jwt_token_path")
    inline_jwt = extras.get("jwt_token")
    if not service_id:
        raise settings_error("jwt_service_id", "JWT auth needs the authn-jwt service id")
    if bool(token_path) == bool(inline_jwt):
        raise settings_error("jwt_token_path", "JWT auth needs exactly one of jwt_token_path and jwt_token")
    if token_path:
        return ConjurJWTAuth(str(service_id), token_file=str(token_path), login=settings.login)
    register(str(inline_jwt))
    return ConjurJWTAuth(str(service_id), token_provider=lambda: str(inline_jwt), login=settings.login)


def conjur_access_token_file(settings: ConnectionSettings, *, register: Register) -> ConjurAccessTokenFileAuth:
    path = settings.extras.get("access_token_path")
    if not path:
        raise settings_error("access_token_path", "access_token_file auth needs the token file's path")
    return ConjurAccessTokenFileAuth(str(path))


def _service_id(settings: ConnectionSettings, method: str) -> str:
    service_id = settings.extras.get("service_id")
    if not service_id:
        raise settings_error("service_id", f"{method} needs the authenticator's service id ({method}/<service_id>)")
    return str(service_id)


def conjur_iam(settings: ConnectionSettings, *, register: Register) -> ConjurIAMAuth:
    """AWS credentials come from botocore's chain at authentication time; what it resolves (secret
    key, session token) goes to ``register`` then, before it signs anything."""
    extras = settings.extras
    return ConjurIAMAuth(
        _service_id(settings, "authn-iam"),
        settings.require_login("the Conjur host (host/<policy>/<aws account id>/<iam role name>)"),
        aws_region=str(extras.get("aws_region") or "global"),
        aws_profile=str(extras["aws_profile"]) if extras.get("aws_profile") else None,
        sts_url=str(extras["aws_sts_url"]) if extras.get("aws_sts_url") else None,
        on_secret=register,
    )


def conjur_azure(settings: ConnectionSettings, *, register: Register) -> ConjurAzureAuth:
    extras = settings.extras
    return ConjurAzureAuth(
        _service_id(settings, "authn-azure"),
        settings.require_login("the Conjur host (host/<policy>/<id>)"),
        client_id=str(extras["azure_client_id"]) if extras.get("azure_client_id") else None,
        metadata_url=str(extras.get("metadata_url") or AZURE_IMDS_URL),
        on_secret=register,
    )


def conjur_gcp(settings: ConnectionSettings, *, register: Register) -> ConjurGCPAuth:
    return ConjurGCPAuth(
        settings.require_login("the Conjur host the token's audience names (host/<policy>/<id>)"),
        metadata_url=str(settings.extras.get("metadata_url") or GCP_METADATA_URL),
        on_secret=register,
    )


def pvwa_logon(settings: ConnectionSettings, *, register: Register) -> PVWALogonAuth:
    method = str(settings.extras.get("auth_method") or "cyberark").lower()
    login = settings.require_login("the PVWA user name")
    password = settings.credential("password_file", "password", env_field="password_env")
    register(password)
    return PVWALogonAuth(login, password, method)


def platform_token(settings: ConnectionSettings, *, register: Register) -> PlatformTokenAuth:
    identity_url = settings.extras.get("identity_url")
    if not identity_url:
        raise settings_error("identity_url", "the Identity tenant URL (https://<tenant>.id.cyberark.cloud) is required")
    client_id = settings.require_login("the OAuth client id")
    client_secret = settings.credential("password_file", "client secret", env_field="password_env")
    register(client_secret)
    return PlatformTokenAuth(str(identity_url), client_id, client_secret)


# -- CCP: no strategy (the AppID's rules authenticate each request), so the method builds the client


def ccp_app_id(settings: ConnectionSettings, *, on_event: EventCallback | None, register: Register) -> CCPClient:
    extras = settings.extras
    app_id = extras.get("app_id")
    if not app_id:
        raise settings_error("app_id", "the CCP application id (AppID) is required")
    kwargs = settings.transport_kwargs()
    ccp_kwargs: dict[str, Any] = {}
    if extras.get("service_path"):
        ccp_kwargs["service_path"] = str(extras["service_path"])
    if "fail_on_password_change" in extras:
        ccp_kwargs["fail_on_password_change"] = as_bool(extras["fail_on_password_change"], "fail_on_password_change")
    for name, kind in (("password_change_retries", int), ("password_change_wait", float)):
        value = convert(extras.get(name), kind, name)
        if value is not None:
            ccp_kwargs[name] = value
    timeout = convert(extras.get("connection_timeout"), int, "connection_timeout")
    if timeout is None and "read_timeout" in kwargs:
        # CCP must give up on the Vault before we give up on CCP.
        timeout = max(1, int(kwargs["read_timeout"] * 2 / 3))
    if timeout is not None:
        ccp_kwargs["connection_timeout"] = timeout
    return CCPClient(CCPConfig(app_id=str(app_id), **ccp_kwargs, **kwargs), on_event=on_event)


# -- the Test button: authenticate only, fetch nothing ------------------------------------------------


def check_conjur(client: ConjurClient, settings: ConnectionSettings) -> str:
    who = client.whoami()
    return f"Authenticated to Conjur as {who.get('username', client.login)!r}."


def check_ccp(client: CCPClient, settings: ConnectionSettings) -> str:
    """Says what it could not check: CCP has no call that authenticates without querying an
    account, so "success" would otherwise promise fetches that then fail with APPAP306E."""
    checked = client.check_service()
    app_id = settings.extras.get("app_id")
    unchecked = (
        f" Not checked: whether AppID {app_id!r} exists and accepts this machine"
        + (" and its client certificate" if settings.extras.get("client_cert") else "")
        + "; the first fetch shows it (403 APPAP306E if not)."
    )
    if not settings.extras.get("client_cert"):
        unchecked += " No client certificate is configured: an AppID that requires one refuses every fetch."
    return checked + unchecked


def check_pvwa(client: PVWAClient, settings: ConnectionSettings) -> str:
    client.logon()
    return f"Logged on to {settings.api} as {client.login!r} (and logged off)."


# -- batch retrieval --------------------------------------------------------------------------------


def conjur_batch(client: ConjurClient, refs: Sequence[object], reason: str) -> dict[object, str]:
    """Unversioned Conjur variables in as few requests as the batch endpoint allows."""
    batchable = [ref for ref in refs if isinstance(ref, ConjurRef) and ref.version is None]
    if not batchable:
        return {}
    fetched = client.get_secrets([ref.variable_id for ref in batchable], reason=reason)
    return {ref: fetched[ref.variable_id] for ref in batchable}


# -- the doctor: what the identity can see ----------------------------------------------------------


def _conjur_id(resource_id: str) -> str:
    """``account:variable:prod/db/password`` → ``prod/db/password``."""
    parts = resource_id.split(":", 2)
    return parts[2] if len(parts) == 3 else resource_id


def list_conjur(client: ConjurClient, checked: Sequence[CredentialRef]) -> tuple[set[str], set[str], str]:
    visible = {_conjur_id(str(item.get("id", ""))) for item in client.list_variables()}
    used = {getattr(ref, "variable_id", "") for ref in checked}
    return visible, used, "variable(s)"


def list_pvwa(client: PVWAClient, checked: Sequence[CredentialRef]) -> tuple[set[str], set[str], str]:
    accounts = client.search()
    visible = {f"{a.get('safeName')}/{a.get('name')}" for a in accounts}
    by_id = {str(a.get("id")): f"{a.get('safeName')}/{a.get('name')}" for a in accounts}
    used = set()
    for ref in checked:
        if isinstance(ref, PVWARef):
            used.add(by_id.get(ref.account_id or "", "") if ref.account_id else f"{ref.safe}/{ref.name}")
    return visible, used, "account(s)"


def ccp_no_logon(settings: ConnectionSettings) -> str:
    app_id = settings.extras.get("app_id")
    return (
        f"{settings.spec.label} has no separate logon: AppID {app_id!r} (and its client certificate) "
        "is checked on each fetch; see the readable-path checks"
    )
