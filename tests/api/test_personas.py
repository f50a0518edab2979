"""/v2/personas and /v2/pals: one object, two vocabularies, JSON Patch, stock objects, scoping."""

from __future__ import annotations

import pytest

LISTS = ["document_ids", "document_tags", "guardrail_ids", "guardrail_tags", "tool_ids", "memories"]


def make_persona(c, **extra) -> dict:
    body = {"persona_name": "Helper", "system_prompt": "Be kind.", "default_replica_id": "r90bbd427f71", **extra}
    r = c.post("/v2/personas", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def make_pal(c, **extra) -> dict:
    body = {"pal_name": "Pal", "system_prompt": "Be brief.", "pipeline_mode": "full", "default_face_id": "rfe12d8b9597",
            "layers": {"llm": {"model": "tavus-gemma-4", "speculative_inference": True}}, **extra}  # fmt: skip
    r = c.post("/v2/pals", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_create_answers_the_documented_shape_in_each_vocabulary(client) -> None:
    persona = make_persona(client)
    assert set(persona) == {"persona_id", "persona_name", "created_at"}
    assert persona["persona_id"].startswith("p") and persona["persona_name"] == "Helper"
    pal = make_pal(client)
    assert set(pal) == {"pal_id", "pal_name", "created_at"}


def test_one_object_two_vocabularies(client) -> None:
    pal_id = make_pal(client, memories=["likes tea"])["pal_id"]
    as_persona = client.get(f"/v2/personas/{pal_id}").json()
    as_pal = client.get(f"/v2/pals/{pal_id}").json()
    assert as_persona["persona_id"] == as_pal["pal_id"] == pal_id
    assert as_persona["persona_name"] == as_pal["pal_name"] == "Pal"
    assert as_persona["default_replica_id"] == as_pal["default_face_id"] == "rfe12d8b9597"
    assert as_persona["persona_type"] == as_pal["pal_type"] == "user"
    assert "pal_id" not in as_persona and "persona_id" not in as_pal
    assert as_pal["memories"] == ["likes tea"]
    assert as_pal["layers"]["llm"] == {"model": "tavus-gemma-4", "speculative_inference": True}


def test_get_is_flat_and_complete(client) -> None:
    pid = make_persona(client)["persona_id"]
    got = client.get(f"/v2/personas/{pid}").json()
    assert "data" not in got
    for field in LISTS:
        assert got[field] == [], field
    assert got["layers"] == {} and got["objectives_id"] is None and got["guardrails_id"] is None
    assert got["pipeline_mode"] == "full" and got["system_prompt"] == "Be kind." and got["context"] is None


@pytest.mark.parametrize(
    ("path", "body", "text"),
    [
        ("/v2/personas", {"persona_name": "x"}, "system_prompt is required when pipeline_mode is 'full'"),
        ("/v2/personas", {"pipeline_mode": "echo", "system_prompt": "x"}, "not allowed when pipeline_mode is 'echo'"),
        ("/v2/personas", {"pipeline_mode": "speech-to-speech", "context": "x"}, "not allowed"),
        ("/v2/personas", {"system_prompt": "x", "default_replica_id": "rdoesnotexist"}, "Invalid replica_uuid"),
        ("/v2/personas", {"system_prompt": "x", "pal_name": "x"}, "pal_name"),
        ("/v2/personas", {"system_prompt": "x", "pipeline_mode": "turbo"}, "pipeline_mode"),
        ("/v2/personas", {"system_prompt": "x", "persona_id": "pmine"}, "persona_id is set by the server"),
        ("/v2/personas", {"system_prompt": "x", "layers": {"warp": {}}}, "unknown layer 'warp'"),
        ("/v2/personas", {"system_prompt": "x", "guardrail_ids": [f"g{i}" for i in range(51)]}, "guardrail_ids"),
        ("/v2/pals", {"pal_name": "x", "system_prompt": "x"}, "default_face_id is required"),
        ("/v2/pals", {"system_prompt": "x", "default_face_id": "rnope"}, "Invalid replica_uuid"),
        ("/v2/pals", {"system_prompt": "x", "default_face_id": "r90bbd427f71", "persona_name": "x"}, "pal_name"),
    ],
)
def test_create_rules(client, path, body, text) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert text in r.json()["error"]


def test_echo_persona_takes_no_prompt(client) -> None:
    r = client.post("/v2/personas", json={"persona_name": "Echo", "pipeline_mode": "echo"})
    assert r.status_code == 200, r.text
    assert client.get(f"/v2/personas/{r.json()['persona_id']}").json()["system_prompt"] is None


def test_list_filters_types_and_pages_from_zero_or_one(new_account, make_client) -> None:
    c = make_client(new_account())
    made = [make_persona(c, persona_name=f"n{i}")["persona_id"] for i in range(3)]
    users = c.get("/v2/personas", params={"persona_type": "user"}).json()
    assert [p["persona_id"] for p in users["data"]] == made[::-1] and users["total_count"] == 3
    system = c.get("/v2/pals", params={"pal_type": "system", "limit": 100}).json()
    assert {p["pal_type"] for p in system["data"]} == {"system"} and system["total_count"] == len(system["data"])
    assert "pcb7a34da5fe" in {p["pal_id"] for p in system["data"]}
    everything = c.get("/v2/personas", params={"limit": 2}).json()
    assert everything["total_count"] == 3 + system["total_count"] and len(everything["data"]) == 2
    page0 = c.get("/v2/pals", params={"page": 0, "limit": 2, "pal_type": "user"}).json()["data"]
    page1 = c.get("/v2/pals", params={"page": 1, "limit": 2, "pal_type": "user"}).json()["data"]
    page2 = c.get("/v2/pals", params={"page": 2, "limit": 2, "pal_type": "user"}).json()["data"]
    assert page0 == page1 and [p["pal_id"] for p in page1 + page2] == made[::-1]
    oldest = c.get("/v2/pals", params={"pal_type": "user", "sort": "asc"}).json()["data"]
    assert [p["pal_id"] for p in oldest] == made


def test_patch_in_pal_vocabulary_changes_the_persona(client) -> None:
    pid = make_persona(client)["persona_id"]
    r = client.patch(f"/v2/pals/{pid}", json=[
        {"op": "replace", "path": "/pal_name", "value": "Renamed"},
        {"op": "replace", "path": "/document_tags", "value": ["faq"]},
        {"op": "add", "path": "/guardrail_tags/-", "value": "safety"},
        {"op": "add", "path": "/layers/conversational_flow", "value": {"wake_phrase": "hey"}},
    ])  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["pal_name"] == "Renamed"
    got = client.get(f"/v2/personas/{pid}").json()
    assert got["persona_name"] == "Renamed" and got["document_tags"] == ["faq"] and got["guardrail_tags"] == ["safety"]
    assert got["layers"] == {"conversational_flow": {"wake_phrase": "hey"}}
    assert got["updated_at"] > got["created_at"]


def test_patch_that_changes_nothing_is_304(client) -> None:
    pid = make_persona(client)["persona_id"]
    r = client.patch(f"/v2/personas/{pid}", json=[{"op": "replace", "path": "/persona_name", "value": "Helper"}])
    assert r.status_code == 304 and r.content == b""


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "replace", "path": "/persona_name", "value": "x"},
        [{"op": "replace", "path": "/persona_name"}],
        [{"op": "bogus", "path": "/persona_name", "value": 1}],
        [{"op": "replace", "path": "/persona_id", "value": "pother"}],
        [{"op": "remove", "path": "/created_at"}],
        "not json",
    ],
)
def test_malformed_patch_is_422_and_applies_nothing(client, ops) -> None:
    pid = make_persona(client)["persona_id"]
    before = client.get(f"/v2/personas/{pid}").json()
    if isinstance(ops, str):
        r = client.patch(f"/v2/personas/{pid}", content=ops, headers={"content-type": "application/json"})
        assert r.status_code == 400  # not JSON at all: the generic bad-body answer
    else:
        r = client.patch(f"/v2/personas/{pid}", json=ops)
        assert r.status_code == 422, r.text
        assert r.json() == {"message": "Invalid JSON patch format"}
    assert client.get(f"/v2/personas/{pid}").json() == before


