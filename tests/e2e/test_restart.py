"""Durability: state survives a graceful restart and a SIGKILL."""

from __future__ import annotations

import asyncio
import time

import httpx

PUBLIC_URL = "http://palaver.test"  # fixed, so conversation_url does not depend on the random port
INVALID_ID = {"error": "Invalid conversation_id"}


def create(c: httpx.Client, **extra) -> str:
    r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71", **extra})
    assert r.status_code == 200, r.text
    return r.json()["conversation_id"]


def wait_transcript(c: httpx.Client, cid: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = c.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()["events"]
        if any(e["event_type"] == "application.transcription_ready" for e in events):
            return
        time.sleep(0.05)
    raise AssertionError(f"no transcript for {cid}")


def stable_view(c: httpx.Client, cid: str) -> dict:
    """The verbose view minus `webhook_deliveries`, which is live delivery state (attempts to an
    unreachable callback keep being added across a restart, by design)."""
    view = c.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
    view.pop("webhook_deliveries", None)
    return view


def snapshot(c: httpx.Client, visible: list[str], gone: list[str]) -> dict:
    snap = {"get": {}, "verbose": {}, "lists": {}, "gone": {}}
    for cid in visible:
        snap["get"][cid] = c.get(f"/v2/conversations/{cid}").json()
        snap["verbose"][cid] = stable_view(c, cid)
    for params in ({"limit": 100}, {"status": "active", "limit": 100}, {"status": "ended", "limit": 100},
                   {"limit": 2, "page": 2}):
        snap["lists"][str(sorted(params.items()))] = c.get("/v2/conversations", params=params).json()
    for cid in gone:
        r = c.get(f"/v2/conversations/{cid}")
        snap["gone"][cid] = (r.status_code, r.json())
    return snap


def test_graceful_restart_preserves_everything(fresh_server):
    srv = fresh_server(name="restart", public_url=PUBLIC_URL)
    key = srv.shown_once_key
    assert key
    extra_key = srv.new_account_key(max_concurrent=1)  # a CLI key with a limit, also must survive

    with srv.client(key) as c:
        active = [create(c, conversation_name=f"active-{i}") for i in range(3)]
        ended = [create(c, conversation_name=f"ended-{i}", callback_url="https://example.com/cb") for i in range(2)]
        for cid in ended:
            assert c.post(f"/v2/conversations/{cid}/end").status_code == 200
            wait_transcript(c, cid)
        test_mode = create(c, conversation_name="test-mode", test_mode=True)
        private = create(c, conversation_name="private", require_auth=True)
        deleted_active = create(c, conversation_name="deleted-active")
        deleted_ended = create(c, conversation_name="deleted-ended")
        assert c.post(f"/v2/conversations/{deleted_ended}/end").status_code == 200
        hard_deleted = create(c, conversation_name="hard-deleted")
        assert c.delete(f"/v2/conversations/{deleted_active}").status_code == 204
        assert c.delete(f"/v2/conversations/{deleted_ended}").status_code == 204
        assert c.delete(f"/v2/conversations/{hard_deleted}", params={"hard": "true"}).status_code == 204
        visible = active + ended + [test_mode, private]
        gone = [deleted_active, deleted_ended, hard_deleted]
        before = snapshot(c, visible, gone)
    with srv.client(extra_key) as c:
        limited = create(c)

    assert before["lists"][str(sorted({"limit": 100}.items()))]["total_count"] == 7
    assert before["lists"][str(sorted({"status": "active", "limit": 100}.items()))]["total_count"] == 4

    srv.stop()
    assert not srv.killed_after_sigterm, "server did not exit on SIGTERM"
    srv.start()
    assert srv.shown_once_key is None

    with srv.client(key) as c:
        after = snapshot(c, visible, gone)
        assert after == before
        for cid in gone:
            assert c.get(f"/v2/conversations/{cid}").json() == INVALID_ID
            assert c.post(f"/v2/conversations/{cid}/end").json() == INVALID_ID
        # ended conversations stay ended and idempotent after the restart
        for cid in ended:
            assert c.post(f"/v2/conversations/{cid}/end").status_code == 200
            assert stable_view(c, cid) == before["verbose"][cid]
        # active ones can still be ended, once
        assert c.post(f"/v2/conversations/{active[0]}/end").status_code == 200
        wait_transcript(c, active[0])
        types = [e["event_type"] for e in
                 c.get(f"/v2/conversations/{active[0]}", params={"verbose": "true"}).json()["events"]]
        assert types == ["system.replica_joined", "system.shutdown", "application.transcription_ready"]

    with srv.client(extra_key) as c:
        # the concurrency slot taken before the restart is still taken
        r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
        assert r.status_code == 400
        assert r.json() == {"message": "User has reached maximum concurrent conversations"}
        assert c.get(f"/v2/conversations/{limited}").json()["status"] == "active"


def test_revoked_key_stays_revoked_after_restart(fresh_server):
    srv = fresh_server(name="restart-revoke", public_url=PUBLIC_URL)
    created = srv.create_key(name="gone")
    srv.revoke_key(created.key_id)
    srv.restart()
    r = httpx.get(f"{srv.base_url}/v2/conversations", headers={"x-api-key": created.key})
    assert r.status_code == 401


async def _end_all(base_url: str, key: str, cids: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, headers={"x-api-key": key}, timeout=60,
                                 limits=httpx.Limits(max_connections=100)) as ac:
        return await asyncio.gather(*(ac.post(f"/v2/conversations/{cid}/end") for cid in cids))


def test_sigkill_after_acknowledged_ends(fresh_server):
    srv = fresh_server(name="kill9", public_url=PUBLIC_URL)
    key = srv.shown_once_key
    with srv.client(key) as c:
        cids = [create(c) for _ in range(30)]
    to_end, untouched = cids[:20], cids[20:]
    responses = asyncio.run(_end_all(srv.base_url, key, to_end))
    srv.kill()  # right after the acknowledgements
    assert [r.status_code for r in responses] == [200] * len(to_end)

    srv.start()
    with srv.client(key) as c:
        for cid in to_end:
            got = c.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
            assert got["status"] == "ended", cid
            types = [e["event_type"] for e in got["events"]]
            assert types.count("system.shutdown") == 1, (cid, types)
        for cid in untouched:
            assert c.get(f"/v2/conversations/{cid}").json()["status"] == "active"
        assert c.get("/v2/conversations", params={"status": "ended", "limit": 100}).json()["total_count"] == 20
        assert c.get("/v2/conversations", params={"status": "active", "limit": 100}).json()["total_count"] == 10


def test_sigkill_after_acknowledged_creates_and_deletes(fresh_server):
    srv = fresh_server(name="kill9-create", public_url=PUBLIC_URL)
    key = srv.shown_once_key
    with srv.client(key) as c:
        cids = [create(c, conversation_name=f"k-{i}") for i in range(10)]
        assert c.delete(f"/v2/conversations/{cids[0]}").status_code == 204
    srv.kill()
    srv.start()
    with srv.client(key) as c:
        assert c.get(f"/v2/conversations/{cids[0]}").json() == INVALID_ID
        body = c.get("/v2/conversations", params={"limit": 100}).json()
        assert body["total_count"] == 9
        assert [x["conversation_id"] for x in body["data"]] == list(reversed(cids[1:]))
