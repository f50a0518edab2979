"""/v2/tools: the ToolCreate rules, scrubbed secrets, plain-object PATCH, lists, 404s, scoping."""

from __future__ import annotations

import pytest

SCRUBBED = "********"


def app_tool(**extra) -> dict:
    """What the SDK's `tools.create` sends for an app-message tool (its defaults always sent)."""
    return {"name": "get_weather", "description": "Weather for a city", "parameters": {},
            "delivery": {"app_message": True}, "origin": "llm", "on_resolve": "fire_and_forget", "tags": [], **extra}  # fmt: skip


def api_tool(auth: dict | None = None, **extra) -> dict:
    api = {"url": "https://api.example.com/weather/{city}", "method": "POST", "timeout": 10.0}
    if auth is not None:
        api["auth"] = auth
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    return app_tool(parameters=params, delivery={"api": api}, **extra)


def make_tool(c, body: dict | None = None) -> dict:
    r = c.post("/v2/tools", json=body or app_tool())
    assert r.status_code == 200, r.text
    return r.json()


def test_create_answers_the_row_with_defaults(client) -> None:
    tool = make_tool(client, {"name": "t_min", "description": "Minimal"})
    assert tool["tool_id"].startswith("t") and len(tool["tool_id"]) == 13 and tool["uuid"] == tool["tool_id"]
    assert tool["parameters"] == {} and tool["delivery"] == {"app_message": True}
    assert tool["origin"] == "llm" and tool["on_call"] is None and tool["on_resolve"] == "fire_and_forget"
    assert tool["static_filler"] is None and tool["tags"] == [] and tool["is_system_tool"] is False
    assert tool["created_at"] and tool["updated_at"] == tool["created_at"]
    assert client.get(f"/v2/tools/{tool['tool_id']}").json() == tool


def test_sdk_shaped_create_with_api_delivery_round_trips(client) -> None:
    tool = make_tool(client, api_tool({"type": "none"}, tags=["weather"]))
    api = tool["delivery"]["api"]
    assert api == {"url": "https://api.example.com/weather/{city}", "method": "POST", "timeout": 10.0,
                   "auth": {"type": "none"}}  # fmt: skip
    assert tool["tags"] == ["weather"] and tool["parameters"]["properties"] == {"city": {"type": "string"}}


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"type": "bearer", "token": "tok-123"}, "token"),
        ({"type": "basic", "username": "me", "password": "pw-123"}, "password"),
        ({"type": "api_key", "name": "X-Key", "value": "key-123", "location": "query"}, "value"),
        ({"type": "oauth2_client_credentials", "token_url": "https://auth.example.com/token", "client_id": "cid",
          "client_secret": "cs-123", "scope": "read"}, "client_secret"),  # fmt: skip
    ],
)
def test_secrets_are_stored_but_every_read_scrubs_them(client, auth, field) -> None:
    tool = make_tool(client, api_tool(auth))
    tid = tool["tool_id"]
    reads = [tool, client.get(f"/v2/tools/{tid}").json(),
             next(t for t in client.get("/v2/tools", params={"limit": 1000}).json()["data"] if t["tool_id"] == tid)]  # fmt: skip
    for read in reads:
        shown = read["delivery"]["api"]["auth"]
        assert shown[field] == SCRUBBED and shown["type"] == auth["type"]
        assert {k: v for k, v in shown.items() if k != field} == {k: v for k, v in auth.items() if k != field}
    # A PATCH that echoes the read back is refused instead of storing the asterisks.
    r = client.patch(f"/v2/tools/{tid}", json={"delivery": tool["delivery"]})
    assert r.status_code == 400 and "placeholder" in r.json()["error"]


def test_hmac_secret_is_scrubbed_and_forbids_templates(client) -> None:
    body = app_tool(delivery={"api": {"url": "https://hooks.example.com/t", "auth": {"type": "hmac", "secret": "s"}}})
    assert make_tool(client, body)["delivery"]["api"]["auth"] == {"type": "hmac", "secret": SCRUBBED}
    r = client.post("/v2/tools", json=api_tool({"type": "hmac", "secret": "s"}))
    assert r.status_code == 400 and "url placeholders" in r.json()["error"]


