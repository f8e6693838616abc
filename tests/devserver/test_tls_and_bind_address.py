"""How the dev server listens: TLS from its own CA (client certificates optional, certificates kept
across restarts), plain HTTP on request, loopback addresses only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from cyberark_ops.devserver import DevServer, SeedError
from tests.conftest import DevClient

# The Conjur status page is the cheapest unauthenticated endpoint to aim knobs at.
STATUS_PATH = "/"


def test_tls_is_verified_with_the_dev_ca_and_client_certs_are_optional(client: DevClient) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(client.url + STATUS_PATH, verify=True, timeout=5)
    assert client.get(STATUS_PATH).status_code == 200
    assert client.with_client_cert().get(STATUS_PATH).status_code == 200


def test_certificates_are_reused_across_restarts(tmp_path: Path, make_server: Callable[..., DevServer]) -> None:
    first = make_server(state_dir=tmp_path)
    ca = Path(first.info()["ca_cert"]).read_bytes()
    first.stop()
    second = make_server(state_dir=tmp_path)
    assert Path(second.info()["ca_cert"]).read_bytes() == ca


def test_plain_http_mode(make_server: Callable[..., DevServer]) -> None:
    server = make_server(tls=False)
    assert server.url.startswith("http://")
    assert server.info()["ca_cert"] is None
    assert requests.get(server.url + STATUS_PATH, timeout=5).status_code == 200


def test_non_loopback_host_is_refused() -> None:
    with pytest.raises(SeedError, match="loopback"):
        DevServer(host="0.0.0.0")
