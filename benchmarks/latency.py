"""Figure 1: per-secret fetch latency against the floor, and a task's cold first fetch.

The floor is what the wire allows from Python: one keep-alive ``requests.Session`` GET with a
precomputed token header and ``verify=<CA>`` passed per request (``REQUESTS_CA_BUNDLE`` would
otherwise replace the Session's CA; the client layer never reads it). Both sides verify against the
same dev CA, over the same loopback TLS, in the same shuffled rounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from cyberark_ops.client import CCPClient, CCPConfig, CCPRef, ConjurApiKeyAuth, ConjurClient, ConjurConfig, TokenCache
from cyberark_ops.client import tls as client_tls

from ._common import (
    CCP_APP,
    CCP_OBJECT,
    CCP_SAFE,
    HOST_API_KEY,
    HOST_LOGIN,
    SECRET_ID,
    Config,
    Row,
    Server,
    interleaved,
    median,
    ms,
    p99,
    raw_token_header,
)

FIG = "1 latency"
WARM_TARGET = 1.05
COLD_TARGET = 1.10


def conjur_config(server: Server, **overrides: Any) -> ConjurConfig:
    """Default client settings: only what a user must give (URL, account, identity, CA)."""
    settings: dict[str, Any] = {
        "base_url": server.url,
        "ca_bundle": server.ca,
        "account": server.account,
        "auth": ConjurApiKeyAuth(HOST_LOGIN, HOST_API_KEY),
    }
    settings.update(overrides)
    return ConjurConfig(**settings)


def _sdk_fetch(server: Server) -> Callable[[], object] | None:
    """The official SDK in sync mode, verifying against the dev CA (None when not installed)."""
    try:
        from conjur_api import Client
        from conjur_api.models import ConjurConnectionInfo, CredentialsData, SslVerificationMode
        from conjur_api.providers import AuthnAuthenticationStrategy, SimpleCredentialsProvider
    except ImportError:
        return None
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    info = ConjurConnectionInfo(conjur_url=server.url, account=server.account, cert_file=server.ca)
    provider = SimpleCredentialsProvider()
    provider.save(CredentialsData(machine=server.url, username=HOST_LOGIN, api_key=HOST_API_KEY))
    client = Client(
        info,
        ssl_verification_mode=SslVerificationMode.SELF_SIGN,
        authn_strategy=AuthnAuthenticationStrategy(provider),
        async_mode=False,
    )
    root.setLevel(level)  # Client() calls logging.basicConfig; leave the host's logging alone
    root.handlers[:] = handlers
    asyncio.set_event_loop(None)
    return lambda: client.get(SECRET_ID)


def _pyaim_fetch(server: Server) -> Callable[[], object] | None:
    try:
        from pyaim import CCPPasswordREST
    except ImportError:
        return None
    aim = CCPPasswordREST(server.url, verify=server.ca, cert=(server.info["client_cert"], server.info["client_key"]))
    return lambda: aim.GetPassword(appid=CCP_APP, safe=CCP_SAFE, object=CCP_OBJECT)


def run(server: Server, config: Config) -> list[Row]:
    url = f"{server.url}/secrets/{server.account}/variable/{quote(SECRET_ID, safe='')}"
    floor_session = requests.Session()
    header = raw_token_header(server, floor_session)
    cert = (server.info["client_cert"], server.info["client_key"])
    ccp_url = f"{server.url}/AIMWebService/api/Accounts"
    ccp_params = {"AppID": CCP_APP, "Safe": CCP_SAFE, "Object": CCP_OBJECT}
    ccp_session = requests.Session()

    client = ConjurClient(conjur_config(server), token_cache=TokenCache())
    ccp = CCPClient(
        CCPConfig(base_url=server.url, ca_bundle=server.ca, app_id=CCP_APP, client_cert=cert[0], client_key=cert[1])
    )
    ccp_ref = CCPRef.of(Safe=CCP_SAFE, Object=CCP_OBJECT)
    expected = client.get_secret(SECRET_ID)
    if floor_session.get(url, headers=header, verify=server.ca, timeout=30).text != expected:
        raise AssertionError("the floor and the client read different values")

    def floor() -> object:
        response = floor_session.get(url, headers=header, verify=server.ca, timeout=30)
        response.raise_for_status()
        return response.content

    def ccp_floor() -> object:
        response = ccp_session.get(ccp_url, params=ccp_params, cert=cert, verify=server.ca, timeout=30)
        response.raise_for_status()
        return response.json()

    n = config.latency_n
    scenarios: dict[str, tuple[Callable[[], object], int]] = {
        "floor": (floor, n),
        "client": (lambda: client.get_secret(SECRET_ID), n),
        "ccp_floor": (ccp_floor, n // 2),
        "ccp_client": (lambda: ccp.get(ccp_ref), n // 2),
    }
    sdk = _sdk_fetch(server)
    aim = _pyaim_fetch(server)
    if sdk is not None:
        scenarios["sdk"] = (sdk, config.sdk_n)
    if aim is not None:
        scenarios["pyaim"] = (aim, n // 4)
    samples = interleaved(scenarios)
    base_med, base_p99 = median(samples["floor"]), p99(samples["floor"])
    ccp_med = median(samples["ccp_floor"])

    def latency(name: str) -> str:
        return f"median {ms(median(samples[name]))}, p99 {ms(p99(samples[name]))} (n={len(samples[name])})"

    rows = [
        Row(
            FIG,
            "floor: keep-alive `requests.Session` GET, token header, verify=CA",
            latency("floor"),
            "1.00",
            "—",
            None,
        ),
    ]
    med_ratio = median(samples["client"]) / base_med
    p99_ratio = p99(samples["client"]) / base_p99
    rows.append(
        Row(
            FIG,
            "warm `ConjurClient.get_secret`, median",
            latency("client"),
            f"{med_ratio:.2f}x floor",
            f"≤ {WARM_TARGET:.2f}x floor",
            med_ratio <= WARM_TARGET,
        )
    )
    rows.append(
        Row(
            FIG,
            "warm `ConjurClient.get_secret`, p99",
            "",
            f"{p99_ratio:.2f}x floor p99",
            f"≤ {WARM_TARGET:.2f}x",
            p99_ratio <= WARM_TARGET,
        )
    )
    if sdk is None:
        rows.append(
            Row(
                FIG,
                "official `conjur-api` SDK `Client.get` (sync, SELF_SIGN)",
                "not installed",
                "—",
                "—",
                "not installed",
            )
        )
    else:
        rows.append(
            Row(
                FIG,
                "official `conjur-api` SDK `Client.get` (sync, SELF_SIGN)",
                latency("sdk"),
                f"{median(samples['sdk']) / base_med:.1f}x floor",
                "— (what users would otherwise use)",
                None,
            )
        )
    rows.append(
        Row(
            FIG,
            "CCP floor: keep-alive Session GET, client cert, verify=CA",
            latency("ccp_floor"),
            f"{ccp_med / base_med:.2f}x Conjur floor",
            "—",
            None,
        )
    )
    rows.append(
        Row(
            FIG,
            "warm `CCPClient.get`",
            latency("ccp_client"),
            f"{median(samples['ccp_client']) / ccp_med:.2f}x CCP floor",
            "— (no target in the issue)",
            None,
        )
    )
    if aim is None:
        rows.append(Row(FIG, "`pyaim` `CCPPasswordREST.GetPassword`", "not installed", "—", "—", "not installed"))
    else:
        rows.append(
            Row(
                FIG,
                "`pyaim` `CCPPasswordREST.GetPassword`",
                latency("pyaim"),
                f"{median(samples['pyaim']) / ccp_med:.2f}x CCP floor",
                "— (what users would otherwise use)",
                None,
            )
        )
    client.close()
    ccp.close()
    floor_session.close()
    ccp_session.close()
    rows += cold(server, config)
    return rows


def cold(server: Server, config: Config) -> list[Row]:
    """A task's first fetch: new client, new TLS context, authenticate, get; against the same by hand."""
    url = f"{server.url}/secrets/{server.account}/variable/{quote(SECRET_ID, safe='')}"

    def ours() -> object:
        client_tls._ssl_context.cache_clear()  # a new task process has no context yet
        with ConjurClient(conjur_config(server), token_cache=TokenCache()) as client:
            return client.get_secret(SECRET_ID)

    def by_hand() -> object:
        with requests.Session() as session:
            header = raw_token_header(server, session)
            response = session.get(url, headers=header, verify=server.ca, timeout=30)
            response.raise_for_status()
            return response.text

    samples = interleaved({"ours": (ours, config.cold_n), "hand": (by_hand, config.cold_n)})
    ratio = median(samples["ours"]) / median(samples["hand"])
    return [
        Row(
            FIG,
            "cold first fetch by hand (`requests`: Session, authenticate, GET)",
            f"median {ms(median(samples['hand']))} (n={len(samples['hand'])})",
            "1.00",
            "—",
            None,
        ),
        Row(
            FIG,
            "cold first fetch: new `ConjurClient` + TLS context + authenticate + get",
            f"median {ms(median(samples['ours']))} (n={len(samples['ours'])})",
            f"{ratio:.2f}x by hand",
            f"≤ {COLD_TARGET:.2f}x by hand",
            ratio <= COLD_TARGET,
        ),
    ]
