"""/v2/pals/{id}/tools/, /v2/skills and /v2/pals/{id}/skills/: attach, detach, configs, scoping."""

from __future__ import annotations

import pytest

STOCK_PAL = "pcb7a34da5fe"


def make_pal(c) -> str:
    body = {"pal_name": "Pal", "system_prompt": "Be brief.", "pipeline_mode": "full", "default_face_id": "rfe12d8b9597",
            "layers": {"llm": {"model": "tavus-gemma-4", "speculative_inference": True}}}  # fmt: skip
    r = c.post("/v2/pals", json=body)
    assert r.status_code == 200, r.text
    return r.json()["pal_id"]


def make_tool(c, name: str = "lookup", **extra) -> str:
    body = {"name": name, "description": "Look it up", "parameters": {}, "delivery": {"app_message": True},
            "origin": "llm", "on_resolve": "fire_and_forget", "tags": [], **extra}  # fmt: skip
    r = c.post("/v2/tools", json=body)
    assert r.status_code == 200, r.text
    return r.json()["tool_id"]


# PAL tools ---------------------------------------------------------------------------------------


def test_attach_list_detach_and_the_pal_shows_it(client) -> None:
    pal = make_pal(client)
    a, b = make_tool(client, "first"), make_tool(client, "second", origin="vision")
    assert client.get(f"/v2/pals/{pal}/tools/").json() == {"data": [], "total_count": 0}
    r = client.post(f"/v2/pals/{pal}/tools/", json={"tool_ids": [a, b, a]})
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert [t["tool_id"] for t in rows] == [a, b] and [t["origin"] for t in rows] == ["llm", "vision"]
    assert rows[0]["uuid"] == a and rows[0]["is_system_tool"] is False and rows[0]["delivery"] == {"app_message": True}
    assert client.get(f"/v2/pals/{pal}").json()["tool_ids"] == [a, b]
    for path in (f"/v2/pals/{pal}/tools/", f"/v2/pals/{pal}/tools", f"/v2/personas/{pal}/tools/"):
        assert [t["tool_id"] for t in client.get(path, follow_redirects=False).json()["data"]] == [a, b]
    # Attaching an attached tool changes nothing.
    again = client.post(f"/v2/pals/{pal}/tools", json={"tool_ids": [b]})
    assert [t["tool_id"] for t in again.json()["data"]] == [a, b]
    r = client.delete(f"/v2/pals/{pal}/tools/{a}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v2/pals/{pal}").json()["tool_ids"] == [b]
    assert client.delete(f"/v2/pals/{pal}/tools/{a}").json() == {"error": "Tool not attached to this pal"}
    assert client.delete(f"/v2/pals/{pal}/tools/{a}").status_code == 404
    assert client.get(f"/v2/tools/{a}").status_code == 200  # detaching does not delete the tool


def test_secrets_are_scrubbed_in_pal_tool_rows(client) -> None:
    pal = make_pal(client)
    api = {"url": "https://api.example.com/x", "auth": {"type": "bearer", "token": "real-token"}}
    tid = make_tool(client, "secret_api", delivery={"api": api})
    rows = client.post(f"/v2/pals/{pal}/tools/", json={"tool_ids": [tid]}).json()["data"]
    assert rows[0]["delivery"]["api"]["auth"]["token"] == "********"
    assert "real-token" not in client.get(f"/v2/pals/{pal}/tools/").text


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "tool_ids"),
        ({"tool_ids": []}, "tool_ids"),
        ({"tool_ids": [""]}, "tool_ids"),
        ({"tool_ids": "t1"}, "tool_ids"),
        ({"tool_ids": [f"t{i}" for i in range(51)]}, "tool_ids"),
        ({"tool_ids": ["tdoesnotexist"]}, "Invalid tool_ids: tdoesnotexist"),
        ({"tool_ids": ["t1"], "extra": 1}, "extra"),
    ],
)
def test_attach_body_rules(client, body, text) -> None:
    pal = make_pal(client)
    r = client.post(f"/v2/pals/{pal}/tools/", json=body)
    assert r.status_code == 400, r.text
    assert text in r.json()["error"]
    assert client.get(f"/v2/pals/{pal}").json()["tool_ids"] == []


def test_a_pal_holds_at_most_50_tools(new_account, make_client) -> None:
    c = make_client(new_account())
    pal = make_pal(c)
    ids = [make_tool(c, f"t_{i}") for i in range(51)]
    assert c.post(f"/v2/pals/{pal}/tools/", json={"tool_ids": ids[:50]}).status_code == 200
    r = c.post(f"/v2/pals/{pal}/tools/", json={"tool_ids": ids[50:]})
    assert r.status_code == 400 and "at most 50 tools" in r.json()["error"]
    assert c.get(f"/v2/pals/{pal}").json()["tool_ids"] == ids[:50]
    assert c.post(f"/v2/pals/{pal}/tools/", json={"tool_ids": ids[:3]}).status_code == 200  # attached: no-op


