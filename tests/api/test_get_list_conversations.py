"""GET /v2/conversations/{id} and GET /v2/conversations (list)."""

from __future__ import annotations

import re

import httpx
import pytest

ISO_Z_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
FIELDS = ["conversation_id", "conversation_name", "conversation_url", "status", "callback_url",
          "replica_id", "persona_id", "created_at", "updated_at"]


def is_json(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").split(";")[0].strip() == "application/json"


def create(c: httpx.Client, **extra) -> dict:
    r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71", **extra})
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------------ GET


def test_get_returns_create_fields_plus_updated_at(client):
    created = create(client, conversation_name="get me", callback_url="https://example.com/cb")
    r = client.get(f"/v2/conversations/{created['conversation_id']}")
    assert r.status_code == 200, r.text
    assert is_json(r)
    got = r.json()
    for field in FIELDS:
        assert type(got.get(field)) is str, f"{field}: {got.get(field)!r}"
    for field in ["conversation_id", "conversation_name", "conversation_url", "status", "callback_url",
                  "replica_id", "persona_id", "created_at"]:
        assert got[field] == created[field], field
    assert ISO_Z_RE.match(got["updated_at"]), got["updated_at"]
    assert got["updated_at"] >= got["created_at"]
    assert "events" not in got


@pytest.mark.parametrize("query", [{}, {"verbose": "false"}])
def test_get_without_verbose_has_no_events(client, query):
    cid = create(client)["conversation_id"]
    r = client.get(f"/v2/conversations/{cid}", params=query)
    assert r.status_code == 200
    assert "events" not in r.json()


def test_get_verbose_has_events_list(client):
    cid = create(client)["conversation_id"]
    r = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"})
    assert r.status_code == 200
    events = r.json()["events"]
    assert isinstance(events, list)
    assert [e["event_type"] for e in events] == ["system.replica_joined"]
    ev = events[0]
    assert ev["message_type"] == "system"
    assert ev["conversation_id"] == cid
    assert isinstance(ev["properties"], dict)
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$", ev["timestamp"]), ev["timestamp"]


def test_get_meeting_token_only_for_require_auth(client):
    plain = create(client)
    private = create(client, require_auth=True)
    assert "meeting_token" not in client.get(f"/v2/conversations/{plain['conversation_id']}").json()
    got = client.get(f"/v2/conversations/{private['conversation_id']}").json()
    if "meeting_token" in got:  # optional on GET, but must match what create returned
        assert got["meeting_token"] == private["meeting_token"]


def test_other_accounts_conversation_is_invisible(client, make_client, other_account_key):
    mine = create(client)["conversation_id"]
    other = make_client(other_account_key)
    unknown = other.get("/v2/conversations/c000000000000000")
    r = other.get(f"/v2/conversations/{mine}")
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid conversation_id"}
    assert r.content == unknown.content
    assert client.get(f"/v2/conversations/{mine}").status_code == 200


# ----------------------------------------------------------------------- list


@pytest.fixture(scope="module")
def populated(server):
    """A fresh account with 7 active and 5 ended (test-mode) conversations, created in a known order."""
    key = server.new_account_key(max_concurrent=1000)
    with server.client(key) as c:
        created = []
        for i in range(12):
            test_mode = i % 5 in (1, 3)  # i = 1, 3, 6, 8, 11 -> 5 ended
            created.append(create(c, conversation_name=f"list-{i:02d}", test_mode=test_mode))
    return key, created


def test_list_envelope_and_default_limit(populated, make_client):
    key, created = populated
    c = make_client(key)
    r = c.get("/v2/conversations")
    assert r.status_code == 200
    assert is_json(r)
    body = r.json()
    assert set(body) == {"data", "total_count"}
    assert body["total_count"] == 12
    assert type(body["total_count"]) is int
    assert len(body["data"]) == 10
    for item in body["data"]:
        assert "events" not in item
        for field in FIELDS:
            assert type(item.get(field)) is str, f"{field}: {item}"


def test_list_is_newest_first_and_pages_are_one_based(populated, make_client):
    key, created = populated
    c = make_client(key)
    newest_first = [x["conversation_id"] for x in reversed(created)]
    page1 = c.get("/v2/conversations", params={"page": 1}).json()
    page2 = c.get("/v2/conversations", params={"page": 2}).json()
    page3 = c.get("/v2/conversations", params={"page": 3}).json()
    assert [x["conversation_id"] for x in page1["data"]] == newest_first[:10]
    assert [x["conversation_id"] for x in page2["data"]] == newest_first[10:]
    assert page3["data"] == [] and page3["total_count"] == 12
    default = c.get("/v2/conversations").json()
    assert default == page1


def test_list_limit_and_page(populated, make_client):
    key, created = populated
    c = make_client(key)
    newest_first = [x["conversation_id"] for x in reversed(created)]
    for limit in (1, 5, 7, 12, 50):
        seen = []
        page = 1
        while True:
            body = c.get("/v2/conversations", params={"limit": limit, "page": page}).json()
            assert body["total_count"] == 12
            assert len(body["data"]) <= limit
            if not body["data"]:
                break
            seen += [x["conversation_id"] for x in body["data"]]
            page += 1
        assert seen == newest_first, f"limit={limit}"


def test_list_items_match_get(populated, make_client):
    key, created = populated
    c = make_client(key)
    for item in c.get("/v2/conversations", params={"limit": 100}).json()["data"]:
        single = c.get(f"/v2/conversations/{item['conversation_id']}").json()
        assert item == single


@pytest.mark.parametrize("status, expected", [("active", 7), ("ended", 5)])
def test_list_status_filter_is_exact(populated, make_client, status, expected):
    key, created = populated
    c = make_client(key)
    body = c.get("/v2/conversations", params={"status": status, "limit": 100}).json()
    assert body["total_count"] == expected
    assert len(body["data"]) == expected
    assert all(x["status"] == status for x in body["data"])
    wanted = [x["conversation_id"] for x in reversed(created) if x["status"] == status]
    assert [x["conversation_id"] for x in body["data"]] == wanted
    # total_count is the filtered total, not the page size
    small = c.get("/v2/conversations", params={"status": status, "limit": 2}).json()
    assert small["total_count"] == expected and len(small["data"]) == 2


def test_list_status_filter_follows_end(new_account, make_client):
    c = make_client(new_account(max_concurrent=10))
    a = create(c)["conversation_id"]
    b = create(c)["conversation_id"]
    assert c.post(f"/v2/conversations/{a}/end").status_code == 200
    active = c.get("/v2/conversations", params={"status": "active"}).json()
    ended = c.get("/v2/conversations", params={"status": "ended"}).json()
    assert [x["conversation_id"] for x in active["data"]] == [b] and active["total_count"] == 1
    assert [x["conversation_id"] for x in ended["data"]] == [a] and ended["total_count"] == 1


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": "1001"}, {"limit": "1.5"}, {"limit": ""},
        {"page": "0"}, {"page": "-1"}, {"page": "abc"}, {"page": "1.5"},
        {"status": "bogus"}, {"status": ""},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
def test_list_bad_query_parameters(client, params):
    r = client.get("/v2/conversations", params=params)
    assert r.status_code == 400, r.text
    assert is_json(r)
    assert set(r.json()) == {"error"}, r.json()
    assert isinstance(r.json()["error"], str) and r.json()["error"]


def test_list_limit_boundaries_accepted(client):
    for limit in ("1", "1000"):
        r = client.get("/v2/conversations", params={"limit": limit})
        assert r.status_code == 200, (limit, r.text)


def test_list_far_page_is_empty(populated, make_client):
    key, _ = populated
    body = make_client(key).get("/v2/conversations", params={"page": 1000}).json()
    assert body == {"data": [], "total_count": 12}


def test_list_never_shows_other_accounts(populated, make_client, client):
    key, created = populated
    mine = {x["conversation_id"] for x in created}
    theirs = client.get("/v2/conversations", params={"limit": 1000}).json()
    assert not mine & {x["conversation_id"] for x in theirs["data"]}
    # and the populated account's own list holds exactly its 12 conversations (checked above): nothing leaks in
    assert {x["conversation_id"] for x in make_client(key).get("/v2/conversations", params={"limit": 100})
            .json()["data"]} == mine


def test_fresh_account_sees_empty_list(new_account, make_client):
    c = make_client(new_account())
    assert c.get("/v2/conversations").json() == {"data": [], "total_count": 0}
    for status in ("active", "ended"):
        assert c.get("/v2/conversations", params={"status": status}).json() == {"data": [], "total_count": 0}
