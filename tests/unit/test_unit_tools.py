"""Pure tool and skill rules: documents, placeholders, secret handling on update, config merges."""

from __future__ import annotations

import pytest

from palaver.domain.errors import ValidationFailed
from palaver.domain.skills import CATALOGUE, check_config, entry, merge_config
from palaver.domain.tools import SCRUBBED, ApiDelivery, check_tool, merge_update, placeholders, public_row


def stored(**fields) -> dict:
    return {"tool_id": "t000000000001", **check_tool({"name": "n", "description": "d", **fields}),
            "created_at": "c", "updated_at": "u"}  # fmt: skip


def test_check_tool_fills_the_sdk_defaults_and_keeps_delivery_as_given() -> None:
    fields = check_tool({"name": "n", "description": "d"})
    assert fields == {"name": "n", "description": "d", "parameters": {}, "delivery": {"app_message": True},
                      "origin": "llm", "on_call": None, "on_resolve": "fire_and_forget", "static_filler": None,
                      "tags": []}  # fmt: skip
    api = check_tool({"name": "n", "description": "d", "delivery": {"api": {"url": "https://x.example"}}})["delivery"]
    assert api == {"api": {"url": "https://x.example", "method": "POST", "timeout": 10.0}}


def test_size_limit_counts_description_and_parameters_json() -> None:
    params = {"properties": {"a": {"type": "string"}}}
    overhead = len('{"properties": {"a": {"type": "string"}}}')
    check_tool({"name": "n", "description": "d" * (10_000 - overhead), "parameters": params})
    with pytest.raises(ValidationFailed, match="limit 10000"):
        check_tool({"name": "n", "description": "d" * (10_001 - overhead), "parameters": params})


def test_placeholders_are_found_in_url_template_and_query_less_tavus_ones() -> None:
    api = ApiDelivery.model_validate(
        {"url": "https://x.example/{a}/{tavus_conversation_id}", "body_template": {"k": ["{b}", {"n": "x{c}y"}]},
         "query_params": {"q": "{d}"}}  # fmt: skip
    )
    assert placeholders(api) == {"a", "b", "c", "d"}


def test_public_row_scrubs_only_the_secret_and_does_not_touch_the_stored_document() -> None:
    auth = {"type": "api_key", "name": "X-Key", "value": "v", "location": "header"}
    document = stored(delivery={"api": {"url": "https://x.example", "auth": auth}})
    row = public_row(document)
    assert row["delivery"]["api"]["auth"] == {**auth, "value": SCRUBBED}
    assert document["delivery"]["api"]["auth"]["value"] == "v"
    assert row["uuid"] == row["tool_id"] == "t000000000001" and row["is_system_tool"] is False


def test_merge_update_replaces_given_fields_and_keeps_a_same_type_secret() -> None:
    document = stored(delivery={"api": {"url": "https://x.example", "auth": {"type": "bearer", "token": "s"}}})
    merged = merge_update(document, {"delivery": {"api": {"url": "https://y.example", "auth": {"type": "bearer"}}}})
    assert merged["delivery"]["api"] == {"url": "https://y.example", "auth": {"type": "bearer", "token": "s"}}
    assert "tool_id" not in merged and merged["name"] == "n"
    other = merge_update(document, {"delivery": {"api": {"url": "https://y.example", "auth": {"type": "hmac"}}}})
    assert "secret" not in other["delivery"]["api"]["auth"]
    with pytest.raises(ValidationFailed, match="colour"):
        merge_update(document, {"colour": 1})


def test_placeholder_secret_is_refused_for_every_auth_kind() -> None:
    for kind, field, extra in [("bearer", "token", {}), ("basic", "password", {"username": "u"}),
                               ("api_key", "value", {"name": "k"}), ("hmac", "secret", {}),
                               ("oauth2_client_credentials", "client_secret",
                                {"token_url": "https://t.example", "client_id": "c"})]:  # fmt: skip
        auth = {"type": kind, field: SCRUBBED, **extra}
        with pytest.raises(ValidationFailed, match=f"auth.{field}"):
            check_tool({"name": "n", "description": "d", "delivery": {"api": {"url": "https://x.example", "auth": auth}}})


def test_merge_config_merges_objects_removes_nulls_and_replaces_the_rest() -> None:
    current = {"components": {"chart": {"enabled": False}}, "usage_guidance": "g", "keep": [1]}
    merged = merge_config(current, {"components": {"text": {"enabled": True}}, "usage_guidance": None, "keep": [2]})
    assert merged == {"components": {"chart": {"enabled": False}, "text": {"enabled": True}}, "keep": [2]}
    assert current["components"] == {"chart": {"enabled": False}}  # the input is not changed


def test_skill_configs_and_entries() -> None:
    assert set(CATALOGUE) >= {"magic_canvas", "presentation", "internet_search", "memory"}
    assert check_config("presentation", {"document_ids": ["d1"], "prompt": None}) == {"document_ids": ["d1"]}
    assert entry("memory", {}) == {"config": {}} and entry("memory", {"config": None}) == {"config": {}}
    with pytest.raises(ValidationFailed, match="config must be a JSON object"):
        entry("memory", {"config": []})
    with pytest.raises(ValidationFailed, match="Unknown skill_id"):
        check_config("teleport", {})