def test_deleted_tool_leaves_the_pal_listing(client) -> None:
    pal = make_pal(client)
    a, b = make_tool(client, "gone"), make_tool(client, "stays")
    client.post(f"/v2/pals/{pal}/tools/", json={"tool_ids": [a, b]})
    assert client.delete(f"/v2/tools/{a}").status_code == 204
    assert [t["tool_id"] for t in client.get(f"/v2/pals/{pal}/tools/").json()["data"]] == [b]


def test_unknown_and_stock_pals(client) -> None:
    tid = make_tool(client)
    for pal in ("pdoesnotexist", "p" + "a" * 80):
        assert client.get(f"/v2/pals/{pal}/tools/").json() == {"error": "Invalid pal_id"}
        assert client.post(f"/v2/pals/{pal}/tools/", json={"tool_ids": [tid]}).json() == {"error": "Invalid pal_id"}
        assert client.delete(f"/v2/pals/{pal}/tools/{tid}").json() == {"error": "Invalid pal_id"}
        assert client.get(f"/v2/personas/{pal}/tools").json() == {"error": "Invalid persona_id"}
    # A stock PAL can be read (it has no tools) but never written.
    assert client.get(f"/v2/pals/{STOCK_PAL}/tools/").json() == {"data": [], "total_count": 0}
    r = client.post(f"/v2/pals/{STOCK_PAL}/tools/", json={"tool_ids": [tid]})
    assert r.status_code == 400 and r.json() == {"error": "Invalid pal_id"}
    assert client.delete(f"/v2/pals/{STOCK_PAL}/tools/{tid}").json() == {"error": "Invalid pal_id"}


def test_pal_tools_across_accounts(client, new_account, make_client) -> None:
    mine_pal, mine_tool = make_pal(client), make_tool(client)
    client.post(f"/v2/pals/{mine_pal}/tools/", json={"tool_ids": [mine_tool]})
    other = make_client(new_account())
    their_pal, their_tool = make_pal(other), make_tool(other)
    # B can neither read, attach to, nor detach from A's PAL ...
    assert other.get(f"/v2/pals/{mine_pal}/tools/").json() == {"error": "Invalid pal_id"}
    assert other.post(f"/v2/pals/{mine_pal}/tools/", json={"tool_ids": [their_tool]}).status_code == 400
    assert other.delete(f"/v2/pals/{mine_pal}/tools/{mine_tool}").json() == {"error": "Invalid pal_id"}
    # ... nor attach A's tool to its own PAL.
    r = other.post(f"/v2/pals/{their_pal}/tools/", json={"tool_ids": [mine_tool]})
    assert r.status_code == 400 and r.json() == {"error": f"Invalid tool_ids: {mine_tool}"}
    assert [t["tool_id"] for t in client.get(f"/v2/pals/{mine_pal}/tools/").json()["data"]] == [mine_tool]
    assert other.get(f"/v2/pals/{their_pal}").json()["tool_ids"] == []


# skills catalogue --------------------------------------------------------------------------------


def test_skill_catalogue(client) -> None:
    listed = client.get("/v2/skills").json()
    ids = [s["skill_id"] for s in listed["data"]]
    assert set(ids) >= {"magic_canvas", "presentation", "internet_search", "memory"}
    assert listed["total_count"] == len(ids)
    assert client.get("/v2/skills/").json() == listed
    for row in listed["data"]:
        assert row["name"] and row["description"] and row["config_schema"]["type"] == "object"
        assert client.get(f"/v2/skills/{row['skill_id']}").json() == row
    assert "document_ids" in client.get("/v2/skills/presentation").json()["config_schema"]["required"]
    assert client.get("/v2/skills/teleport").status_code == 404
    assert client.get("/v2/skills/teleport").json() == {"error": "Skill not found"}


# PAL skills --------------------------------------------------------------------------------------


