"""/v2/guardrails: legacy sets and single guardrails, lists, tags, JSON Patch (SDK `add` ops), delete, scoping."""

from __future__ import annotations

import pytest


def sdk_body(name: str = "no_medical_advice", **extra) -> dict:
    """What the SDK's GuardrailCreate always sends."""
    return {"guardrail_name": name, "guardrail_prompt": "Never give medical advice.", "modality": "verbal",
            "callback_url": "", "app_message": True, "tags": [], **extra}  # fmt: skip


def legacy_body(**extra) -> dict:
    return {"name": "Compliance", "data": [
        {"guardrail_name": "no_competitors", "guardrail_prompt": "Never discuss competitors"},
        {"guardrail_name": "be_polite", "guardrail_prompt": "Stay polite", "modality": "visual",
         "callback_url": "https://example.com/g"},
    ], **extra}  # fmt: skip


def make(c, body: dict, path: str = "/v2/guardrails/") -> dict:
    r = c.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_single_guardrail_create_answers_uuid_and_the_object(client) -> None:
    made = make(client, sdk_body(tags=["health", "safety"]))
    gid = made["uuid"]
    assert gid.startswith("g") and made["guardrail_id"] == gid
    assert made["guardrail_name"] == "no_medical_advice" and made["tags"] == ["health", "safety"]
    assert made["app_message"] is True and made["tool_call"] is None and made["status"] == "active"
    got = client.get(f"/v2/guardrails/{gid}")
    assert got.status_code == 200 and got.json() == made  # a single guardrail is answered flat


def test_single_guardrail_defaults(client) -> None:
    made = make(client, {"guardrail_name": "short", "guardrail_prompt": "x"}, path="/v2/guardrails")
    assert made["modality"] == "verbal" and made["callback_url"] == "" and made["tags"] == []
    assert made["app_message"] is True and made["tool_call"] is None


def test_legacy_set_create_and_get_wrapped_in_data(client) -> None:
    made = make(client, legacy_body(), path="/v2/guardrails")
    assert set(made) == {"guardrails_id", "uuid", "guardrails_name", "status", "created_at"}
    assert made["guardrails_id"].startswith("g") and made["guardrails_name"] == "Compliance"
    got = client.get(f"/v2/guardrails/{made['guardrails_id']}").json()
    assert set(got) == {"data"}
    assert got["data"]["name"] == "Compliance" and got["data"]["guardrails_id"] == made["guardrails_id"]
    assert got["data"]["data"][0] == {"guardrail_name": "no_competitors", "guardrail_prompt": "Never discuss competitors",
                                      "modality": "verbal", "callback_url": ""}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"guardrail_prompt": "x"}, "guardrail_name is required"),
        ({"guardrail_name": "", "guardrail_prompt": "x"}, "guardrail_name is required"),
        ({"name": "s", "data": [{"guardrail_prompt": "x"}]}, "guardrail_name is required"),
        ({"guardrail_name": "a"}, "guardrail_prompt is required"),
        ({"guardrail_name": "a", "guardrail_prompt": ""}, "guardrail_prompt"),
        ({"guardrail_name": "a b", "guardrail_prompt": "x"}, "guardrail_name"),
        ({"guardrail_name": "a" * 101, "guardrail_prompt": "x"}, "guardrail_name"),
        ({"guardrail_name": "a", "guardrail_prompt": "x" * 1001}, "guardrail_prompt"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "modality": "smell"}, "modality"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "callback_url": "h" * 2049}, "callback_url"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "tags": ["t"] * 33}, "tags"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "tags": ["t" * 65]}, "tags"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "tags": [""]}, "tags"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "app_message": "yes"}, "app_message"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "surprise": 1}, "unknown field"),
        ({"guardrail_name": "a", "guardrail_prompt": "x", "uuid": "gmine"}, "uuid is set by the server"),
        ({"name": "s", "data": []}, "data"),
        ({"name": "s", "data": "x"}, "data"),
    ],
)
def test_create_rules_answer_400_with_message(client, body, text) -> None:
    r = client.post("/v2/guardrails/", json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"message"} and text in r.json()["message"]


def test_missing_name_is_the_exact_documented_body(client) -> None:
    r = client.post("/v2/guardrails", json={"guardrail_prompt": "x"})
    assert r.status_code == 400 and r.json() == {"message": "guardrail_name is required"}


def test_tool_call_is_kept(client) -> None:
    made = make(client, sdk_body(tool_call={"name": "notify", "arguments": {"level": "high"}}))
    assert made["tool_call"] == {"name": "notify", "arguments": {"level": "high"}}


