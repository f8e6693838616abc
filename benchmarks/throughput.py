"""Figure 6: Conjur retrieve requests per second the dev server sustains on this machine.

Four client processes with one keep-alive Session each hammer the retrieve endpoint for a fixed
time. The clients share the two cores with the server, so this is a lower bound on the server's
capacity; the target is that it stays well above every rate the other figures need.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any
from urllib.parse import quote

from ._common import SECRET_ID, Config, Row, Server

FIG = "6 dev server"
CLIENTS = 4


def _hammer(url: str, ca: str, header: dict[str, str], seconds: float, queues: tuple[Any, Any, Any]) -> None:
    ready, start, results = queues
    import requests

    ok = bad = 0
    with requests.Session() as session:
        session.get(url, headers=header, verify=ca, timeout=30)  # connect before the clock starts
        ready.put(True)
        start.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if session.get(url, headers=header, verify=ca, timeout=30).status_code == 200:
                ok += 1
            else:
                bad += 1
    results.put((ok, bad))


def run(server: Server, config: Config, needed_rate: float) -> list[Row]:
    import requests

    from ._common import raw_token_header

    with requests.Session() as session:
        header = raw_token_header(server, session)
    url = f"{server.url}/secrets/{server.account}/variable/{quote(SECRET_ID, safe='')}"
    ctx = multiprocessing.get_context("spawn")
    ready, start, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    seconds = config.throughput_seconds
    workers = [
        ctx.Process(target=_hammer, args=(url, server.ca, header, seconds, (ready, start, results)))
        for _ in range(CLIENTS)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    start.set()
    totals = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    ok = sum(t[0] for t in totals)
    bad = sum(t[1] for t in totals)
    rate = ok / seconds
    ratio = rate / needed_rate
    return [
        Row(
            FIG,
            f"Conjur retrieve, {CLIENTS} keep-alive client processes, {seconds:g} s",
            f"{rate:,.0f} requests/s ({bad} non-200)",
            f"{ratio:.1f}x the {needed_rate:g}/s of figure 4",
            "≥ 2x figure 4's rate, 0 non-200",
            ratio >= 2 and bad == 0,
        )
    ]