def test_skills_put_get_patch_delete_as_the_sdk_calls_them(client) -> None:
    pal = make_pal(client)
    assert client.get(f"/v2/pals/{pal}/skills/").json() == {}
    assert client.get(f"/v2/pals/{pal}").json()["skills"] == {}
    r = client.put(f"/v2/pals/{pal}/skills/memory", json={"config": {}})
    assert r.status_code == 200 and r.json() == {"config": {}}
    canvas = {"components": {"chart": {"enabled": False}}, "usage_guidance": "Show charts only when asked."}
    assert client.put(f"/v2/pals/{pal}/skills/magic_canvas", json={"config": canvas}).json() == {"config": canvas}
    assert client.get(f"/v2/pals/{pal}/skills/").json() == {"memory": {"config": {}}, "magic_canvas": {"config": canvas}}
    assert client.get(f"/v2/pals/{pal}/skills").json() == client.get(f"/v2/pals/{pal}/skills/").json()
    assert client.get(f"/v2/pals/{pal}/skills/magic_canvas").json() == {"config": canvas}
    assert client.get(f"/v2/pals/{pal}").json()["skills"]["magic_canvas"] == {"config": canvas}
    # PATCH merges: objects member by member, null removes, the rest is kept.
    change = {"components": {"scheduling_embed": {"provider": "calendly", "scheduling_url": "https://cal.example/x"}},
              "usage_guidance": None}  # fmt: skip
    r = client.patch(f"/v2/pals/{pal}/skills/magic_canvas", json={"config": change})
    assert r.status_code == 200, r.text
    merged = {"components": {"chart": {"enabled": False}, "scheduling_embed": change["components"]["scheduling_embed"]}}
    assert r.json() == {"config": merged} and client.get(f"/v2/pals/{pal}/skills/magic_canvas").json() == r.json()
    # PUT replaces the whole config.
    assert client.put(f"/v2/pals/{pal}/skills/magic_canvas", json={"config": {}}).json() == {"config": {}}
    r = client.delete(f"/v2/pals/{pal}/skills/memory")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v2/pals/{pal}/skills/").json() == {"magic_canvas": {"config": {}}}
    assert client.get(f"/v2/personas/{pal}/skills/").json() == {"magic_canvas": {"config": {}}}


def test_skills_not_attached_are_404(client) -> None:
    pal = make_pal(client)
    body = {"error": "Skill not attached to this pal"}
    assert client.get(f"/v2/pals/{pal}/skills/memory").json() == body
    assert client.patch(f"/v2/pals/{pal}/skills/memory", json={"config": {}}).json() == body
    r = client.delete(f"/v2/pals/{pal}/skills/memory")
    assert r.status_code == 404 and r.json() == body
    assert client.get(f"/v2/pals/{pal}/skills/").json() == {}


@pytest.mark.parametrize(
    ("skill_id", "body", "text"),
    [
        ("teleport", {"config": {}}, "Unknown skill_id 'teleport'"),
        ("memory", {"config": {"stores": ["x"]}}, "config.stores: unknown field for the memory skill"),
        ("internet_search", {"config": {"depth": 3}}, "unknown field"),
        ("presentation", {"config": {}}, "config.document_ids: Field required"),
        ("presentation", {"config": {"document_ids": []}}, "document_ids"),
        ("presentation", {"config": {"document_ids": ["dnope"], "slides_trigger": "always"}}, "slides_trigger"),
        ("presentation", {"config": {"document_ids": ["ddoesnotexist"]}}, "Invalid document_ids: ddoesnotexist"),
        ("magic_canvas", {"config": {"components": {"hologram": {}}}}, "components"),
        ("magic_canvas", {"config": {"components": {"chart": {"enabled": "no"}}}}, "enabled"),
        ("magic_canvas", {"config": {"components": {"scheduling_embed": {"scheduling_url": "http://x"}}}}, "https"),
        ("memory", {"config": []}, "config"),
        ("memory", {"settings": {}}, "settings"),
    ],
)
def test_skill_config_rules(client, skill_id, body, text) -> None:
    pal = make_pal(client)
    r = client.put(f"/v2/pals/{pal}/skills/{skill_id}", json=body)
    assert r.status_code == 400, r.text
    assert text in r.json()["error"]
    assert client.get(f"/v2/pals/{pal}/skills/").json() == {}


def test_unknown_skill_ids_are_400_on_every_item_route(client) -> None:
    pal = make_pal(client)
    for method in ("GET", "PATCH", "DELETE"):
        r = client.request(method, f"/v2/pals/{pal}/skills/teleport", json={"config": {}} if method == "PATCH" else None)
        assert r.status_code == 400 and "Unknown skill_id" in r.json()["error"], method


def test_patch_result_must_still_be_valid(client) -> None:
    pal = make_pal(client)
    client.put(f"/v2/pals/{pal}/skills/magic_canvas", json={"config": {"usage_guidance": "x"}})
    r = client.patch(f"/v2/pals/{pal}/skills/magic_canvas", json={"config": {"usage_guidance": 5}})
    assert r.status_code == 400 and "usage_guidance" in r.json()["error"]
    assert client.get(f"/v2/pals/{pal}/skills/magic_canvas").json() == {"config": {"usage_guidance": "x"}}


