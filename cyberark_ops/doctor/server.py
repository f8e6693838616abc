"""The server checks: can it be reached, and does its clock agree with this machine's. Neither
needs an identity, so they tell a network or time problem apart from an authentication one.
"""

from __future__ import annotations

from typing import Any

from ..client import BaseClient, ConfigurationError, CyberArkError
from ..settings import ConnectionSettings
from .report import FAIL, PASS, SKIP, WARN, Check

SKEW_WARN = 30.0
SKEW_FAIL = 300.0
"""Seconds of clock difference: JWTs and tokens with ``iat``/``exp`` start to misbehave at a few
minutes (Conjur's authn-jwt allows no leeway at all)."""


def check_reachability(client: BaseClient[Any, Any], settings: ConnectionSettings) -> Check:
    name = "reachability"
    try:
        return Check(name, PASS, client.check_connection())
    except ConfigurationError as exc:
        return Check(
            name,
            FAIL,
            str(exc),
            "The server presents a certificate that ca_bundle does not trust (or for another host name): "
            "set ca_bundle to the CA that signed it (ask for the chain: openssl s_client -showcerts)",
        )
    except CyberArkError as exc:
        return Check(
            name,
            FAIL,
            str(exc),
            f"Check the URL and port ({settings.base_url}), that the server runs, and firewalls / proxies "
            "between this machine and it",
        )


def check_clock(client: BaseClient[Any, Any]) -> Check:
    name = "clock skew"
    offset = client.server_clock_offset
    if offset is None:
        return Check(name, SKIP, "no dated HTTP answer from the server yet (give --path for CCP)")
    ahead = "ahead of" if offset > 0 else "behind"
    if abs(offset) < 1:
        detail = "the server's clock agrees with this machine's to the second (HTTP Date header)"
    else:
        detail = f"the server's clock is {abs(offset):.0f} s {ahead} this machine's (HTTP Date header)"
    remedy = "Synchronise both clocks with NTP (chrony / systemd-timesyncd); JWTs and tokens depend on it"
    if abs(offset) > SKEW_FAIL:
        return Check(name, FAIL, detail, remedy)
    if abs(offset) > SKEW_WARN:
        return Check(name, WARN, detail, remedy)
    return Check(name, PASS, detail)
