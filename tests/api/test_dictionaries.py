"""/v2/pronunciation-dictionaries: create 201, rules, 0-based list, JSON Patch (SDK add ops), delete, scoping."""

from __future__ import annotations

import pytest

ALIAS = {"text": "Tavus", "pronunciation": "TAH-vus", "type": "alias", "case_sensitive": False,
         "word_boundaries": True}  # fmt: skip
IPA = {"text": "CVI", "pronunciation": "siː viː aɪ", "type": "ipa", "alphabet": "ipa", "case_sensitive": True,
       "word_boundaries": False}  # fmt: skip


def make(c, name: str = "Brand Terms", rules: list | None = None, path: str = "/v2/pronunciation-dictionaries/"):
    r = c.post(path, json={"name": name, "rules": [ALIAS] if rules is None else rules})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_is_201_with_the_documented_shape_at_both_spellings(client) -> None:
    for path in ("/v2/pronunciation-dictionaries", "/v2/pronunciation-dictionaries/"):
        made = make(client, rules=[ALIAS, IPA], path=path)
        assert list(made) == ["pronunciation_dictionary_id", "name", "rules", "rules_count", "created_at",
                              "updated_at"]  # fmt: skip
        assert made["pronunciation_dictionary_id"].startswith("pd_") and made["name"] == "Brand Terms"
        assert made["rules"] == [ALIAS, IPA] and made["rules_count"] == 2
        assert client.get(f"/v2/pronunciation-dictionaries/{made['pronunciation_dictionary_id']}").json() == made


def test_rule_defaults_and_alphabet(client) -> None:
    made = make(client, rules=[{"text": "a", "pronunciation": "b", "type": "alias"},
                               {"text": "c", "pronunciation": "d", "type": "ipa"}])  # fmt: skip
    assert made["rules"] == [
        {"text": "a", "pronunciation": "b", "type": "alias", "case_sensitive": False, "word_boundaries": True},
        {"text": "c", "pronunciation": "d", "type": "ipa", "alphabet": "ipa", "case_sensitive": False,
         "word_boundaries": True},
    ]  # fmt: skip


