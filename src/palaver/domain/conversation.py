"""The conversation lifecycle as a state machine.

    create(test_mode=false) ──> active ──(end endpoint | delete | timers)──> ended
    create(test_mode=true)  ──> ended            (no replica, no events)

`ended` is terminal. The functions here decide *what* a transition means (the
new state and the events it records); storage makes it happen atomically with
a conditional write, so racing callers cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from palaver.domain import events
from palaver.domain.events import Event


class Status(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    ERROR = "error"


class ShutdownReason(StrEnum):
    """Tavus's documented `shutdown_reason` strings; clients match on them verbatim."""

    END_ENDPOINT = "end_conversation_endpoint_hit"
    ROOM_DELETED = "daily_room_has_been_deleted"
    MAX_CALL_DURATION = "max_call_duration reached"
    PARTICIPANT_LEFT_TIMEOUT = "participant_left_timeout reached"
    PARTICIPANT_ABSENT_TIMEOUT = "participant_absent_timeout reached"


class EndOutcome(StrEnum):
    """What an end request found; only ENDED means this caller made the transition."""

    ENDED = "ended"
    ALREADY_ENDED = "already_ended"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class LiveConversation:
    """The part of a conversation the end transition needs, read inside its transaction."""

    conversation_id: str
    replica_id: str
    callback_url: str
    system_prompt: str


def initial_status(test_mode: bool) -> Status:
    return Status.ENDED if test_mode else Status.ACTIVE


def can_end(status: str) -> bool:
    return status == Status.ACTIVE


def creation_events(conversation_id: str, replica_id: str, callback_url: str, test_mode: bool, at: float) -> list[Event]:
    """A live conversation's replica joins at once; a test-mode one never does."""
    if test_mode:
        return []
    return [events.replica_joined(conversation_id, replica_id, callback_url, at)]


def transcript_so_far(conversation: LiveConversation) -> list[dict[str, Any]]:
    """The end-of-call transcript: the system prompt entry, then the turns (none until rooms exist)."""
    return [{"role": "system", "content": conversation.system_prompt}]


def end_events(conversation: LiveConversation, reason: ShutdownReason | str, at: float) -> list[Event]:
    """The events of the one transition active -> ended, in Tavus's order."""
    cid, rid, url = conversation.conversation_id, conversation.replica_id, conversation.callback_url
    return [
        events.shutdown(cid, rid, url, str(reason), at),
        events.transcription_ready(cid, rid, url, transcript_so_far(conversation), at),
    ]