def test_replace_the_whole_skill_map(client) -> None:
    pal = make_pal(client)
    client.put(f"/v2/pals/{pal}/skills/memory", json={"config": {}})
    new = {"internet_search": {"config": {}}, "magic_canvas": {"config": {"usage_guidance": "g"}}}
    r = client.put(f"/v2/pals/{pal}/skills/", json={"skills": new})
    assert r.status_code == 200 and r.json() == new
    assert client.get(f"/v2/pals/{pal}/skills").json() == new
    assert client.put(f"/v2/pals/{pal}/skills", json={"skills": {"memory": {}}}).json() == {"memory": {"config": {}}}
    for bad, text in [({"skills": {"teleport": {"config": {}}}}, "Unknown skill_id"),
                      ({"skills": {"memory": {"conf": {}}}}, "memory.conf"),
                      ({"skills": {"memory": "on"}}, "skills.memory"), ({}, "skills")]:  # fmt: skip
        r = client.put(f"/v2/pals/{pal}/skills/", json=bad)
        assert r.status_code == 400 and text in r.json()["error"], (bad, r.text)
    assert client.put(f"/v2/pals/{pal}/skills/", json={"skills": {}}).json() == {}
    assert client.get(f"/v2/pals/{pal}").json()["skills"] == {}


def test_json_patch_of_skills_obeys_the_same_rules(client) -> None:
    pal = make_pal(client)
    ops = [{"op": "add", "path": "/skills/memory", "value": {"config": {}}}]
    assert client.patch(f"/v2/pals/{pal}", json=ops).status_code == 200
    assert client.get(f"/v2/pals/{pal}/skills/").json() == {"memory": {"config": {}}}
    r = client.patch(f"/v2/pals/{pal}", json=[{"op": "add", "path": "/skills/teleport", "value": {}}])
    assert r.status_code == 400 and "teleport" in r.json()["error"]


def test_skills_of_unknown_stock_and_foreign_pals(client, new_account, make_client) -> None:
    assert client.get(f"/v2/pals/{STOCK_PAL}/skills/").json() == {}
    assert client.put(f"/v2/pals/{STOCK_PAL}/skills/memory", json={"config": {}}).json() == {"error": "Invalid pal_id"}
    assert client.get("/v2/pals/pnope/skills/").json() == {"error": "Invalid pal_id"}
    assert client.put("/v2/pals/pnope/skills/", json={"skills": {}}).json() == {"error": "Invalid pal_id"}
    mine = make_pal(client)
    client.put(f"/v2/pals/{mine}/skills/memory", json={"config": {}})
    other = make_client(new_account())
    for method, path, body in [
        ("GET", f"/v2/pals/{mine}/skills/", None),
        ("GET", f"/v2/pals/{mine}/skills/memory", None),
        ("PUT", f"/v2/pals/{mine}/skills/internet_search", {"config": {}}),
        ("PATCH", f"/v2/pals/{mine}/skills/memory", {"config": {}}),
        ("DELETE", f"/v2/pals/{mine}/skills/memory", None),
        ("PUT", f"/v2/pals/{mine}/skills/", {"skills": {}}),
    ]:
        r = other.request(method, path, json=body)
        assert r.status_code == 400 and r.json() == {"error": "Invalid pal_id"}, (method, path, r.text)
    assert client.get(f"/v2/pals/{mine}/skills/").json() == {"memory": {"config": {}}}


def test_presentation_needs_the_accounts_own_documents(client, new_account, make_client) -> None:
    """Attaching a presentation needs a document; skipped until /v2/documents is served."""
    created = client.post("/v2/documents", json={"document_url": "https://example.com/deck.pdf",
                                                 "document_name": "Deck"})  # fmt: skip
    if created.status_code in (404, 405):
        pytest.skip("/v2/documents is not served on this branch")
    assert created.status_code == 200, created.text
    doc = created.json()["document_id"]
    pal = make_pal(client)
    r = client.put(f"/v2/pals/{pal}/skills/presentation", json={"config": {"document_ids": [doc]}})
    assert r.status_code == 200 and r.json() == {"config": {"document_ids": [doc]}}
    other = make_client(new_account())
    their_pal = make_pal(other)
    r = other.put(f"/v2/pals/{their_pal}/skills/presentation", json={"config": {"document_ids": [doc]}})
    assert r.status_code == 400 and r.json() == {"error": f"Invalid document_ids: {doc}"}