def test_rules_may_be_left_out(client) -> None:
    r = client.post("/v2/pronunciation-dictionaries", json={"name": "Empty"})
    assert r.status_code == 201 and r.json()["rules"] == [] and r.json()["rules_count"] == 0


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "Invalid request: name is required"),
        ({"name": ""}, "Invalid request: name is required"),
        ({"name": "   "}, "Invalid request: name is required"),
        ({"name": 5}, "Invalid request: name is required"),
        ({"name": "n", "rules": [ALIAS, {**ALIAS, "pronunciation": "other"}]},
         "Invalid request: duplicate text values in rules"),
        ({"name": "n" * 256}, "name"),
        ({"name": "n", "rules": [{**ALIAS, "text": ""}]}, "text"),
        ({"name": "n", "rules": [{**ALIAS, "text": "t" * 201}]}, "text"),
        ({"name": "n", "rules": [{**ALIAS, "pronunciation": ""}]}, "pronunciation"),
        ({"name": "n", "rules": [{**ALIAS, "pronunciation": "p" * 501}]}, "pronunciation"),
        ({"name": "n", "rules": [{**ALIAS, "type": "phoneme"}]}, "type"),
        ({"name": "n", "rules": [{"text": "a", "pronunciation": "b"}]}, "type is required"),
        ({"name": "n", "rules": [{**IPA, "alphabet": "x-sampa"}]}, "alphabet"),
        ({"name": "n", "rules": [{**ALIAS, "case_sensitive": "no"}]}, "case_sensitive"),
        ({"name": "n", "rules": "x"}, "rules"),
        ({"name": "n", "owner": "me"}, "unknown field owner"),
    ],
)  # fmt: skip
def test_create_rules(client, body, text) -> None:
    r = client.post("/v2/pronunciation-dictionaries/", json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and r.json()["error"].startswith("Invalid request: ") and text in r.json()["error"]


def test_exact_documented_errors(client) -> None:
    r = client.post("/v2/pronunciation-dictionaries", json={"rules": []})
    assert r.json() == {"error": "Invalid request: name is required"}
    r = client.post("/v2/pronunciation-dictionaries", json={"name": "n", "rules": [ALIAS, ALIAS]})
    assert r.json() == {"error": "Invalid request: duplicate text values in rules"}


def test_list_pages_from_zero_without_rules(new_account, make_client) -> None:
    c = make_client(new_account())
    made = [make(c, name=f"d{i}")["pronunciation_dictionary_id"] for i in range(3)]
    listed = c.get("/v2/pronunciation-dictionaries").json()
    assert listed["total_count"] == 3 and listed["page"] == 0 and listed["limit"] == 10
    assert [d["pronunciation_dictionary_id"] for d in listed["data"]] == made[::-1]
    assert "rules" not in listed["data"][0] and listed["data"][0]["rules_count"] == 1
    page0 = c.get("/v2/pronunciation-dictionaries", params={"page": 0, "limit": 2}).json()
    page1 = c.get("/v2/pronunciation-dictionaries", params={"page": 1, "limit": 2}).json()
    assert [d["pronunciation_dictionary_id"] for d in page0["data"] + page1["data"]] == made[::-1]
    assert page1["page"] == 1 and page1["limit"] == 2 and page1["total_count"] == 3
    oldest = c.get("/v2/pronunciation-dictionaries", params={"sort": "asc"}).json()["data"]
    assert [d["pronunciation_dictionary_id"] for d in oldest] == made
    for bad in ({"limit": 0}, {"limit": 101}, {"sort": "sideways"}, {"page": -1}):
        assert c.get("/v2/pronunciation-dictionaries", params=bad).status_code == 400, bad


def test_sdk_add_ops_rename_and_replace_the_rules_whole(client) -> None:
    made = make(client, rules=[ALIAS, IPA])
    did = made["pronunciation_dictionary_id"]
    new_rule = {"text": "PAL", "pronunciation": "pal", "type": "alias"}
    r = client.patch(f"/v2/pronunciation-dictionaries/{did}", json=[
        {"op": "add", "path": "/name", "value": "Renamed"},
        {"op": "add", "path": "/rules", "value": [new_rule]},
    ])  # fmt: skip
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["name"] == "Renamed" and got["rules_count"] == 1
    assert got["rules"] == [{**new_rule, "case_sensitive": False, "word_boundaries": True}]
    assert got["created_at"] == made["created_at"] and got["updated_at"] > made["updated_at"]
    assert client.get(f"/v2/pronunciation-dictionaries/{did}").json() == got


def test_patch_of_server_fields_is_ignored_and_no_change_is_304(client) -> None:
    did = make(client)["pronunciation_dictionary_id"]
    before = client.get(f"/v2/pronunciation-dictionaries/{did}").json()
    for ops in ([{"op": "replace", "path": "/name", "value": "Brand Terms"}],
                [{"op": "replace", "path": "/rules_count", "value": 99},
                 {"op": "replace", "path": "/pronunciation_dictionary_id", "value": "pd_other"}]):  # fmt: skip
        r = client.patch(f"/v2/pronunciation-dictionaries/{did}", json=ops)
        assert r.status_code == 304 and r.content == b""
    assert client.get(f"/v2/pronunciation-dictionaries/{did}").json() == before


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "add", "path": "/name", "value": "x"},
        [{"op": "add", "path": "/name"}],
        [{"op": "jump", "path": "/name", "value": "x"}],
        [{"op": "add", "path": "/name", "value": "B"}, {"op": "test", "path": "/name", "value": "nope"}],
        [{"op": "add", "path": "/name", "value": "B"}, {"op": "remove", "path": "/rules/5"}],
    ],
)
def test_malformed_or_failing_patch_is_422(client, ops) -> None:
    did = make(client)["pronunciation_dictionary_id"]
    before = client.get(f"/v2/pronunciation-dictionaries/{did}").json()
    r = client.patch(f"/v2/pronunciation-dictionaries/{did}", json=ops)
    assert r.status_code == 422 and r.json() == {"message": "Invalid JSON patch format"}, r.text
    assert client.get(f"/v2/pronunciation-dictionaries/{did}").json() == before


