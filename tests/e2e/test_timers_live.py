"""Timers on a live server: the lifespan's worker ends a conversation by itself."""

from __future__ import annotations

import time

import httpx


def test_max_call_duration_ends_a_conversation_on_a_running_server(client: httpx.Client) -> None:
    body = {"replica_id": "r90bbd427f71", "properties": {"max_call_duration": 1}}
    cid = client.post("/v2/conversations", json=body).json()["conversation_id"]
    assert client.get(f"/v2/conversations/{cid}").json()["status"] == "active"

    deadline = time.monotonic() + 5.0
    while client.get(f"/v2/conversations/{cid}").json()["status"] != "ended":
        assert time.monotonic() < deadline, "the timer did not end the conversation within 5 s"
        time.sleep(0.05)
    events = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()["events"]
    shutdown = [e for e in events if e["event_type"] == "system.shutdown"]
    assert [e["properties"]["shutdown_reason"] for e in shutdown] == ["max_call_duration reached"]
    # the end endpoint afterwards is the usual quiet 200
    assert client.post(f"/v2/conversations/{cid}/end").status_code == 200
