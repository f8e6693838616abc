"""Builders of the built-in clients, one per (API, auth method) of the table in ``apis``.

Each reads what it needs from validated ``ConnectionSettings`` and hands every credential used to
reach CyberArk itself to ``register`` (so the caller can mask it) before it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .apis import AuthMethod
from .client import (
    CCPClient,
    CCPConfig,
    ConjurAccessTokenFileAuth,
    ConjurApiKeyAuth,
    ConjurAuth,
    ConjurClient,
    ConjurConfig,
    ConjurJWTAuth,
    ConjurRef,
    EventCallback,
    PlatformTokenAuth,
    PVWAClient,
    PVWAConfig,
    PVWALogonAuth,
)
from .client.auth import PVWA_AUTH_TYPES
from .settings import ConnectionSettings, as_bool, convert, settings_error

Register = Callable[[str], None]

PVWA_AUTH_METHODS = tuple(
    AuthMethod(kind, f"{label} logon", "cyberark_ops.builders:pvwa_logon") for kind, label in PVWA_AUTH_TYPES.items()
)
"""Resolved lazily by the PVWA entry of the API table: the list is the auth strategy's own."""


def _conjur(settings: ConnectionSettings, auth: ConjurAuth, on_event: Any) -> ConjurClient:
    cloud = settings.extras.get("cloud")
    config = ConjurConfig(
        account=settings.extras.get("account") or None,
        auth=auth,
        cloud=None if cloud in (None, "") else as_bool(cloud, "cloud"),
        **settings.transport_kwargs(),
    )
    return ConjurClient(config, on_event=on_event)


def conjur_api_key(settings: ConnectionSettings, *, on_event: EventCallback | None, register: Register) -> ConjurClient:
    login = settings.require_login("the Conjur login (host/<id> or a user)")
    api_key = settings.credential("api_key_file", "API key", extra_field="api_key", env_field="api_key_env")
    register(api_key)
    return _conjur(settings, ConjurApiKeyAuth(login, api_key), on_event)


def conjur_jwt(settings: ConnectionSettings, *, on_event: EventCallback | None, register: Register) -> ConjurClient:
    extras = settings.extras
    service_id = extras.get("jwt_service_id")
    token_path = extras.get("jwt_token_path")
    inline_jwt = extras.get("jwt_token")
    if not service_id:
        raise settings_error("jwt_service_id", "JWT auth needs the authn-jwt service id")
    if bool(token_path) == bool(inline_jwt):
        raise settings_error("jwt_token_path", "JWT auth needs exactly one of jwt_token_path and jwt_token")
    if token_path:
        auth = ConjurJWTAuth(str(service_id), token_file=str(token_path), login=settings.login)
    else:
        register(str(inline_jwt))
        auth = ConjurJWTAuth(str(service_id), token_provider=lambda: str(inline_jwt), login=settings.login)
    return _conjur(settings, auth, on_event)


def conjur_access_token_file(
    settings: ConnectionSettings, *, on_event: EventCallback | None, register: Register
) -> ConjurClient:
    path = settings.extras.get("access_token_path")
    if not path:
        raise settings_error("access_token_path", "access_token_file auth needs the token file's path")
    return _conjur(settings, ConjurAccessTokenFileAuth(str(path)), on_event)


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


def pvwa_logon(settings: ConnectionSettings, *, on_event: EventCallback | None, register: Register) -> PVWAClient:
    method = str(settings.extras.get("auth_method") or "cyberark").lower()
    login = settings.require_login("the PVWA user name")
    password = settings.credential("password_file", "password", env_field="password_env")
    register(password)
    auth = PVWALogonAuth(login, password, method)
    return PVWAClient(PVWAConfig(auth=auth, **settings.transport_kwargs()), on_event=on_event)


def privileged_cloud(settings: ConnectionSettings, *, on_event: EventCallback | None, register: Register) -> PVWAClient:
    identity_url = settings.extras.get("identity_url")
    if not identity_url:
        raise settings_error("identity_url", "the Identity tenant URL (https://<tenant>.id.cyberark.cloud) is required")
    client_id = settings.require_login("the OAuth client id")
    client_secret = settings.credential("password_file", "client secret", env_field="password_env")
    register(client_secret)
    auth = PlatformTokenAuth(str(identity_url), client_id, client_secret)
    return PVWAClient(PVWAConfig(auth=auth, **settings.transport_kwargs()), on_event=on_event)


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