def test_list_shapes_by_legacy_flag(new_account, make_client) -> None:
    c = make_client(new_account())
    single = make(c, sdk_body())["uuid"]
    legacy = make(c, legacy_body())["guardrails_id"]
    both = c.get("/v2/guardrails").json()
    assert both["total_count"] == 2 and [d["uuid"] for d in both["data"]] == [legacy, single]
    flat = c.get("/v2/guardrails", params={"legacy": "false"}).json()
    assert flat["total_count"] == 1 and flat["data"][0]["guardrail_id"] == single
    assert flat["data"][0]["guardrail_prompt"] == "Never give medical advice."
    sets = c.get("/v2/guardrails", params={"legacy": "true"}).json()
    assert sets["total_count"] == 1 and sets["data"][0]["guardrails_id"] == legacy
    assert c.get("/v2/guardrails", params={"type": "system"}).json() == {"data": [], "total_count": 0}
    assert c.get("/v2/guardrails", params={"legacy": "maybe"}).status_code == 400


def test_list_pages_from_one_and_filters(new_account, make_client) -> None:
    c = make_client(new_account())
    made = [make(c, sdk_body(f"rule_{i}", tags=[f"t{i}", "common"]))["uuid"] for i in range(3)]
    page1 = c.get("/v2/guardrails", params={"limit": 2, "page": 1}).json()
    page0 = c.get("/v2/guardrails", params={"limit": 2, "page": 0}).json()
    page2 = c.get("/v2/guardrails", params={"limit": 2, "page": 2}).json()
    assert page0 == page1 and [d["uuid"] for d in page1["data"] + page2["data"]] == made[::-1]
    assert page2["total_count"] == 3
    oldest = c.get("/v2/guardrails", params={"sort": "asc"}).json()["data"]
    assert [d["uuid"] for d in oldest] == made
    assert [d["uuid"] for d in c.get("/v2/guardrails", params={"name_or_uuid": "RULE_1"}).json()["data"]] == [made[1]]
    assert [d["uuid"] for d in c.get("/v2/guardrails", params={"name_or_uuid": made[2]}).json()["data"]] == [made[2]]
    tagged = c.get("/v2/guardrails", params={"tags": "t0, t2", "verbose": "true"}).json()
    assert [d["uuid"] for d in tagged["data"]] == [made[2], made[0]] and tagged["total_count"] == 2


def test_tags_lists_the_accounts_distinct_tags(new_account, make_client) -> None:
    c = make_client(new_account())
    assert c.get("/v2/guardrails/tags").json() == {"tags": [], "total_count": 0}
    make(c, sdk_body("a", tags=["Safety", "health"]))
    make(c, sdk_body("b", tags=["safety", "billing"]))
    make(c, legacy_body())
    assert c.get("/v2/guardrails/tags").json() == {"tags": ["billing", "health", "safety"], "total_count": 3}
    assert c.get("/v2/guardrails/tags/").json()["total_count"] == 3
    assert c.get("/v2/guardrails/tags", params={"search": "AL"}).json() == {"tags": ["health"], "total_count": 1}
    assert c.get("/v2/guardrails/tags", params={"limit": 2, "page": 2}).json() == {"tags": ["safety"],
                                                                                 "total_count": 3}  # fmt: skip


def test_sdk_add_ops_replace_existing_fields_and_set_missing_ones(client) -> None:
    gid = make(client, sdk_body())["uuid"]
    r = client.patch(f"/v2/guardrails/{gid}", json=[
        {"op": "add", "path": "/guardrail_prompt", "value": "Refer medical questions to a doctor."},
        {"op": "add", "path": "/tags", "value": ["health"]},
        {"op": "add", "path": "/tool_call", "value": {"name": "escalate"}},
        {"op": "add", "path": "/modality", "value": "audio"},
    ])  # fmt: skip
    assert r.status_code == 200 and r.json() == {"message": "Guardrails updated successfully"}
    got = client.get(f"/v2/guardrails/{gid}").json()
    assert got["guardrail_prompt"] == "Refer medical questions to a doctor." and got["tags"] == ["health"]
    assert got["tool_call"] == {"name": "escalate"} and got["modality"] == "audio"
    assert got["updated_at"] > got["created_at"]


def test_patch_a_legacy_set_on_its_data_view(client) -> None:
    gid = make(client, legacy_body())["guardrails_id"]
    r = client.patch(f"/v2/guardrails/{gid}", json=[
        {"op": "replace", "path": "/data/0/guardrail_prompt", "value": "Updated"},
        {"op": "remove", "path": "/data/1/callback_url"},
    ])  # fmt: skip
    assert r.status_code == 200, r.text
    got = client.get(f"/v2/guardrails/{gid}").json()["data"]
    assert got["data"][0]["guardrail_prompt"] == "Updated" and got["data"][1]["callback_url"] == ""