def test_patch_is_atomic_when_a_later_op_fails(client) -> None:
    pid = make_persona(client)["persona_id"]
    before = client.get(f"/v2/personas/{pid}").json()
    for failing in ({"op": "test", "path": "/persona_name", "value": "Someone else"},
                    {"op": "remove", "path": "/no_such_field"}):  # fmt: skip
        r = client.patch(f"/v2/personas/{pid}", json=[{"op": "replace", "path": "/persona_name", "value": "B"}, failing])
        assert r.status_code == 422, r.text
        assert r.json()["message"].startswith("JSON patch could not be applied")
    assert client.get(f"/v2/personas/{pid}").json() == before


@pytest.mark.parametrize(
    ("ops", "text"),
    [
        ([{"op": "replace", "path": "/system_prompt", "value": ""}], "system_prompt is required"),
        ([{"op": "replace", "path": "/pipeline_mode", "value": "echo"}], "not allowed when pipeline_mode is 'echo'"),
        ([{"op": "add", "path": "/unknown_field", "value": 1}], "unknown_field"),
        ([{"op": "replace", "path": "/document_ids", "value": ["dmissing"]}], "Invalid document_ids: dmissing"),
        ([{"op": "replace", "path": "/default_replica_id", "value": "rmissing"}], "Invalid replica_uuid"),
        ([{"op": "replace", "path": "/persona_name", "value": 7}], "persona_name"),
    ],
)
def test_patch_that_would_make_the_persona_invalid_is_refused(client, ops, text) -> None:
    pid = make_persona(client)["persona_id"]
    before = client.get(f"/v2/personas/{pid}").json()
    r = client.patch(f"/v2/personas/{pid}", json=ops)
    assert r.status_code == 400, r.text
    assert text in r.json()["error"]
    assert client.get(f"/v2/personas/{pid}").json() == before


