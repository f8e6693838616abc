"""Every file the product reads is a regular file read up to a cap: a FIFO, a device, a directory or
a huge sparse file named as a credential, token or certificate ends in a ``ConfigurationError``
naming the setting and the path, at once, and never in a hang or a ``MemoryError``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from cyberark_ops.client import ConfigurationError
from cyberark_ops.client.untrusted import SECRET_FILE_CAP, read_regular_file
from cyberark_ops.fetch import Fetcher
from cyberark_ops.settings import ConnectionSettings
from tests.hostile import HOSTILE_FILES, hostile_file

from .conftest import HOST_API_KEY, HOST_LOGIN, PVWA_PASSWORD, PVWA_USER, Vault

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hostile(tmp_path: Path) -> Callable[[str], Path]:
    return lambda kind: hostile_file(kind, tmp_path)


KINDS = HOSTILE_FILES


def _good_files(vault: Vault, tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "api-key"
    key.write_text(HOST_API_KEY)
    password = tmp_path / "password"
    password.write_text(PVWA_PASSWORD)
    return {"api_key_file": str(key), "password_file": str(password)}


def _minted(vault: Vault, field: str) -> bytes:
    """A workload JWT from the dev issuer, or a Conjur access token as a sidecar writes it."""
    if field == "jwt_token_path":
        response = requests.post(
            f"{vault.url}/_dev/conjur/jwt",
            json={"claims": {"sub": "worker"}, "ttl": 300},
            headers={"Authorization": f"Bearer {vault.info['admin_token']}"},
            verify=vault.ca,
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["jwt"]).encode()
    response = requests.post(
        f"{vault.url}/authn/{vault.account}/{quote(HOST_LOGIN, safe='')}/authenticate",
        data=HOST_API_KEY,
        verify=vault.ca,
        timeout=10,
    )
    response.raise_for_status()
    return response.content


def _case(vault: Vault, good: dict[str, str], field: str, path: str) -> tuple[dict[str, Any], str]:
    """Backend kwargs reading ``path`` as ``field`` (everything else valid), and a reference."""
    base: dict[str, Any] = {"url": vault.url, "ca_bundle": vault.ca, "deadline": 10, "max_retries": 0}
    conjur = {**base, "api": "conjur", "account": vault.account, "login": HOST_LOGIN}
    ccp = {
        **base,
        "api": "ccp",
        "app_id": "AirflowProd",
        "client_cert": vault.info["client_cert"],
        "client_key": vault.info["client_key"],
    }
    ccp_ref = "ccp:Safe=DB-Prod;Object=pg-prod"
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "api_key_file": ({**conjur, "api_key_file": path}, "prod/db/password"),
        "password_file": ({**base, "api": "pvwa", "login": PVWA_USER, "password_file": path}, "pvwa:DB-Prod/pg-prod"),
        "jwt_token_path": (
            {**conjur, "auth_method": "jwt", "jwt_service_id": "airflow", "jwt_token_path": path, "login": None},
            "prod/db/password",
        ),
        "access_token_path": (
            {**conjur, "auth_method": "access_token_file", "access_token_path": path, "login": None},
            "prod/db/password",
        ),
        "ca_bundle": ({**conjur, "api_key_file": good["api_key_file"], "ca_bundle": path}, "prod/db/password"),
        "client_cert": ({**ccp, "client_cert": path}, ccp_ref),
        "client_key": ({**ccp, "client_key": path}, ccp_ref),
    }
    kwargs, ref = cases[field]
    return {k: v for k, v in kwargs.items() if v is not None}, ref


# The client layer names the JWT file by its own parameter.
FIELD_NAMES = {"jwt_token_path": {"jwt_token_path", "token_file"}}
FIELDS = [
    "api_key_file",
    "password_file",
    "jwt_token_path",
    "access_token_path",
    "ca_bundle",
    "client_cert",
    "client_key",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", FIELDS)
def test_a_file_that_is_not_a_bounded_regular_file_is_refused_naming_field_and_path(
    vault: Vault, tmp_path: Path, hostile: Callable[[str], Path], field: str, kind: str
) -> None:
    if field == "ca_bundle" and kind == "directory":
        pytest.skip("a directory is a hashed CA directory (capath), which OpenSSL reads file by file")
    path = hostile(kind)
    kwargs, ref = _case(vault, _good_files(vault, tmp_path), field, str(path))
    with pytest.raises(ConfigurationError) as raised:
        settings = ConnectionSettings.from_backend_kwargs(kwargs)
        with closing(Fetcher(settings, name="test")) as fetcher:
            fetcher.get_secret(ref)
    assert raised.value.field in FIELD_NAMES.get(field, {field})
    assert str(path) in str(raised.value)
    # The client configuration's own early check ("not a readable file") or the reader's.
    assert any(why in str(raised.value) for why in ("not a regular file", "larger than", "not a readable file"))


@pytest.mark.parametrize("field", FIELDS)
def test_a_symlink_to_a_regular_file_is_followed(vault: Vault, tmp_path: Path, field: str) -> None:
    """Kubernetes mounts secrets as symlinks (``..data/``): they are legitimate."""
    good = _good_files(vault, tmp_path)
    if field in good:
        target = good[field]
    elif field in ("ca_bundle", "client_cert", "client_key"):
        target = vault.ca if field == "ca_bundle" else vault.info[field]
    else:
        target = str(tmp_path / field)
        Path(target).write_bytes(_minted(vault, field))
    link = tmp_path / f"{field}.link"
    link.symlink_to(target)
    kwargs, ref = _case(vault, good, field, str(link))
    settings = ConnectionSettings.from_backend_kwargs(kwargs)
    with closing(Fetcher(settings, name="test")) as fetcher:
        assert fetcher.get_secret(ref)


def test_the_reader_reads_at_most_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"k" * (SECRET_FILE_CAP + 1))
    with pytest.raises(ConfigurationError, match="larger than") as raised:
        read_regular_file(path, "api_key_file", cap=SECRET_FILE_CAP)
    assert "kkkk" not in str(raised.value)
    path.write_bytes(b"k" * SECRET_FILE_CAP)
    assert read_regular_file(path, "api_key_file", cap=SECRET_FILE_CAP) == b"k" * SECRET_FILE_CAP
