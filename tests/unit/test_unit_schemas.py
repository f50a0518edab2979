"""Validation of the create-conversation body as a unit (palaver.api.schemas.CreateConversationRequest)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from palaver.api.schemas import CreateConversationRequest


def parse(body: dict[str, Any]) -> CreateConversationRequest:
    return CreateConversationRequest.model_validate(body)


def rejected(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The error locations of a body that must fail validation."""
    with pytest.raises(ValidationError) as info:
        parse(body)
    return [e["loc"] for e in info.value.errors()]


def test_empty_body_is_valid() -> None:
    command = parse({}).to_command()
    assert command.replica_id is None and command.persona_id is None
    assert command.callback_url == ""
    assert command.test_mode is False and command.require_auth is False
    assert command.request == {}


# -- strict booleans ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["test_mode", "require_auth", "audio_only", "enable_dynamic_greeting"])
@pytest.mark.parametrize("value", ["yes", "true", "1", "on", 1, 0])
def test_booleans_are_strict(field: str, value: Any) -> None:
    """A string or a number is not a boolean."""
    assert (field,) in rejected({field: value})


@pytest.mark.parametrize("value", [True, False])
def test_real_booleans_are_accepted(value: bool) -> None:
    command = parse({"test_mode": value, "require_auth": value}).to_command()
    assert command.test_mode is value
    assert command.require_auth is value


def test_property_booleans_are_strict_too() -> None:
    assert ("properties", "require_auth") in rejected({"properties": {"require_auth": "yes"}})


def test_require_auth_in_properties_counts() -> None:
    assert parse({"properties": {"require_auth": True}}).to_command().require_auth is True


# -- callback_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://example.com",
        "https://example.com/hooks/tavus?x=1",
        "https://example.com:8443/path",
        "http://127.0.0.1:9/cb",
        "http://[::1]:8080/cb",
    ],
)
def test_callback_url_accepted(url: str) -> None:
    assert parse({"callback_url": url}).to_command().callback_url == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "not a url",
        "example.com/hook",
        "http://",
        "https:///path-only",
        "http://exa mple.com/",
        " http://example.com/",
        "http://example.com/\n",
        "http://example.com/a\tb",
        "http://exa\x00mple.com/x",
        "http://example.com/\x7f",
        "http://example.com:99999/",
        "http://example.com:port/",
        "javascript:alert(1)",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_callback_url_rejected(url: str) -> None:
    assert ("callback_url",) in rejected({"callback_url": url})


def test_callback_url_must_be_a_string() -> None:
    assert ("callback_url",) in rejected({"callback_url": 42})


def test_missing_callback_url_becomes_empty_string() -> None:
    assert parse({"callback_url": None}).to_command().callback_url == ""


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 0, -5, "2", 2.5, True])
def test_max_participants_rejected(value: Any) -> None:
    assert ("max_participants",) in rejected({"max_participants": value})


@pytest.mark.parametrize("value", [2, 10, 1000])
def test_max_participants_accepted(value: int) -> None:
    assert parse({"max_participants": value}).max_participants == value


def test_timer_properties_reach_the_command() -> None:
    command = parse(
        {"properties": {"participant_absent_timeout": 42, "max_call_duration": 90, "participant_left_timeout": 0}}
    ).to_command()
    assert (command.timers.participant_absent_timeout, command.timers.max_call_duration) == (42, 90)
    assert command.timers.participant_left_timeout == 0


def test_timer_defaults_are_tavus_defaults() -> None:
    timers = parse({"properties": {"language": "english"}}).to_command().timers
    assert (timers.max_call_duration, timers.participant_absent_timeout, timers.participant_left_timeout) == (
        3600,
        300,
        0,
    )


@pytest.mark.parametrize("value", [-1, "60", 86_401])
def test_absent_timeout_rejected(value: Any) -> None:
    assert ("properties", "participant_absent_timeout") in rejected(
        {"properties": {"participant_absent_timeout": value}}
    )


# -- aliases ------------------------------------------------------------------------------


def test_face_and_pal_aliases_map_in() -> None:
    command = parse({"face_id": "r90bbd427f71", "pal_id": "pcb7a34da5fe"}).to_command()
    assert command.replica_id == "r90bbd427f71"
    assert command.persona_id == "pcb7a34da5fe"


def test_canonical_names_map_in() -> None:
    command = parse({"replica_id": "r90bbd427f71", "persona_id": "pcb7a34da5fe"}).to_command()
    assert (command.replica_id, command.persona_id) == ("r90bbd427f71", "pcb7a34da5fe")


def test_alias_and_name_agreeing_is_fine() -> None:
    command = parse({"replica_id": "r90bbd427f71", "face_id": "r90bbd427f71"}).to_command()
    assert command.replica_id == "r90bbd427f71"


@pytest.mark.parametrize(
    "body",
    [
        {"replica_id": "r90bbd427f71", "face_id": "rfe12d8b9597"},
        {"persona_id": "pcb7a34da5fe", "pal_id": "pdac61133ac5"},
        {"replica_id": "", "face_id": "rfe12d8b9597"},
    ],
)
def test_conflicting_alias_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse(body)


# -- unknown and extra fields ---------------------------------------------------------------


def test_unknown_top_level_fields_are_ignored() -> None:
    model = parse({"replica_id": "r90bbd427f71", "no_such_field": {"x": 1}, "another": "y"})
    command = model.to_command()
    assert command.replica_id == "r90bbd427f71"
    assert "no_such_field" not in command.request
    assert "another" not in command.request


def test_extra_properties_are_kept_in_the_request() -> None:
    body = {
        "replica_id": "r90bbd427f71",
        "conversation_name": "Demo",
        "properties": {"max_call_duration": 600, "future_flag": True, "nested": {"a": [1, "b"]}},
    }
    request = parse(body).to_command().request
    assert request["properties"] == {"max_call_duration": 600, "future_flag": True, "nested": {"a": [1, "b"]}}
    assert request["replica_id"] == "r90bbd427f71"
    assert request["conversation_name"] == "Demo"


def test_request_omits_fields_that_were_not_given() -> None:
    request = parse({"test_mode": True}).to_command().request
    assert request == {"test_mode": True}


def test_command_carries_the_simple_fields() -> None:
    command = parse(
        {
            "conversation_name": "Name",
            "conversational_context": "Context",
            "callback_url": "https://example.com/cb",
            "test_mode": True,
        }
    ).to_command()
    assert command.conversation_name == "Name"
    assert command.conversational_context == "Context"
    assert command.callback_url == "https://example.com/cb"
    assert command.test_mode is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("replica_id", "r" * 65),
        ("conversation_name", "n" * 1025),
        ("document_retrieval_strategy", "fastest"),
        ("memory_stores", "not-a-list"),
        ("properties", "not-an-object"),
    ],
)
def test_field_constraints(field: str, value: Any) -> None:
    assert (field,) in rejected({field: value})