def test_replace_on_lists_works_for_a_pal_created_without_them(client) -> None:
    """The SDK's knowledge recipe uses `replace` on /document_ids and /document_tags."""
    pal_id = make_pal(client)["pal_id"]
    r = client.patch(f"/v2/pals/{pal_id}", json=[{"op": "replace", "path": "/document_tags", "value": ["a"]},
                                                  {"op": "add", "path": "/layers/knowledge_base", "value": {}}])  # fmt: skip
    assert r.status_code == 200, r.text


def test_delete_is_204_then_the_id_is_invalid(client) -> None:
    pid = make_persona(client)["persona_id"]
    r = client.delete(f"/v2/personas/{pid}")
    assert r.status_code == 204 and r.content == b""
    for method, path in [("GET", f"/v2/personas/{pid}"), ("DELETE", f"/v2/personas/{pid}"), ("GET", f"/v2/pals/{pid}")]:
        r = client.request(method, path)
        assert r.status_code == 400
    assert client.get(f"/v2/pals/{pid}").json() == {"error": "Invalid pal_id"}
    assert client.get(f"/v2/personas/{pid}").json() == {"error": "Invalid persona_id"}


@pytest.mark.parametrize("pid", ["pcb7a34da5fe", "pipecat0", "pipecat-stream", "pb87e71797da"])
def test_stock_personas_exist_for_everyone_and_cannot_change(client, new_account, make_client, pid) -> None:
    for c in (client, make_client(new_account())):
        got = c.get(f"/v2/personas/{pid}")
        assert got.status_code == 200 and got.json()["persona_type"] == "system"
    patch = client.patch(f"/v2/personas/{pid}", json=[{"op": "replace", "path": "/persona_name", "value": "x"}])
    assert patch.status_code == 400 and "cannot be changed" in patch.json()["error"]
    assert client.delete(f"/v2/pals/{pid}").status_code == 400
    assert client.get(f"/v2/personas/{pid}").json()["persona_type"] == "system"


def test_pipecat_echo_persona_is_echo(client) -> None:
    got = client.get("/v2/personas/pipecat0").json()
    assert got["pipeline_mode"] == "echo" and got["persona_name"]


@pytest.mark.parametrize("bad", ["p" + "a" * 100, "p%20x", "p.x"])
def test_malformed_ids_are_invalid_ids(client, bad) -> None:
    assert client.get(f"/v2/personas/{bad}").json() == {"error": "Invalid persona_id"}
    assert client.get(f"/v2/pals/{bad}").json() == {"error": "Invalid pal_id"}


def test_another_account_can_neither_read_list_change_delete_nor_use(client, new_account, make_client) -> None:
    pid = make_persona(client, persona_name="Mine")["persona_id"]
    other = make_client(new_account())
    assert other.get(f"/v2/personas/{pid}").status_code == 400
    assert pid not in {p["persona_id"] for p in other.get("/v2/personas", params={"limit": 1000}).json()["data"]}
    ops = [{"op": "replace", "path": "/persona_name", "value": "Theirs"}]
    assert other.patch(f"/v2/personas/{pid}", json=ops).json() == {"error": "Invalid persona_id"}
    assert other.delete(f"/v2/pals/{pid}").json() == {"error": "Invalid pal_id"}
    r = other.post("/v2/conversations", json={"persona_id": pid, "replica_id": "r90bbd427f71"})
    assert r.status_code == 400 and r.json() == {"error": "Invalid persona_id"}
    assert client.get(f"/v2/personas/{pid}").json()["persona_name"] == "Mine"


def test_conversation_uses_the_pals_default_face_and_prompt(client) -> None:
    pal_id = make_pal(client)["pal_id"]
    r = client.post("/v2/conversations", json={"pal_id": pal_id, "test_mode": True})
    assert r.status_code == 200, r.text
    assert r.json()["replica_id"] == "rfe12d8b9597" and r.json()["persona_id"] == pal_id
    r = client.post("/v2/conversations", json={"persona_id": pal_id, "replica_id": "r90bbd427f71", "test_mode": True})
    assert r.json()["replica_id"] == "r90bbd427f71"


def test_conversation_keeps_its_persona_after_the_persona_changes(client) -> None:
    pid = make_persona(client)["persona_id"]
    cid = client.post("/v2/conversations", json={"persona_id": pid, "test_mode": True}).json()["conversation_id"]
    client.patch(f"/v2/personas/{pid}", json=[{"op": "replace", "path": "/default_replica_id", "value": "rfe12d8b9597"}])
    client.delete(f"/v2/personas/{pid}")
    got = client.get(f"/v2/conversations/{cid}").json()
    assert got["persona_id"] == pid and got["replica_id"] == "r90bbd427f71"


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v2/personas/", {"system_prompt": "x"}), ("/v2/pals/", {"system_prompt": "x", "default_face_id": "r90bbd427f71"})],
)
def test_trailing_slash_is_served_not_redirected(client, path, body) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 200 and "data" in r.json()
    r = client.post(path, json=body, follow_redirects=False)
    assert r.status_code == 200, r.text
    r = client.post(path, json={}, follow_redirects=False)
    assert r.status_code == 400


def test_no_route_redirects(client) -> None:
    r = client.get("/v2/conversations/", follow_redirects=False)
    assert not 300 <= r.status_code < 400