def test_patch_that_changes_nothing_is_304(client) -> None:
    gid = make(client, sdk_body())["uuid"]
    r = client.patch(f"/v2/guardrails/{gid}", json=[{"op": "add", "path": "/modality", "value": "verbal"}])
    assert r.status_code == 304 and r.content == b""


@pytest.mark.parametrize(
    ("ops", "exact"),
    [
        ({"op": "add", "path": "/guardrail_prompt", "value": "x"}, True),
        ([{"op": "add", "path": "/guardrail_prompt"}], True),
        ([{"op": "nope", "path": "/guardrail_prompt", "value": "x"}], True),
        ([{"op": "add", "path": "/uuid", "value": "gother"}], True),
        ([{"op": "remove", "path": "/created_at"}], True),
        ([{"op": "add", "path": "/tags", "value": ["x"]}, {"op": "test", "path": "/modality", "value": "visual"}], True),
        ([{"op": "add", "path": "/guardrail_prompt", "value": ""}], False),
        ([{"op": "add", "path": "/guardrail_name", "value": "has space"}], False),
        ([{"op": "add", "path": "/tags", "value": ["t"] * 33}], False),
        ([{"op": "add", "path": "/unknown", "value": 1}], False),
        ([{"op": "remove", "path": "/guardrail_name"}], False),
    ],
)
def test_refused_patches_are_400_and_apply_nothing(client, ops, exact) -> None:
    gid = make(client, sdk_body())["uuid"]
    before = client.get(f"/v2/guardrails/{gid}").json()
    r = client.patch(f"/v2/guardrails/{gid}", json=ops)
    assert r.status_code == 400, r.text
    text = r.json()["error"]
    assert text == "Invalid patch operation" if exact else text.startswith("Invalid patch operation: ")
    assert client.get(f"/v2/guardrails/{gid}").json() == before


def test_unknown_ids_are_404_and_malformed_ones_400(client) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs = {"json": [{"op": "add", "path": "/tags", "value": []}]} if method == "PATCH" else {}
        r = client.request(method, "/v2/guardrails/g000000000000", **kwargs)
        assert r.status_code == 404 and r.json() == {"error": "Guardrails not found"}, (method, r.text)
        r = client.request(method, "/v2/guardrails/g.bad", **kwargs)
        assert r.status_code == 400 and r.json() == {"error": "Invalid guardrails_id"}, (method, r.text)


def test_delete_is_204_and_detaches_from_pals(client) -> None:
    single = make(client, sdk_body())["uuid"]
    keep = make(client, sdk_body("keep"))["uuid"]
    legacy = make(client, legacy_body())["guardrails_id"]
    pal = client.post("/v2/pals", json={"pal_name": "P", "system_prompt": "x", "default_face_id": "r90bbd427f71",
                                        "guardrail_ids": [single, keep], "guardrails_id": legacy}).json()  # fmt: skip
    for gid in (single, legacy):
        r = client.delete(f"/v2/guardrails/{gid}")
        assert r.status_code == 204 and r.content == b""
        assert client.get(f"/v2/guardrails/{gid}").status_code == 404
    got = client.get(f"/v2/pals/{pal['pal_id']}").json()
    assert got["guardrail_ids"] == [keep] and got["guardrails_id"] is None


def test_another_account_can_neither_read_list_change_delete_nor_use(client, new_account, make_client) -> None:
    gid = make(client, sdk_body(tags=["private_tag"]))["uuid"]
    other = make_client(new_account())
    assert other.get(f"/v2/guardrails/{gid}").json() == {"error": "Guardrails not found"}
    assert other.get("/v2/guardrails").json()["total_count"] == 0
    assert other.get("/v2/guardrails/tags").json() == {"tags": [], "total_count": 0}
    assert other.patch(f"/v2/guardrails/{gid}", json=[{"op": "add", "path": "/tags", "value": []}]).status_code == 404
    assert other.delete(f"/v2/guardrails/{gid}").status_code == 404
    r = other.post("/v2/pals", json={"pal_name": "P", "system_prompt": "x", "default_face_id": "r90bbd427f71",
                                     "guardrail_ids": [gid]})  # fmt: skip
    assert r.status_code == 400 and gid in r.json()["error"]
    assert client.get(f"/v2/guardrails/{gid}").json()["tags"] == ["private_tag"]


def test_auth_comes_first(make_client) -> None:
    anonymous = make_client()
    for method, path in [("POST", "/v2/guardrails/"), ("GET", "/v2/guardrails"), ("GET", "/v2/guardrails/tags"),
                         ("GET", "/v2/guardrails/g000000000000"), ("DELETE", "/v2/guardrails/nope")]:  # fmt: skip
        r = anonymous.request(method, path)
        assert r.status_code == 401 and r.json() == {"message": "Invalid access token"}
