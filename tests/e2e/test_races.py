"""Concurrent END / DELETE / create against a live server: exactly-once shutdown, no double slots."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import httpx
import pytest

LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=200)
INVALID_ID = {"error": "Invalid conversation_id"}


def create(c: httpx.Client, **extra) -> str:
    r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71", **extra})
    assert r.status_code == 200, r.text
    return r.json()["conversation_id"]


def event_types_when_settled(c: httpx.Client, cid: str, timeout: float = 3.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        r = c.get(f"/v2/conversations/{cid}", params={"verbose": "true"})
        assert r.status_code == 200, r.text
        types = [e["event_type"] for e in r.json()["events"]]
        if "application.transcription_ready" in types or time.monotonic() > deadline:
            return types
        time.sleep(0.05)


async def _fire(base_url: str, key: str, requests: list[tuple[str, str]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, headers={"x-api-key": key}, limits=LIMITS,
                                 timeout=60) as ac:
        return await asyncio.gather(*(ac.request(method, path) for method, path in requests))


def fire(base_url: str, key: str, requests: list[tuple[str, str]]) -> list[httpx.Response]:
    responses = asyncio.run(_fire(base_url, key, requests))
    for r in responses:
        assert r.status_code < 500, f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:500]}"
        assert b"Traceback" not in r.content
    return responses


def test_concurrent_ends_record_one_shutdown(server, client, api_key):
    cid = create(client)
    responses = fire(server.base_url, api_key, [("POST", f"/v2/conversations/{cid}/end")] * 60)
    assert Counter(r.status_code for r in responses) == {200: 60}
    assert all(r.content == b"" for r in responses)
    types = event_types_when_settled(client, cid)
    time.sleep(0.3)  # give any stray duplicate a chance to land
    types = event_types_when_settled(client, cid)
    assert types == ["system.replica_joined", "system.shutdown", "application.transcription_ready"], types
    assert client.get(f"/v2/conversations/{cid}").json()["status"] == "ended"


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_ends_and_deletes(server, client, api_key, round_):
    cid = create(client)
    requests = [("POST", f"/v2/conversations/{cid}/end")] * 40 + [("DELETE", f"/v2/conversations/{cid}")] * 20
    random.Random(round_).shuffle(requests)
    responses = fire(server.base_url, api_key, requests)

    ends = [r for r in responses if r.request.method == "POST"]
    deletes = [r for r in responses if r.request.method == "DELETE"]
    assert {r.status_code for r in ends} <= {200, 400}, Counter(r.status_code for r in ends)
    assert {r.status_code for r in deletes} <= {204, 400}, Counter(r.status_code for r in deletes)
    for r in ends + deletes:
        if r.status_code == 400:
            assert r.json() == INVALID_ID
        else:
            assert r.content == b""
    assert sum(r.status_code == 204 for r in deletes) == 1, Counter(r.status_code for r in deletes)
    # an END can only be refused because the conversation was deleted, and a delete did succeed
    assert client.get(f"/v2/conversations/{cid}").json() == INVALID_ID

    # Exactly one transition happened, and the stored shutdown names its winner:
    # if an end won, later ends answered 200 and the delete kept the end's reason;
    # if the delete won, every end answered 400. A read-then-write implementation
    # lets the loser overwrite the reason (or end it twice) and fails here.
    row = server.stored_conversation(cid)
    assert row["status"] == "ended" and row["deleted_at"] is not None, row
    assert row["ended_at"] is not None and row["ended_at"] <= row["deleted_at"], row
    if any(r.status_code == 200 for r in ends):
        assert row["shutdown_reason"] == "end_conversation_endpoint_hit", row
    else:
        assert row["shutdown_reason"] == "daily_room_has_been_deleted", row


def test_many_conversations_concurrent_ends(server, client, api_key):
    cids = [create(client) for _ in range(20)]
    requests = [("POST", f"/v2/conversations/{cid}/end") for cid in cids for _ in range(10)]
    random.Random(7).shuffle(requests)
    responses = fire(server.base_url, api_key, requests)
    assert Counter(r.status_code for r in responses) == {200: 200}
    for cid in cids:
        before = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
        types = [e["event_type"] for e in before["events"]]
        assert types == ["system.replica_joined", "system.shutdown", "application.transcription_ready"], (cid, types)
        # one transition: a further end changes nothing, not even updated_at
        assert client.post(f"/v2/conversations/{cid}/end").status_code == 200
        after = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
        assert after == before


def test_concurrent_creates_respect_limit(server, new_account):
    key = new_account(max_concurrent=1)
    responses = asyncio.run(_create_many(server.base_url, key, 30))
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 1, 400: 29}, codes
    for r in responses:
        if r.status_code == 400:
            assert r.json() == {"message": "User has reached maximum concurrent conversations"}
    with server.client(key) as c:
        assert c.get("/v2/conversations", params={"status": "active"}).json()["total_count"] == 1


def test_concurrent_creates_with_limit_three_and_test_mode(server, new_account):
    key = new_account(max_concurrent=3)
    responses = asyncio.run(_create_many(server.base_url, key, 30, test_mode_every=3))
    test_mode = responses[0::3]  # bodies 0, 3, 6, ... carry test_mode: true
    real = [r for i, r in enumerate(responses) if i % 3]
    assert all(r.status_code == 200 for r in test_mode), Counter(r.status_code for r in test_mode)
    assert all(r.json()["status"] == "ended" for r in test_mode)
    assert Counter(r.status_code for r in real) == {200: 3, 400: len(real) - 3}
    with server.client(key) as c:
        assert c.get("/v2/conversations", params={"status": "active"}).json()["total_count"] == 3
        assert c.get("/v2/conversations").json()["total_count"] == 3 + len(test_mode)


async def _create_many(base_url: str, key: str, n: int, test_mode_every: int = 0) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, headers={"x-api-key": key}, limits=LIMITS, timeout=60) as ac:
        bodies = []
        for i in range(n):
            body = {"replica_id": "r90bbd427f71"}
            if test_mode_every and i % test_mode_every == 0:
                body["test_mode"] = True
            bodies.append(body)
        responses = await asyncio.gather(*(ac.post("/v2/conversations", json=b) for b in bodies))
    for r in responses:
        assert r.status_code < 500, r.text
    return responses


def test_concurrent_end_and_delete_free_exactly_one_slot(server, new_account):
    """Ending and deleting the same active conversation at once must not free its slot twice."""
    key = new_account(max_concurrent=2)
    with server.client(key) as c:
        a = create(c)
        b = create(c)
        requests = [("POST", f"/v2/conversations/{a}/end")] * 15 + [("DELETE", f"/v2/conversations/{a}")] * 15
        random.Random(3).shuffle(requests)
        fire(server.base_url, key, requests)
        # one slot is free again (a), b still holds the other
        assert create(c)
        r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
        assert r.status_code == 400, r.text
        assert r.json() == {"message": "User has reached maximum concurrent conversations"}
        assert c.get(f"/v2/conversations/{b}").json()["status"] == "active"
