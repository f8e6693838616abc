"""A task process for the multi-process pacing test: spawned, so it imports only what it needs."""

from __future__ import annotations

from typing import Any

from cyberark_ops.client import ConjurApiKeyAuth, ConjurClient, ConjurConfig, CyberArkError


def fetch(settings: dict[str, Any], login: str, api_key: str, count: int, start: Any, results: Any) -> None:
    """Authenticates, waits for the common start, fetches ``count`` times; reports failures by type."""
    config = ConjurConfig(auth=ConjurApiKeyAuth(login, api_key), **settings)
    failures: list[str] = []
    values: list[str] = []
    with ConjurClient(config) as client:
        client.authenticate()
        start.wait()
        for _ in range(count):
            try:
                values.append(client.get_secret("prod/db/password"))
            except CyberArkError as exc:
                failures.append(type(exc).__name__)
        shared = config.pacing.pacer(settings["base_url"].rstrip("/")).shared
    results.put({"failures": failures, "values": values, "shared": shared})
