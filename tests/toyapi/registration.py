"""The toy API joined to cyberark-ops through its table: one ``register_api`` (its reference scheme included).

Nothing here edits a package file: this is all a real fourth API would add outside the client
layer (the client module) and the dev server (the emulator package).
"""

from __future__ import annotations

from typing import Any

from cyberark_ops.apis import ApiSpec, AuthMethod, register_api, unregister_api
from cyberark_ops.settings import ConnectionSettings, settings_error

from .client import ToyClient, ToyConfig, ToyKeyAuth, ToyRef, parse_toy_ref


def build_toy_client(settings: ConnectionSettings, *, on_event: Any, register: Any) -> ToyClient:
    user = settings.require_login("the toy user")
    key = settings.credential("password_file", "toy key", env_field="password_env")
    if settings.extras.get("toy_realm") not in (None, "main"):
        raise settings_error("toy_realm", "the toy emulator has only the realm 'main'")
    register(key)
    return ToyClient(ToyConfig(auth=ToyKeyAuth(user, key), **settings.transport_kwargs()), on_event=on_event)


def check_toy(client: ToyClient, settings: ConnectionSettings) -> str:
    client._auth.token()
    return f"Authenticated to Toy as {client.login!r}."


TOY_SPEC = ApiSpec(
    name="toy",
    label="Toy",
    ref_scheme="toy",
    ref_types=ToyRef,
    auth_methods=(AuthMethod("key", "a toy user and key", build_toy_client),),
    check=check_toy,
    extra_fields=("toy_realm",),
    ref_parser=parse_toy_ref,
)


def register_toy() -> None:
    register_api(TOY_SPEC)


def unregister_toy() -> None:
    unregister_api("toy")
