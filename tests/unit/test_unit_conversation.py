"""The conversation state machine and the lifecycle events it implies (palaver.domain.conversation)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from palaver.domain import events
from palaver.domain.conversation import (
    History,
    ShutdownReason,
    Status,
    can_end,
    end,
    initial_status,
    lifecycle_events,
)

CREATED_AT = "2026-02-02T02:40:00.123456Z"
ENDED_AT = "2026-02-02T02:45:07.000001Z"
ENVELOPE_KEYS = {"properties", "conversation_id", "webhook_url", "event_type", "message_type", "timestamp"}


def history(**changes: object) -> History:
    """An ended, non-test conversation; override fields with keyword arguments."""
    base = History(
        conversation_id="c477c9dd7aa6e4f",
        test_mode=False,
        replica_id="r90bbd427f71",
        callback_url="https://hooks.example.com/tavus",
        system_prompt="You are Anna. Be brief.",
        created_at=CREATED_AT,
        ended_at=ENDED_AT,
        shutdown_reason=ShutdownReason.END_ENDPOINT.value,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def active_history(**changes: object) -> History:
    return history(ended_at=None, shutdown_reason=None, **changes)


# -- states and transitions ---------------------------------------------------------


def test_initial_status_is_active_for_live_and_ended_for_test_mode() -> None:
    """A live conversation starts active; a test-mode one is born ended."""
    assert initial_status(False) is Status.ACTIVE
    assert initial_status(True) is Status.ENDED


def test_status_values_are_the_tavus_strings() -> None:
    assert (Status.ACTIVE.value, Status.ENDED.value, Status.ERROR.value) == ("active", "ended", "error")


def test_end_moves_active_to_ended() -> None:
    assert end("active") is Status.ENDED
    assert end(Status.ACTIVE) is Status.ENDED


@pytest.mark.parametrize("terminal", ["ended", "error"])
def test_end_leaves_terminal_states_unchanged(terminal: str) -> None:
    """`ended` and `error` are terminal: ending them again changes nothing."""
    assert end(terminal) is Status(terminal)


def test_end_rejects_an_unknown_status() -> None:
    """An unknown status is not silently treated as some known one."""
    with pytest.raises(ValueError):
        end("paused")


@pytest.mark.parametrize(("status", "expected"), [("active", True), ("ended", False), ("error", False)])
def test_can_end_only_when_active(status: str, expected: bool) -> None:
    assert can_end(status) is expected


# -- shutdown reasons ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "text"),
    [
        ("END_ENDPOINT", "end_conversation_endpoint_hit"),
        ("ROOM_DELETED", "daily_room_has_been_deleted"),
        ("MAX_CALL_DURATION", "max_call_duration reached"),
        ("PARTICIPANT_LEFT_TIMEOUT", "participant_left_timeout reached"),
        ("PARTICIPANT_ABSENT_TIMEOUT", "participant_absent_timeout reached"),
    ],
)
def test_shutdown_reasons_are_tavus_strings_verbatim(member: str, text: str) -> None:
    """Clients match these strings exactly, spaces and underscores included."""
    reason = ShutdownReason[member]
    assert reason.value == text
    assert str(reason) == text
    assert reason == text


# -- lifecycle events ---------------------------------------------------------------


def test_test_mode_conversation_has_no_events() -> None:
    """No replica joins a test-mode conversation, so it has no events even though it is ended."""
    assert lifecycle_events(history(test_mode=True)) == []
    assert lifecycle_events(active_history(test_mode=True)) == []


def test_active_conversation_has_only_replica_joined() -> None:
    evs = lifecycle_events(active_history())
    assert [e.event_type for e in evs] == [events.REPLICA_JOINED]
    joined = evs[0]
    assert joined.timestamp == CREATED_AT
    assert joined.properties == {"replica_id": "r90bbd427f71"}
    assert joined.message_type == "system"


def test_ended_conversation_has_three_events_in_tavus_order() -> None:
    evs = lifecycle_events(history())
    assert [e.event_type for e in evs] == [
        "system.replica_joined",
        "system.shutdown",
        "application.transcription_ready",
    ]
    assert [e.message_type for e in evs] == ["system", "system", "application"]


def test_only_builds_the_events_of_the_types_asked_for_in_order() -> None:
    """The worker asks for the shutdown alone under a burst; what it gets must match the full rendering."""
    full = lifecycle_events(history())
    assert lifecycle_events(history(), [events.SHUTDOWN]) == [full[1]]
    assert lifecycle_events(history(), {events.TRANSCRIPTION_READY, events.REPLICA_JOINED}) == [full[0], full[2]]
    assert lifecycle_events(active_history(), [events.SHUTDOWN, events.TRANSCRIPTION_READY]) == []
    assert lifecycle_events(history(), []) == []


def test_an_event_id_reads_back_as_its_conversation_and_type() -> None:
    for event in lifecycle_events(history()):
        assert events.split_event_id(event.event_id) == (event.conversation_id, event.event_type)
    assert [events.split_event_id(x) for x in ("c1", "c1.", ".system.shutdown", "")] == [None] * 4


def test_event_timestamps_follow_creation_and_end() -> None:
    """replica_joined happens at creation; shutdown and transcript at the end."""
    joined, shutdown, transcript = lifecycle_events(history())
    assert joined.timestamp == CREATED_AT
    assert shutdown.timestamp == ENDED_AT
    assert transcript.timestamp == ENDED_AT


@pytest.mark.parametrize("reason", [r.value for r in ShutdownReason])
def test_shutdown_event_carries_the_reason_under_both_names(reason: str) -> None:
    _, shutdown, _ = lifecycle_events(history(shutdown_reason=reason))
    assert shutdown.properties["shutdown_reason"] == reason
    assert shutdown.properties["reason"] == reason
    assert shutdown.properties["replica_id"] == "r90bbd427f71"


def test_transcript_starts_with_the_system_prompt() -> None:
    _, _, ready = lifecycle_events(history(system_prompt="Prompt with\nnewline and ünïcode"))
    transcript = ready.properties["transcript"]
    assert transcript[0] == {"role": "system", "content": "Prompt with\nnewline and ünïcode"}
    assert ready.properties["replica_id"] == "r90bbd427f71"


def test_every_event_names_its_conversation_and_webhook() -> None:
    for ev in lifecycle_events(history()):
        assert ev.conversation_id == "c477c9dd7aa6e4f"
        assert ev.webhook_url == "https://hooks.example.com/tavus"


def test_no_callback_url_gives_empty_webhook_url() -> None:
    for ev in lifecycle_events(history(callback_url="")):
        assert ev.envelope()["webhook_url"] == ""


def test_envelope_has_exactly_the_documented_fields() -> None:
    for ev in lifecycle_events(history()):
        env = ev.envelope()
        assert set(env) == ENVELOPE_KEYS
        assert env["conversation_id"] == "c477c9dd7aa6e4f"
        assert env["webhook_url"] == "https://hooks.example.com/tavus"
        assert env["event_type"] == ev.event_type
        assert env["message_type"] == ev.event_type.split(".")[0]
        assert env["timestamp"] == ev.timestamp
        assert env["properties"] == ev.properties


def test_event_ids_are_stable_and_distinct_per_type() -> None:
    """Rendering twice gives the same ids (webhook retries dedupe on them); types never share one."""
    first = [e.event_id for e in lifecycle_events(history())]
    again = [e.event_id for e in lifecycle_events(history())]
    assert first == again
    assert len(set(first)) == 3
    # The id of an event does not change when the conversation ends later.
    assert lifecycle_events(active_history())[0].event_id == first[0]


def test_event_ids_differ_between_conversations() -> None:
    a = {e.event_id for e in lifecycle_events(history())}
    b = {e.event_id for e in lifecycle_events(history(conversation_id="c0123456789abcd"))}
    assert a.isdisjoint(b)
