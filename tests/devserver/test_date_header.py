"""Every dev server answer carries an HTTP ``Date`` from the dev clock, as real servers date theirs."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from tests.conftest import DevClient


def _server_time(client: DevClient, path: str) -> float:
    response = client.get(path)
    return parsedate_to_datetime(response.headers["Date"]).timestamp()


def test_answers_are_dated_by_the_dev_clock(client: DevClient) -> None:
    # Errors (404) are dated too, as clients may only see those.
    for path in ("/", "/no/such/thing", "/_dev/health"):
        skew = _server_time(client, path) - (time.time() + client.server.app.clock.offset)
        assert -2 <= skew <= 1
    before = _server_time(client, "/")
    client.server.app.clock.advance(600)
    assert _server_time(client, "/") - before >= 599
