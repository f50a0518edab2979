"""/v2/objectives: create (both slashes), validate, get, list, JSON Patch, delete, PAL detach, scoping."""

from __future__ import annotations

import pytest


def flow(*names: str, **extra) -> dict:
    """A straight flow a -> b -> c ... as a create body."""
    data = []
    for i, name in enumerate(names):
        item = {"objective_name": name, "objective_prompt": f"Do {name}"}
        if i + 1 < len(names):
            item["next_required_objective"] = names[i + 1]
        data.append(item)
    return {"name": "Intake", "data": data, **extra}


def one(name: str, **fields) -> dict:
    return {"objective_name": name, "objective_prompt": "x", **fields}


def make(c, body: dict | None = None, path: str = "/v2/objectives") -> dict:
    r = c.post(path, json=body or flow("greet", "ask_name"))
    assert r.status_code == 200, r.text
    return r.json()


def test_create_answers_the_documented_shape_at_both_spellings(client) -> None:
    for path in ("/v2/objectives", "/v2/objectives/"):
        made = make(client, path=path)
        assert set(made) == {"objectives_id", "uuid", "objective_name", "status", "created_at"}
        assert made["objectives_id"].startswith("o") and made["uuid"] == made["objectives_id"]
        assert made["objective_name"] == "Intake" and made["status"] == "active"
        assert made["created_at"].endswith("Z")


def test_get_wraps_the_complete_set_in_data(client) -> None:
    oid = make(client, flow("a", "b", allow_loops=False))["objectives_id"]
    r = client.get(f"/v2/objectives/{oid}")
    assert r.status_code == 200
    got = r.json()
    assert set(got) == {"data"}
    body = got["data"]
    assert body["objectives_id"] == oid and body["name"] == "Intake" and body["allow_loops"] is False
    first = body["data"][0]
    assert first == {
        "objective_name": "a", "objective_prompt": "Do a", "confirmation_mode": "auto", "output_variables": [],
        "modality": "verbal", "next_required_objective": "b", "next_conditional_objectives": None,
        "callback_url": "", "tool_call": None,
    }  # fmt: skip
    assert body["created_at"] == body["updated_at"]


def test_conditional_flows_are_accepted(client) -> None:
    body = {"data": [
        {"objective_name": "ask_if_new", "objective_prompt": "Ask", "output_variables": ["patient_status"],
         "next_conditional_objectives": {"new_intake": "if new", "existing_intake": "if not"}},
        {"objective_name": "new_intake", "objective_prompt": "New", "confirmation_mode": "manual"},
        {"objective_name": "existing_intake", "objective_prompt": "Old", "modality": "visual",
         "callback_url": "https://example.com/hook"},
    ]}  # fmt: skip
    oid = make(client, body)["objectives_id"]
    got = client.get(f"/v2/objectives/{oid}").json()["data"]
    assert got["name"] == ""
    assert got["data"][0]["next_conditional_objectives"] == {"new_intake": "if new", "existing_intake": "if not"}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"data": [{"objective_prompt": "x"}]}, "objective_name is required"),
        ({"data": [{"objective_name": "", "objective_prompt": "x"}]}, "objective_name is required"),
        ({"data": [{"objective_name": "a"}]}, "objective_prompt is required"),
        ({}, "data is required"),
        ({"data": []}, "data is required"),
        ({"data": [{"objective_name": "has space", "objective_prompt": "x"}]}, "objective_name"),
        ({"data": [{"objective_name": "a" * 101, "objective_prompt": "x"}]}, "objective_name"),
        ({"data": [{"objective_name": "a", "objective_prompt": "x" * 10_001}]}, "objective_prompt"),
        ({"data": [one("a", confirmation_mode="maybe")]}, "confirmation_mode"),
        ({"data": [one("a", modality="smell")]}, "modality"),
        ({"data": [one("a", output_variables=["v"] * 51)]}, "output_variables"),
        ({"data": [one("a", callback_url="h" * 2049)]}, "callback_url"),
        ({"data": [one("a", surprise=1)]}, "unknown field"),
        ({"data": [{"objective_name": f"o{i}", "objective_prompt": "x"} for i in range(51)]}, "data"),
        ({"data": [{"objective_name": "a", "objective_prompt": "x"}] * 2}, "used more than once"),
        ({"data": [one("a", next_required_objective="a")]}, "its own next"),
        ({"data": [one("a", next_required_objective="zz")]}, "not in this set"),
        ({"data": [one("a", next_required_objective="b", next_conditional_objectives={"b": "if"}), one("b")]},
         "not both"),
        ({"data": [{"objective_name": "a", "objective_prompt": "x"},
                   {"objective_name": "b", "objective_prompt": "x"}]}, "single first objective"),
        (flow("a", "b") | {"objectives_id": "omine"}, "objectives_id is set by the server"),
    ],
)  # fmt: skip
def test_create_rules_answer_400_with_message(client, body, text) -> None:
    r = client.post("/v2/objectives/", json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"message"} and text in r.json()["message"]