def test_create_refuses_the_scrub_placeholder_as_a_secret(client) -> None:
    r = client.post("/v2/tools", json=api_tool({"type": "bearer", "token": SCRUBBED}))
    assert r.status_code == 400 and "auth.token" in r.json()["error"]


def test_patch_without_the_secret_keeps_the_stored_one_and_can_replace_it(client) -> None:
    tool = make_tool(client, api_tool({"type": "bearer", "token": "first"}))
    tid = tool["tool_id"]
    delivery = {"api": {**tool["delivery"]["api"], "timeout": 20.0, "auth": {"type": "bearer"}}}
    r = client.patch(f"/v2/tools/{tid}", json={"delivery": delivery})
    assert r.status_code == 200, r.text
    assert r.json()["delivery"]["api"]["timeout"] == 20.0 and r.json()["delivery"]["api"]["auth"]["token"] == SCRUBBED
    # Another auth type needs its own secret: nothing is carried across types.
    r = client.patch(f"/v2/tools/{tid}", json={"delivery": {"api": {**delivery["api"], "auth": {"type": "hmac"}}}})
    assert r.status_code == 400 and "secret" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (app_tool(name="1starts_with_digit"), "name"),
        (app_tool(name="has-dash"), "name"),
        (app_tool(name="x" * 65), "name"),
        (app_tool(description=""), "description"),
        (app_tool(description="   "), "description"),
        ({"description": "no name"}, "name: Field required"),
        (app_tool(description="d" * 9_990, parameters={"properties": {"a": {"type": "string"}}}), "limit 10000"),
        (app_tool(parameters={"properties": {"tavus_x": {}}}), "reserved"),
        (app_tool(delivery={}), "exactly one channel"),
        (app_tool(delivery={"app_message": False}), "exactly one channel"),
        (app_tool(delivery={"app_message": True, "api": {"url": "https://a.example.com"}}), "exactly one channel"),
        (app_tool(delivery={"api": {"url": "http://a.example.com"}}), "https"),
        (app_tool(delivery={"api": {"url": "https://a.example.com/{q}"}}), "['q'] not declared"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "body_template": {"x": "{q}"}}}), "['q']"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "query_params": {"x": "{q}"}}}), "['q']"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "timeout": 0}}), "timeout"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "timeout": 60.5}}), "timeout"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "method": "GET", "body_template": {}}}), "GET"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "method": "TRACE"}}), "method"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "auth": {"type": "digest"}}}), "auth"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "auth": {"type": "bearer"}}}), "token"),
        (app_tool(delivery={"api": {"url": "https://a.example.com", "auth": {"type": "basic", "username": "u"}}}),
         "password"),  # fmt: skip
        (app_tool(delivery={"api": {"url": "https://a.example.com", "auth": {"type": "oauth2_client_credentials",
         "token_url": "http://a.example.com/t", "client_id": "c", "client_secret": "s"}}}), "token_url"),  # fmt: skip
        (app_tool(delivery={"api": {"url": "https://a.example.com", "auth": {"type": "api_key", "name": "k",
         "value": "v", "location": "cookie"}}}), "location"),  # fmt: skip
        (app_tool(delivery={"api": {"url": "https://a.example.com", "auth": {"type": "none", "token": "x"}}}),
         "unknown field"),  # fmt: skip
        (app_tool(origin="vision", on_call="silent"), "on_call must be null for vision"),
        (app_tool(origin="audio", on_resolve="generate_response"), "fire_and_forget"),
        (app_tool(origin="audio", static_filler="hm"), "static_filler must be null"),
        (app_tool(on_call="static_filler"), "static_filler is required"),
        (app_tool(origin="smell"), "origin"),
        (app_tool(colour="red"), "colour: unknown field"),
        (app_tool(tool_id="tmine"), "tool_id is set by the server"),
        (app_tool(tags=[""]), "tags"),
    ],
)
def test_create_rules(client, body, text) -> None:
    r = client.post("/v2/tools", json=body)
    assert r.status_code == 400, r.text
    assert text in r.json()["error"], r.json()


