"""Faults, latency and the rate limit the dev server injects on demand: counted and probabilistic
status faults, dropped connections, malformed answers, Retry-After, a token bucket on the dev clock."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import DevClient

# The Conjur status page is the cheapest unauthenticated endpoint to aim knobs at.
STATUS_PATH = "/"


def test_status_fault_with_count_removes_itself(client: DevClient) -> None:
    added = client.admin("POST", "/faults", json={"endpoint": "conjur.*", "status": 503, "count": 2})
    assert added.status_code == 201
    statuses = [client.get(STATUS_PATH).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    events = client.server.app.audit.events(fault="status")
    assert len(events) == 2


def test_fault_with_retry_after_sets_the_header(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "*", "status": 429, "retry_after": 7, "count": 1})
    response = client.get(STATUS_PATH)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_fault_rate_zero_never_fires(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "*", "status": 500, "rate": 0.0})
    assert all(client.get(STATUS_PATH).status_code == 200 for _ in range(5))


def test_drop_fault_closes_the_connection(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "conjur.*", "kind": "drop", "count": 1})
    with pytest.raises(requests.ConnectionError):
        client.get(STATUS_PATH)
    assert client.get(STATUS_PATH).status_code == 200


def test_malformed_and_content_type_faults(client: DevClient) -> None:
    client.admin("POST", "/faults", json={"endpoint": "conjur.*", "kind": "malformed", "count": 1})
    malformed = client.get(STATUS_PATH, headers={"Accept": "application/json"})
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    client.admin("POST", "/faults", json={"endpoint": "conjur.*", "kind": "content_type", "count": 1})
    html = client.get(STATUS_PATH, headers={"Accept": "application/json"})
    assert html.headers["Content-Type"].startswith("text/html")


def test_bad_fault_definitions_are_rejected_with_the_field(client: DevClient) -> None:
    response = client.admin("POST", "/faults", json={"kind": "explode"})
    assert response.status_code == 400
    assert response.json()["field"] == "fault.kind"
    broken = client.admin("POST", "/faults", data=b"{nope")
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["error"]


def test_latency_knob_delays_answers(client: DevClient) -> None:
    client.admin("PUT", "/latency", json={"endpoint": "conjur.*", "seconds": 1.5})
    with pytest.raises(requests.ReadTimeout):
        client.get(STATUS_PATH, timeout=(5, 0.3))
    client.admin("PUT", "/latency", json={"endpoint": "conjur.*", "seconds": 0})
    assert client.get(STATUS_PATH, timeout=(5, 0.3)).status_code == 200


def test_rate_limit_answers_429_with_retry_after(client: DevClient) -> None:
    client.admin("PUT", "/rate-limit", json={"per_second": 2, "burst": 3})
    statuses = [client.get(STATUS_PATH) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert len([r for r in statuses if r.status_code == 200]) >= 3
    assert limited, "eight requests in a burst of three at 2/s must hit the limit"
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert client.server.app.audit.events(fault="rate_limit")
    # The admin API is never rate limited, so a test can always lift the limit.
    assert client.admin("PUT", "/rate-limit", json={"per_second": None}).status_code == 200
    assert client.get(STATUS_PATH).status_code == 200


def test_rate_limit_refills_with_the_clock(client: DevClient) -> None:
    client.admin("PUT", "/rate-limit", json={"per_second": 1, "burst": 1})
    assert client.get(STATUS_PATH).status_code == 200
    assert client.get(STATUS_PATH).status_code == 429
    client.admin("POST", "/clock", json={"advance": 1.5})
    assert client.get(STATUS_PATH).status_code == 200
