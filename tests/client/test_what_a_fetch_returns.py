"""What a fetch returns: a ``Credential`` from every client's ``get``, and a value only when the answer
really is one (an HTML maintenance page or a truncated body is ``InvalidResponse``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cyberark_ops.client import ConjurApiKeyAuth, ConjurClient, InvalidResponse, TokenCache
from cyberark_ops.client.refs import ConjurRef

from .conftest import ADMIN_API_KEY, ADMIN_LOGIN, Vault


def test_an_html_page_is_not_returned_as_a_conjur_value(vault: Vault, token_cache: TokenCache) -> None:
    client = ConjurClient(vault.conjur_config(), token_cache=token_cache)
    client.authenticate()
    vault.fault("conjur.retrieve", kind="content_type", count=1)
    with pytest.raises(InvalidResponse) as raised:
        client.get_secret("prod/db/password")
    assert "HTML" in str(raised.value)
    vault.fault("conjur.retrieve", kind="malformed", count=1)
    with pytest.raises(InvalidResponse):
        client.get_secret("prod/db/password")
    # Real Conjur's answers still pass: octet-stream and an annotated mime type.
    assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert client.get_secret("prod/app/config").startswith("{")


def test_a_variable_annotated_text_html_is_still_returned(
    make_vault: Callable[..., Vault], token_cache: TokenCache
) -> None:
    seed = {
        "conjur": {
            "account": "demo",
            "users": [{"id": ADMIN_LOGIN, "api_key": ADMIN_API_KEY}],
            "variables": [{"id": "web/banner", "mime_type": "text/html", "value": "<b>hello</b>"}],
        }
    }
    vault = make_vault(seed)
    client = ConjurClient(
        vault.conjur_config(auth=ConjurApiKeyAuth(ADMIN_LOGIN, ADMIN_API_KEY)), token_cache=token_cache
    )
    assert client.get_secret("web/banner") == "<b>hello</b>"


def test_every_client_answers_get_with_a_credential(vault: Vault, token_cache: TokenCache) -> None:
    with ConjurClient(vault.conjur_config(), token_cache=token_cache) as conjur:
        credential = conjur.get(ConjurRef("prod/api/key", version=2), reason="dag=x")
    assert credential.secret == "demo-api-key-v2"
    assert credential.source == "conjur:prod/api/key?version=2"
    assert "demo-api-key-v2" not in repr(credential)
