"""``auth_method: access_token_file``: a sidecar keeps the Conjur token fresh; no API key in Airflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cyberark_ops.client import PROCESS_TOKEN_CACHE, ConfigurationError
from cyberark_ops.devserver import DevServer
from cyberark_ops.hooks.cyberark import CyberArkHook
from cyberark_ops.secrets import CyberArkSecretsBackend, VaultLookupFailed, reset_backend_state
from cyberark_ops.testing.sidecar import ConjurTokenSidecar
from tests.client.conftest import HOST_API_KEY, HOST_LOGIN
from tests.hooks.conftest import Connections


def _sidecar(server: DevServer, path: Path, every: float = 3600) -> ConjurTokenSidecar:
    info = server.info()
    return ConjurTokenSidecar(
        url=info["url"],
        account=info["conjur_account"],
        login=HOST_LOGIN,
        api_key=HOST_API_KEY,
        path=path,
        ca_cert=info["ca_cert"],
        refresh_every=every,
    )


def test_the_hook_reads_the_token_file_and_rereads_it_after_a_revocation(conns: Connections, tmp_path: Path) -> None:
    token_file = tmp_path / "access-token"
    with _sidecar(conns.server, token_file) as sidecar:
        hook = CyberArkHook(
            conns.conjur(
                "token_file",
                login=None,
                password=None,
                auth_method="access_token_file",
                access_token_path=str(token_file),
            )
        )
        assert hook.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
        assert hook.get_secret("prod/db/username") == "airflow_demo"
        assert len(conns.calls("conjur")) == 3  # the sidecar's authenticate, two retrievals
        conns.server.app.revoke_tokens()
        sidecar.refresh()  # the sidecar notices; the hook only sees a 401 and reads the file again
        assert hook.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
        statuses = [event["status"] for event in conns.calls("conjur") if event["action"] == "conjur.retrieve"]
        assert statuses == [200, 200, 401, 200]
        hook.close()


def test_an_expired_token_file_fails_clearly_until_the_sidecar_refreshes_it(
    make_server: Callable[..., DevServer], tmp_path: Path
) -> None:
    PROCESS_TOKEN_CACHE.clear()
    server = make_server()
    server.app.set_token_ttl(31)  # renewal_delay(31 s) = 24.8 s
    token_file = tmp_path / "access-token"
    info = server.info()
    with _sidecar(server, token_file) as sidecar:
        backend = CyberArkSecretsBackend(
            url=info["url"],
            ca_bundle=info["ca_cert"],
            account=info["conjur_account"],
            auth_method="access_token_file",
            access_token_path=str(token_file),
            variables_path="prod/db/{variable}",
            cache_ttl_seconds=0,
        )
        reset_backend_state()
        assert backend.get_variable("password") == "Demo-PG-Passw0rd!"
        server.app.clock.advance(40)  # the token in the file has expired, and nobody refreshed it yet
        with pytest.raises(VaultLookupFailed, match="variable 'username'") as raised:
            backend.get_variable("username")
        assert "401" in str(raised.value) or "rejected" in str(raised.value)
        sidecar.refresh()
        assert backend.get_variable("username") == "airflow_demo"
        statuses = [e["status"] for e in server.app.audit.events() if e["action"] == "conjur.retrieve"]
        assert statuses == [200, 401, 401, 200], "the file is re-read after each 401; a rejected token is not kept"
    reset_backend_state()


def test_an_unreadable_or_foreign_token_file_is_a_clear_error(conns: Connections, tmp_path: Path) -> None:
    missing = CyberArkHook(
        conns.conjur(
            "missing",
            login=None,
            password=None,
            auth_method="access_token_file",
            access_token_path=str(tmp_path / "nope"),
        )
    )
    with pytest.raises(ConfigurationError, match="access_token_path: cannot read the Conjur access token"):
        missing.get_secret("prod/db/password")
    junk = tmp_path / "junk"
    junk.write_text("not-a-token")
    foreign = CyberArkHook(
        conns.conjur("junk", login=None, password=None, auth_method="access_token_file", access_token_path=str(junk))
    )
    with pytest.raises(ConfigurationError, match="does not hold a Conjur access token"):
        foreign.get_secret("prod/db/password")
    assert conns.calls() == []