def test_tavus_placeholders_need_no_declaration_and_perception_tools_are_accepted(client) -> None:
    body = app_tool(delivery={"api": {"url": "https://a.example.com/{tavus_conversation_id}", "method": "GET"}})
    assert make_tool(client, body)["delivery"]["api"]["method"] == "GET"
    vision = make_tool(client, app_tool(name="saw_id", origin="vision", on_resolve="fire_and_forget"))
    assert vision["origin"] == "vision"
    filler = make_tool(client, app_tool(on_call="static_filler", static_filler="One moment"))
    assert filler["static_filler"] == "One moment"


def test_patch_is_a_plain_partial_object(client) -> None:
    tool = make_tool(client, app_tool(tags=["a"]))
    tid = tool["tool_id"]
    r = client.patch(f"/v2/tools/{tid}", json={"description": "Better", "tags": ["b", "c"]})
    assert r.status_code == 200, r.text
    got = client.get(f"/v2/tools/{tid}").json()
    assert got["description"] == "Better" and got["tags"] == ["b", "c"] and got["name"] == tool["name"]
    assert got["created_at"] == tool["created_at"] and got["updated_at"] >= tool["updated_at"]
    assert r.json() == got
    # Nullable fields can be cleared with null.
    client.patch(f"/v2/tools/{tid}", json={"on_call": "static_filler", "static_filler": "Hold on"})
    r = client.patch(f"/v2/tools/{tid}", json={"on_call": None, "static_filler": None})
    assert r.status_code == 200 and r.json()["on_call"] is None and r.json()["static_filler"] is None


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"description": ""}, "description"),
        ({"on_call": "static_filler"}, "static_filler is required"),
        ({"origin": "vision", "on_call": "silent"}, "on_call must be null"),
        ({"delivery": {"api": {"url": "https://a.example.com/{zip}"}}}, "['zip'] not declared"),
        ({"name": None}, "name"),
        ({"parameters": None}, "parameters"),
        ({"tool_id": "tother"}, "tool_id is set by the server"),
        ({"colour": "red"}, "colour: unknown field"),
        ({"delivery": {"app_message": True, "api": {"url": "https://a.example.com"}}}, "exactly one channel"),
    ],
)
def test_patch_rechecks_the_whole_tool_and_changes_nothing_on_error(client, changes, text) -> None:
    tool = make_tool(client)
    r = client.patch(f"/v2/tools/{tool['tool_id']}", json=changes)
    assert r.status_code == 400, r.text
    assert text in r.json()["error"]
    assert client.get(f"/v2/tools/{tool['tool_id']}").json() == tool


def test_patch_may_declare_the_parameter_a_new_url_uses(client) -> None:
    tid = make_tool(client)["tool_id"]
    r = client.patch(f"/v2/tools/{tid}", json={"parameters": {"properties": {"zip": {"type": "string"}}},
                                               "delivery": {"api": {"url": "https://a.example.com/{zip}"}}})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["delivery"] == {"api": {"url": "https://a.example.com/{zip}", "method": "POST", "timeout": 10.0}}