@pytest.mark.parametrize(
    ("ops", "text"),
    [
        ([{"op": "add", "path": "/name", "value": ""}], "Invalid request: name is required"),
        ([{"op": "remove", "path": "/name"}], "Invalid request: name is required"),
        ([{"op": "add", "path": "/rules", "value": [ALIAS, ALIAS]}], "Invalid request: duplicate text values in rules"),
        ([{"op": "add", "path": "/rules/-", "value": {**ALIAS, "pronunciation": "x"}}], "duplicate text values"),
        ([{"op": "add", "path": "/rules", "value": [{**ALIAS, "type": "x"}]}], "type"),
    ],
)
def test_patch_that_breaks_the_rules_is_400(client, ops, text) -> None:
    did = make(client)["pronunciation_dictionary_id"]
    before = client.get(f"/v2/pronunciation-dictionaries/{did}").json()
    r = client.patch(f"/v2/pronunciation-dictionaries/{did}", json=ops)
    assert r.status_code == 400 and text in r.json()["error"], r.text
    assert client.get(f"/v2/pronunciation-dictionaries/{did}").json() == before


def test_unknown_and_malformed_ids_are_404(client) -> None:
    for did in ("pd_0000000000000000", "pd.bad", "x" * 65):
        for method in ("GET", "PATCH", "DELETE"):
            kwargs = {"json": [{"op": "add", "path": "/name", "value": "x"}]} if method == "PATCH" else {}
            r = client.request(method, f"/v2/pronunciation-dictionaries/{did}", **kwargs)
            assert r.status_code == 404, (did, method, r.text)
            assert r.json() == {"message": "Pronunciation dictionary not found"}


def test_a_pal_uses_it_and_delete_clears_it(client) -> None:
    did = make(client)["pronunciation_dictionary_id"]
    body = {"pal_name": "P", "system_prompt": "x", "default_face_id": "r90bbd427f71",
            "layers": {"tts": {"tts_engine": "cartesia", "pronunciation_dictionary_id": did}}}  # fmt: skip
    r = client.post("/v2/pals", json=body)
    assert r.status_code == 200, r.text
    pal_id = r.json()["pal_id"]
    r = client.delete(f"/v2/pronunciation-dictionaries/{did}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v2/pronunciation-dictionaries/{did}").status_code == 404
    assert client.get(f"/v2/pals/{pal_id}").json()["layers"]["tts"] == {"tts_engine": "cartesia"}
    assert client.delete(f"/v2/pronunciation-dictionaries/{did}").status_code == 404


def test_another_account_can_neither_read_list_change_delete_nor_use(client, new_account, make_client) -> None:
    did = make(client)["pronunciation_dictionary_id"]
    other = make_client(new_account())
    assert other.get(f"/v2/pronunciation-dictionaries/{did}").status_code == 404
    assert other.get("/v2/pronunciation-dictionaries").json()["total_count"] == 0
    r = other.patch(f"/v2/pronunciation-dictionaries/{did}", json=[{"op": "add", "path": "/name", "value": "x"}])
    assert r.status_code == 404
    assert other.delete(f"/v2/pronunciation-dictionaries/{did}").status_code == 404
    r = other.post("/v2/pals", json={"pal_name": "P", "system_prompt": "x", "default_face_id": "r90bbd427f71",
                                     "layers": {"tts": {"pronunciation_dictionary_id": did}}})  # fmt: skip
    assert r.status_code == 400 and r.json() == {"error": "Invalid pronunciation_dictionary_id"}
    assert client.get(f"/v2/pronunciation-dictionaries/{did}").json()["name"] == "Brand Terms"


def test_auth_comes_first(make_client) -> None:
    anonymous = make_client()
    for method, path in [("POST", "/v2/pronunciation-dictionaries/"), ("GET", "/v2/pronunciation-dictionaries"),
                         ("GET", "/v2/pronunciation-dictionaries/pd_0"), ("DELETE", "/v2/pronunciation-dictionaries/x")]:  # fmt: skip
        r = anonymous.request(method, path)
        assert r.status_code == 401 and r.json() == {"message": "Invalid access token"}
