"""Figure 3: the secrets backend's vault calls for 1,000 ``get_connection`` lookups of 10 ids.

Three cases, each starting from a reset process state (no cached value, no client, no token):
the cache on (the default TTL), the cache off (``cache_ttl_seconds: 0``), and ids that the
``connections_lookup_pattern`` excludes, which must never reach the vault.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from cyberark_ops.client import PROCESS_TOKEN_CACHE
from cyberark_ops.secrets import CyberArkSecretsBackend, reset_backend_state

from ._common import BACKEND_ENV, BACKEND_IDS, HOST_API_KEY, HOST_LOGIN, Config, Row, Server, ms

FIG = "3 secrets backend"


def _kwargs(server: Server, key_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "url": server.url,
        "account": server.account,
        "login": HOST_LOGIN,
        "api_key_file": str(key_file),
        "ca_bundle": server.ca,
        "env": BACKEND_ENV,
        "connections_path": "airflow/{env}/connections/{conn_id}",
        "connections_lookup_pattern": "^bench_",
        **extra,
    }


def _case(server: Server, kwargs: dict[str, Any], ids: list[str], lookups: int) -> tuple[int, float, int]:
    """Vault calls, wall seconds and connections found for ``lookups`` lookups cycling over ``ids``."""
    reset_backend_state()
    PROCESS_TOKEN_CACHE.clear()
    backend = CyberArkSecretsBackend(**kwargs)
    found = 0
    with server.counting() as calls:
        start = time.perf_counter()
        for i in range(lookups):
            if backend.get_connection(ids[i % len(ids)]) is not None:
                found += 1
        spent = time.perf_counter() - start
    reset_backend_state()
    return len(calls), spent, found


def run(server: Server, config: Config) -> list[Row]:
    n = config.backend_lookups
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "api-key"
        key_file.write_text(HOST_API_KEY)
        on = _case(server, _kwargs(server, key_file), BACKEND_IDS, n)
        off = _case(server, _kwargs(server, key_file, cache_ttl_seconds=0), BACKEND_IDS, n)
        outside = _case(server, _kwargs(server, key_file), [f"other_{i}" for i in range(10)], n)
    if on[2] != n or off[2] != n or outside[2] != 0:
        raise AssertionError(f"unexpected lookup results: {on[2]}, {off[2]}, {outside[2]} of {n}")
    per = len(BACKEND_IDS)
    return [
        Row(
            FIG,
            f"{n} lookups of {per} ids, cache off (`cache_ttl_seconds: 0`)",
            f"{off[0]} calls, {ms(off[1] / n)} per lookup",
            "1.00",
            "— (baseline: one call per lookup + authenticate)",
            None,
        ),
        Row(
            FIG,
            f"{n} lookups of {per} ids, cache on (default TTL)",
            f"{on[0]} calls, {ms(on[1] / n)} per lookup",
            f"{on[1] / off[1]:.3f}x cache off (time)",
            f"≤ {per + 1} calls (one per id + authenticate)",
            on[0] <= per + 1,
        ),
        Row(
            FIG,
            f"{n} lookups of {per} ids outside `connections_lookup_pattern`",
            f"{outside[0]} calls, {ms(outside[1] / n)} per lookup",
            f"{outside[1] / off[1]:.3f}x cache off (time)",
            "0 calls",
            outside[0] == 0,
        ),
    ]