@pytest.mark.parametrize("body", ["[1]", "not json", '"text"'])
def test_bad_bodies_are_400(client, body) -> None:
    tid = make_tool(client)["tool_id"]
    for method, path in [("POST", "/v2/tools"), ("PATCH", f"/v2/tools/{tid}")]:
        r = client.request(method, path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()


def test_list_pages_sorts_filters_and_types(new_account, make_client) -> None:
    c = make_client(new_account())
    ids = [make_tool(c, app_tool(name=f"tool_{i}", description=f"n{i}"))["tool_id"] for i in range(5)]
    listed = c.get("/v2/tools").json()
    assert listed["total_count"] == 5 and [t["tool_id"] for t in listed["data"]] == ids[::-1]
    assert [t["tool_id"] for t in c.get("/v2/tools", params={"sort": "asc"}).json()["data"]] == ids
    assert [t["tool_id"] for t in c.get("/v2/tools", params={"sort": "desc"}).json()["data"]] == ids[::-1]
    page2 = c.get("/v2/tools/", params={"limit": 2, "page": 2, "sort": "asc"}).json()
    assert [t["tool_id"] for t in page2["data"]] == ids[2:4] and page2["total_count"] == 5
    page0 = c.get("/v2/tools", params={"limit": 2, "page": 0, "sort": "asc"}).json()
    assert [t["tool_id"] for t in page0["data"]] == ids[:2]
    assert c.get("/v2/tools", params={"type": "system"}).json() == {"data": [], "total_count": 0}
    assert c.get("/v2/tools", params={"type": "all"}).json()["total_count"] == 5
    assert c.get("/v2/tools", params={"type": "user"}).json()["total_count"] == 5
    assert c.get("/v2/tools", params={"type": "robot"}).status_code == 400
    assert c.get("/v2/tools", params={"limit": 0}).status_code == 400
    assert [t["tool_id"] for t in c.get("/v2/tools", params={"name_or_uuid": ids[3]}).json()["data"]] == [ids[3]]
    assert c.get("/v2/tools", params={"name_or_uuid": "TOOL_4"}).json()["data"][0]["tool_id"] == ids[4]
    assert c.get("/v2/tools", params={"name_or_uuid": "tool_"}).json()["total_count"] == 5
    row = listed["data"][0]
    assert {"tool_id", "uuid", "name", "description", "parameters", "delivery", "origin", "on_call", "on_resolve",
            "tags", "is_system_tool", "created_at", "updated_at"} <= set(row)  # fmt: skip


def test_unknown_and_malformed_ids_are_404(client) -> None:
    for tid in ["tdoesnotexist", "t" + "a" * 100, "t.x"]:
        for method in ("GET", "PATCH", "DELETE"):
            r = client.request(method, f"/v2/tools/{tid}", json={} if method == "PATCH" else None)
            assert r.status_code == 404 and r.json() == {"error": "Tool not found"}, (method, tid, r.text)


def test_delete_is_204_and_detaches_from_every_pal(client) -> None:
    tid = make_tool(client)["tool_id"]
    keep = make_tool(client, app_tool(name="keep"))["tool_id"]
    pals = []
    for _ in range(2):
        r = client.post("/v2/pals", json={"pal_name": "P", "system_prompt": "x", "default_face_id": "rfe12d8b9597",
                                          "tool_ids": [tid, keep]})  # fmt: skip
        assert r.status_code == 200, r.text
        pals.append(r.json()["pal_id"])
    r = client.delete(f"/v2/tools/{tid}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v2/tools/{tid}").status_code == 404
    assert client.delete(f"/v2/tools/{tid}").json() == {"error": "Tool not found"}
    for pal_id in pals:
        assert client.get(f"/v2/pals/{pal_id}").json()["tool_ids"] == [keep]


def test_trailing_slash_is_served_not_redirected(client) -> None:
    r = client.post("/v2/tools/", json=app_tool(), follow_redirects=False)
    assert r.status_code == 200, r.text
    assert client.get("/v2/tools/", follow_redirects=False).status_code == 200


def test_another_account_can_neither_read_list_change_delete_nor_attach(client, new_account, make_client) -> None:
    tool = make_tool(client, api_tool({"type": "bearer", "token": "mine"}, name="private_tool"))
    tid = tool["tool_id"]
    other = make_client(new_account())
    assert other.get(f"/v2/tools/{tid}").json() == {"error": "Tool not found"}
    assert other.get("/v2/tools", params={"name_or_uuid": tid}).json() == {"data": [], "total_count": 0}
    assert tid not in {t["tool_id"] for t in other.get("/v2/tools", params={"type": "all", "limit": 1000}).json()["data"]}
    assert other.patch(f"/v2/tools/{tid}", json={"description": "theirs"}).status_code == 404
    assert other.delete(f"/v2/tools/{tid}").status_code == 404
    r = other.post("/v2/pals", json={"pal_name": "P", "system_prompt": "x", "default_face_id": "rfe12d8b9597",
                                     "tool_ids": [tid]})  # fmt: skip
    assert r.status_code == 400 and tid in r.json()["error"]
    assert client.get(f"/v2/tools/{tid}").json() == tool


def test_no_key_is_401(server, make_client) -> None:
    anonymous = make_client()
    for method, path in [("GET", "/v2/tools"), ("POST", "/v2/tools"), ("GET", "/v2/tools/tabc"),
                         ("PATCH", "/v2/tools/tabc"), ("DELETE", "/v2/tools/tabc")]:  # fmt: skip
        r = anonymous.request(method, path)
        assert r.status_code == 401 and r.json() == {"message": "Invalid access token"}