def test_missing_name_is_the_exact_documented_body(client) -> None:
    r = client.post("/v2/objectives", json={"data": [{"objective_prompt": "x"}]})
    assert r.status_code == 400 and r.json() == {"message": "objective_name is required"}


def test_loops_need_allow_loops(client) -> None:
    body = flow("a", "b", "c")
    body["data"][2]["next_required_objective"] = "b"
    r = client.post("/v2/objectives", json=body)
    assert r.status_code == 400 and "loops (b -> c -> b)" in r.json()["message"]
    assert client.post("/v2/objectives", json={**body, "allow_loops": True}).status_code == 200


def test_validate_checks_without_storing(new_account, make_client) -> None:
    c = make_client(new_account())
    r = c.post("/v2/objectives/validate", json=flow("a", "b", "c"))
    assert r.status_code == 200 and r.json() == {"valid": True, "message": "Objectives are valid",
                                                  "objectives_count": 3}  # fmt: skip
    looped = flow("a", "b")
    looped["data"][1]["next_required_objective"] = "a"
    looped["data"].append({"objective_name": "c", "objective_prompt": "x", "next_required_objective": "nowhere"})
    r = c.post("/v2/objectives/validate", json=looped)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["valid"] is False and body["message"] == body["errors"][0]
    assert any("'nowhere' is not in this set" in e for e in body["errors"])
    assert c.get("/v2/objectives").json() == {"data": [], "total_count": 0}


def test_list_pages_from_one_sorts_and_filters(new_account, make_client) -> None:
    c = make_client(new_account())
    made = [make(c, flow("a", name=f"set {i}"))["objectives_id"] for i in range(3)]
    listed = c.get("/v2/objectives").json()
    assert listed["total_count"] == 3 and [d["objectives_id"] for d in listed["data"]] == made[::-1]
    assert listed["data"][0]["data"][0]["objective_name"] == "a"
    page1 = c.get("/v2/objectives", params={"limit": 2, "page": 1}).json()
    page0 = c.get("/v2/objectives", params={"limit": 2, "page": 0}).json()
    page2 = c.get("/v2/objectives", params={"limit": 2, "page": 2}).json()
    assert page0 == page1 and [d["objectives_id"] for d in page1["data"] + page2["data"]] == made[::-1]
    assert page2["total_count"] == 3
    oldest = c.get("/v2/objectives", params={"sort": "ascending"}).json()["data"]
    assert [d["objectives_id"] for d in oldest] == made
    by_name = c.get("/v2/objectives", params={"name_or_uuid": "SET 1"}).json()
    assert [d["objectives_id"] for d in by_name["data"]] == [made[1]] and by_name["total_count"] == 1
    by_id = c.get("/v2/objectives", params={"name_or_uuid": made[2]}).json()["data"]
    assert [d["objectives_id"] for d in by_id] == [made[2]]
    assert c.get("/v2/objectives", params={"type": "system"}).json()["total_count"] == 0
    assert c.get("/v2/objectives", params={"limit": 0}).status_code == 400


def test_patch_on_the_data_view(client) -> None:
    oid = make(client)["objectives_id"]
    r = client.patch(f"/v2/objectives/{oid}", json=[
        {"op": "replace", "path": "/data/0/objective_prompt", "value": "Say hello"},
        {"op": "add", "path": "/data/0/output_variables/-", "value": "mood"},
        {"op": "replace", "path": "/data/1/callback_url", "value": "https://example.com/done"},
        {"op": "replace", "path": "/name", "value": "Renamed"},
    ])  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Objective updated successfully"}
    got = client.get(f"/v2/objectives/{oid}").json()["data"]
    assert got["name"] == "Renamed" and got["data"][0]["objective_prompt"] == "Say hello"
    assert got["data"][0]["output_variables"] == ["mood"] and got["data"][1]["callback_url"].endswith("/done")
    assert got["updated_at"] > got["created_at"]


def test_patch_replacing_the_whole_list(client) -> None:
    """What a client that keeps its objectives in code sends: `replace /data`."""
    oid = make(client)["objectives_id"]
    new = flow("one", "two", "three")["data"]
    r = client.patch(f"/v2/objectives/{oid}", json=[{"op": "replace", "path": "/data", "value": new}])
    assert r.status_code == 200, r.text
    names = [o["objective_name"] for o in client.get(f"/v2/objectives/{oid}").json()["data"]["data"]]
    assert names == ["one", "two", "three"]


