"""The audit log: served over the admin API and written as JSON lines, never holding the admin token."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import DevClient

# The Conjur status page is the cheapest unauthenticated endpoint to aim knobs at.
STATUS_PATH = "/"


def test_audit_log_is_served_and_written_as_json_lines(client: DevClient) -> None:
    client.get(STATUS_PATH, headers={"X-Request-Id": "audit-probe-1"})
    client.get("/no/such/thing")
    served = client.admin("GET", "/audit").json()
    actions = [e["action"] for e in served["events"]]
    assert "unknown" in actions
    assert served["last_seq"] >= 2
    since = client.admin("GET", f"/audit?since={served['last_seq']}").json()["events"]
    assert [e["action"] for e in since] == ["dev.audit"]
    lines = Path(client.info["audit_log"]).read_text().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert {"seq", "time", "api", "action", "identity", "object", "reason", "status", "outcome"} <= set(parsed[0])
    assert client.admin("DELETE", "/audit").status_code == 200
    # Clearing keeps the sequence going, so "since" cursors held by tests stay valid.
    assert [e["action"] for e in client.server.app.audit.events()] == ["dev.audit_clear"]
    assert client.admin("GET", "/audit").json()["last_seq"] > served["last_seq"]


def test_admin_token_never_reaches_the_audit_log(client: DevClient) -> None:
    client.admin("GET", "/knobs")
    client.get("/_dev/knobs", headers={"Authorization": "Bearer guessed-token-123"})
    text = Path(client.info["audit_log"]).read_text()
    assert client.info["admin_token"] not in text
    assert "guessed-token-123" not in text
