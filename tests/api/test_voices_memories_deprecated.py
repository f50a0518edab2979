"""/v2/voices (stock list), memory stores and memories, and the endpoints Tavus no longer supports."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from servers import key_works, wait_until

from palaver.domain.clock import SystemClock
from palaver.service.memories import MemoryService
from palaver.storage import open_storage

# -- voices -------------------------------------------------------------------------------------------------------


def test_voices_are_the_named_stock_replicas(client) -> None:
    r = client.get("/v2/voices", params={"limit": 100})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"data", "total_count", "page", "limit"} and body["limit"] == 100
    names = [v["voice_name"] for v in body["data"]]
    assert names == sorted(names) and len(names) == len(set(names)) == body["total_count"] == 16
    anna = next(v for v in body["data"] if v["voice_name"] == "anna")
    assert anna == {"voice_name": "anna", "replica_id": "r90bbd427f71", "audio_url": None,
                    "tags": [{"tag_name": "female"}, {"tag_name": "american"}, {"tag_name": "professional"}]}  # fmt: skip
    assert "santa" in names and not any(" " in n or "stock" in n for n in names)


def test_voices_page_from_one_and_read_zero_as_one(client) -> None:
    default = client.get("/v2/voices").json()
    assert default["page"] == 1 and default["limit"] == 10 and len(default["data"]) == 10
    page0 = client.get("/v2/voices", params={"page": 0, "limit": 5}).json()
    page1 = client.get("/v2/voices", params={"page": 1, "limit": 5}).json()
    page4 = client.get("/v2/voices", params={"page": 4, "limit": 5}).json()
    assert page0["data"] == page1["data"] and page0["page"] == 0 and len(page4["data"]) == 1
    everything = client.get("/v2/voices", params={"limit": 100}).json()["data"]
    pages = [client.get("/v2/voices", params={"page": p, "limit": 5}).json()["data"] for p in range(1, 5)]
    assert [v for page in pages for v in page] == everything
    for bad in ({"limit": 0}, {"limit": 101}, {"page": -1}, {"sort": "random"}):
        assert client.get("/v2/voices", params=bad).status_code == 400, bad


def test_voices_search_sort_and_tags(client) -> None:
    found = client.get("/v2/voices", params={"search": "LU"}).json()
    assert [v["voice_name"] for v in found["data"]] == ["lucas", "lucy", "luna"] and found["total_count"] == 3
    desc = client.get("/v2/voices", params={"sort": "desc", "limit": 100}).json()["data"]
    assert [v["voice_name"] for v in desc] == sorted((v["voice_name"] for v in desc), reverse=True)
    british = client.get("/v2/voices", params={"tag": "British"}).json()
    assert {v["voice_name"] for v in british["data"]} == {"helen", "lucy"}
    both = client.get("/v2/voices", params={"tags": "british,friendly"}).json()
    assert [v["voice_name"] for v in both["data"]] == ["lucy"]
    assert client.get("/v2/voices", params={"tags": "klingon"}).json() == {"data": [], "total_count": 0, "page": 1,
                                                                          "limit": 10}  # fmt: skip


# -- memories -----------------------------------------------------------------------------------------------------


def remember(server, account_id: str, stores: list[str], lines: list[str], persona_id: str = "pseed") -> None:
    """Write memories the way a conversation naming `stores` does, into the running server's database."""

    async def go() -> None:
        storage = open_storage(server.database_url)
        try:
            await MemoryService(storage.resources, SystemClock()).remember(account_id, stores, lines,
                                                                           persona_id=persona_id)  # fmt: skip
        finally:
            await storage.close()

    asyncio.run(go())


@pytest.fixture
def owner(server, make_client):
    """A fresh account whose id the test knows: (account_id, client)."""
    created = server.create_key(name="memories")
    assert wait_until(lambda: key_works(server.base_url, created.key), timeout=5.0)
    return created.account_id, make_client(created.key)


def test_stores_list_get_and_seed_lines_once(server, owner) -> None:
    account_id, c = owner
    assert c.get("/v2/memory-stores").json() == {"data": [], "total_count": 0}
    remember(server, account_id, ["user_123", "classroom-1"], ["likes tea", "lives in Oslo"])
    remember(server, account_id, ["user_123"], ["likes tea", "has a cat"])  # the same PAL again: one new line
    remember(server, account_id, ["user_123"], ["likes tea"], persona_id="pother")  # another PAL's own line
    listed = c.get("/v2/memory-stores/").json()
    assert listed["total_count"] == 2
    assert [s["memory_store_id"] for s in listed["data"]] == ["classroom-1", "user_123"]
    assert listed["data"][1]["memories_count"] == 4 and listed["data"][0]["memories_count"] == 2
    oldest = c.get("/v2/memory-stores", params={"sort": "asc", "limit": 1, "page": 0}).json()
    assert [s["memory_store_id"] for s in oldest["data"]] == ["user_123"] and oldest["total_count"] == 2
    store = c.get("/v2/memory-stores/user_123").json()
    assert store["memory_store_id"] == store["memory_store"] == "user_123"
    assert [(m["content"], m["persona_id"]) for m in store["memories"]] == [
        ("likes tea", "pseed"), ("lives in Oslo", "pseed"), ("has a cat", "pseed"), ("likes tea", "pother")]  # fmt: skip
    assert all(m["memory_id"].startswith("mem_") and m["source"] == "pal_seed" for m in store["memories"])