def test_patch_that_changes_nothing_is_304(client) -> None:
    oid = make(client)["objectives_id"]
    r = client.patch(f"/v2/objectives/{oid}", json=[{"op": "replace", "path": "/data/0/objective_prompt",
                                                     "value": "Do greet"}])  # fmt: skip
    assert r.status_code == 304 and r.content == b""


@pytest.mark.parametrize(
    ("ops", "exact"),
    [
        ({"op": "replace", "path": "/name", "value": "x"}, True),
        ([{"op": "replace", "path": "/name"}], True),
        ([{"op": "bogus", "path": "/name", "value": 1}], True),
        ([{"op": "replace", "path": "/objectives_id", "value": "oother"}], True),
        ([{"op": "remove", "path": "/created_at"}], True),
        ([{"op": "replace", "path": "/name", "value": "B"}, {"op": "test", "path": "/name", "value": "nope"}], True),
        ([{"op": "replace", "path": "/name", "value": "B"}, {"op": "remove", "path": "/data/7"}], True),
        ([{"op": "replace", "path": "/data/1/next_required_objective", "value": "greet"}], False),  # a loop
        ([{"op": "replace", "path": "/data/0/objective_name", "value": "bad name"}], False),
        ([{"op": "replace", "path": "/data", "value": []}], False),
        ([{"op": "add", "path": "/data/0/extra", "value": 1}], False),
        ([{"op": "replace", "path": "/data/0/next_required_objective", "value": "ghost"}], False),
    ],
)
def test_refused_patches_are_400_and_apply_nothing(client, ops, exact) -> None:
    oid = make(client)["objectives_id"]
    before = client.get(f"/v2/objectives/{oid}").json()
    r = client.patch(f"/v2/objectives/{oid}", json=ops)
    assert r.status_code == 400, r.text
    text = r.json()["error"]
    assert text == "Invalid patch operation" if exact else text.startswith("Invalid patch operation: ")
    assert client.get(f"/v2/objectives/{oid}").json() == before


def test_unknown_ids_are_404_and_malformed_ones_400(client) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs = {"json": [{"op": "replace", "path": "/name", "value": "x"}]} if method == "PATCH" else {}
        r = client.request(method, "/v2/objectives/o000000000000", **kwargs)
        assert r.status_code == 404 and r.json() == {"error": "Objective not found"}, (method, r.text)
        r = client.request(method, "/v2/objectives/" + "o" * 65, **kwargs)
        assert r.status_code == 400 and r.json() == {"error": "Invalid objectives_id"}, (method, r.text)


def test_delete_is_204_and_detaches_from_pals(client) -> None:
    oid = make(client)["objectives_id"]
    pal = client.post("/v2/pals", json={"pal_name": "P", "system_prompt": "x", "default_face_id": "r90bbd427f71",
                                        "objectives_id": oid}).json()  # fmt: skip
    assert client.get(f"/v2/pals/{pal['pal_id']}").json()["objectives_id"] == oid
    r = client.delete(f"/v2/objectives/{oid}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v2/pals/{pal['pal_id']}").json()["objectives_id"] is None
    assert client.get(f"/v2/objectives/{oid}").status_code == 404
    assert client.delete(f"/v2/objectives/{oid}").status_code == 404


def test_another_account_can_neither_read_list_change_delete_nor_use(client, new_account, make_client) -> None:
    oid = make(client)["objectives_id"]
    other = make_client(new_account())
    assert other.get(f"/v2/objectives/{oid}").json() == {"error": "Objective not found"}
    assert oid not in {d["objectives_id"] for d in other.get("/v2/objectives", params={"limit": 1000}).json()["data"]}
    r = other.patch(f"/v2/objectives/{oid}", json=[{"op": "replace", "path": "/name", "value": "mine"}])
    assert r.status_code == 404
    assert other.delete(f"/v2/objectives/{oid}").status_code == 404
    r = other.post("/v2/pals", json={"pal_name": "P", "system_prompt": "x", "default_face_id": "r90bbd427f71",
                                     "objectives_id": oid})  # fmt: skip
    assert r.status_code == 400 and r.json() == {"error": "Invalid objectives_id"}
    assert client.get(f"/v2/objectives/{oid}").json()["data"]["name"] == "Intake"


def test_auth_comes_first(make_client) -> None:
    anonymous = make_client()
    for method, path in [("POST", "/v2/objectives/"), ("POST", "/v2/objectives/validate"), ("GET", "/v2/objectives"),
                         ("GET", "/v2/objectives/o000000000000"), ("DELETE", "/v2/objectives/nope")]:  # fmt: skip
        r = anonymous.request(method, path)
        assert r.status_code == 401 and r.json() == {"message": "Invalid access token"}
