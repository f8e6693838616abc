"""A toy auth method for the built-in Conjur API, joined through the API table: one strategy and
one ``register_auth_method``.

``toy_password``: a Conjur *user* logs in with its password (``GET /authn/{account}/login``, HTTP
Basic), which answers with the user's API key, and exchanges that key for an access token as
``authn`` does. The password comes from the Password field or from a file named by the
``toy_password_file`` extra, which the settings accept only because the method declares it.
Nothing here edits a package file.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import quote

from cyberark_ops.apis import AuthMethod, SecretField, register_auth_method, unregister_auth_method
from cyberark_ops.client import AccessToken, AuthContext, Call, ConjurApiKeyAuth, ConjurAuth
from cyberark_ops.client.auth import fingerprint
from cyberark_ops.settings import ConnectionSettings

METHOD = "toy_password"
PASSWORD_FILE_FIELD = "toy_password_file"
PASSWORD_FIELD = "toy_password"
"""The password inline in an extra: a secret field of the method, masked by key, refused in backend kwargs."""
REMEDY = "Check the Conjur user name and its password (toy_password logs in with the password, not the API key)"


class ConjurPasswordAuth(ConjurAuth):
    """A Conjur user's password, traded for its API key on every authentication (so a rotated key
    never stops it), then for an access token. The key lives only inside ``authenticate``."""

    __slots__ = ("_password", "_user")

    def __init__(self, user: str, password: str) -> None:
        self._user = user
        self._password = password

    @property
    def login(self) -> str:
        return self._user

    def fingerprint(self) -> str:
        return fingerprint("toy-password", self._user, self._password)

    def token_call(self, ctx: AuthContext) -> Call:
        """The login call; ``authenticate`` follows it with the API key exchange."""
        basic = base64.b64encode(f"{self._user}:{self._password}".encode()).decode("ascii")
        return Call(
            "GET",
            f"{ctx.prefix}/authn/{quote(ctx.account or '', safe='')}/login",
            action="login",
            target=f"as user {self._user!r}",
            headers={"Authorization": f"Basic {basic}"},
            hints={401: REMEDY},
        )

    def authenticate(self, ctx: AuthContext) -> AccessToken:
        api_key = ctx.transport.request(self.token_call(ctx)).text.strip()
        exchange = ConjurApiKeyAuth(self._user, api_key).token_call(ctx)
        return self.read_token(ctx, exchange, ctx.transport.request(exchange))


def build_password_auth(settings: ConnectionSettings, *, register: Callable[[str], None]) -> ConjurPasswordAuth:
    user = settings.require_login("the Conjur user")
    password = settings.credential(PASSWORD_FILE_FIELD, "Conjur user's password", extra_field=PASSWORD_FIELD)
    register(password)
    return ConjurPasswordAuth(user, password)


TOY_PASSWORD = AuthMethod(
    METHOD,
    "a Conjur user's password (toy)",
    strategy=build_password_auth,
    fields=(PASSWORD_FILE_FIELD, PASSWORD_FIELD),
    secrets=(SecretField(PASSWORD_FIELD, file=PASSWORD_FILE_FIELD),),
    remedy=REMEDY,
)


def register_toy_password() -> None:
    register_auth_method("conjur", TOY_PASSWORD)


def unregister_toy_password() -> None:
    unregister_auth_method("conjur", METHOD)