def test_delete_one_memory_then_the_store(server, owner) -> None:
    account_id, c = owner
    remember(server, account_id, ["anna_p123"], ["a", "b"])
    memories = c.get("/v2/memory-stores/anna_p123").json()["memories"]
    r = c.delete(f"/v2/memories/anna_p123/{memories[0]['memory_id']}")
    assert r.status_code == 204 and r.content == b""
    assert [m["content"] for m in c.get("/v2/memory-stores/anna_p123").json()["memories"]] == ["b"]
    r = c.delete(f"/v2/memories/anna_p123/{memories[0]['memory_id']}")
    assert r.status_code == 404 and r.json() == {"message": "Memory not found"}
    assert c.delete("/v2/memories/anna_p123/not-an-id").status_code == 404
    assert c.delete(f"/v2/memories/nobody/{memories[1]['memory_id']}").json() == {"message": "Memory not found"}
    r = c.delete("/v2/memory-stores/anna_p123")
    assert r.status_code == 204 and r.content == b""
    assert c.get("/v2/memory-stores/anna_p123").json() == {"message": "Memory store not found"}
    assert c.delete("/v2/memory-stores/anna_p123").status_code == 404
    assert c.get("/v2/memory-stores").json()["total_count"] == 0


def test_unknown_and_unaddressable_stores_are_404(owner) -> None:
    _, c = owner
    for name in ("nothing_here", "x" * 129, "a%20b"):
        r = c.get(f"/v2/memory-stores/{name}")
        assert r.status_code == 404 and r.json() == {"message": "Memory store not found"}, name


def test_a_store_belongs_to_the_account_that_wrote_it(server, owner, new_account, make_client) -> None:
    account_id, c = owner
    name = f"shared_{uuid.uuid4().hex[:8]}"
    remember(server, account_id, [name], ["secret"])
    other = make_client(new_account())
    r = other.get(f"/v2/memory-stores/{name}")
    assert r.status_code == 404 and r.json() == {"message": "Memory store not found"}  # not 403: no existence leak
    assert other.get("/v2/memory-stores").json()["total_count"] == 0
    assert other.delete(f"/v2/memory-stores/{name}").status_code == 404
    memory_id = c.get(f"/v2/memory-stores/{name}").json()["memories"][0]["memory_id"]
    assert other.delete(f"/v2/memories/{name}/{memory_id}").status_code == 404
    assert c.get(f"/v2/memory-stores/{name}").json()["memories"][0]["content"] == "secret"


def test_the_same_key_in_two_accounts_is_two_stores(server, owner) -> None:
    account_a, a = owner
    created = server.create_key(name="memories-b")
    assert wait_until(lambda: key_works(server.base_url, created.key), timeout=5.0)
    remember(server, account_a, ["user_1"], ["from a"])
    remember(server, created.account_id, ["user_1"], ["from b"])
    b = server.client(created.key)
    try:
        assert [m["content"] for m in a.get("/v2/memory-stores/user_1").json()["memories"]] == ["from a"]
        assert [m["content"] for m in b.get("/v2/memory-stores/user_1").json()["memories"]] == ["from b"]
    finally:
        b.close()


# -- deprecated ---------------------------------------------------------------------------------------------------

DEPRECATED = [
    ("POST", "/v2/replacements", "replacements"),
    ("POST", "/v2/replacements/", "replacements"),
    ("GET", "/v2/replacements", "replacements"),
    ("GET", "/v2/replacements/r123", "replacements"),
    ("DELETE", "/v2/replacements/r123", "replacements"),
    ("POST", "/v2/lipsync", "lipsync"),
    ("GET", "/v2/lipsync/", "lipsync"),
    ("GET", "/v2/lipsync/wf85407a7ba9d", "lipsync"),
    ("DELETE", "/v2/lipsync/wf85407a7ba9d", "lipsync"),
]


@pytest.mark.parametrize(("method", "path", "what"), DEPRECATED)
def test_deprecated_endpoints_are_gone_after_authentication(client, make_client, method, path, what) -> None:
    r = client.request(method, path, json={"original_video_url": "https://example.com/v.mp4"})
    assert r.status_code == 410 and r.json() == {"error": f"The {what} endpoint is no longer supported"}
    r = make_client().request(method, path)
    assert r.status_code == 401 and r.json() == {"message": "Invalid access token"}


def test_auth_comes_first_for_voices_and_memories(make_client) -> None:
    anonymous = make_client()
    for method, path in [("GET", "/v2/voices"), ("GET", "/v2/memory-stores"), ("GET", "/v2/memory-stores/x"),
                         ("DELETE", "/v2/memory-stores/x"), ("DELETE", "/v2/memories/x/mem_1")]:  # fmt: skip
        r = anonymous.request(method, path)
        assert r.status_code == 401 and r.json() == {"message": "Invalid access token"}
