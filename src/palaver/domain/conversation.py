"""The conversation lifecycle as a state machine.

    create(test_mode=false) ──> active ──(end endpoint | delete | timers)──> ended
    create(test_mode=true)  ──> ended            (no replica, no events)

`ended` is terminal. This module decides what states exist, which transitions
are allowed and what events a conversation's history implies; storage makes a
transition happen atomically with a conditional write, so racing callers cannot
both win.
"""

from __future__ import annotations

import json
from collections.abc import Container
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
class History:
    """The facts of a conversation that its lifecycle events are rendered from."""

    conversation_id: str
    test_mode: bool
    replica_id: str
    callback_url: str
    system_prompt: str
    created_at: str
    ended_at: str | None
    shutdown_reason: str | None
    # The room's transcript entries (storage/rooms.py), loaded only where the transcript is rendered.
    turns: tuple[dict[str, Any], ...] = ()


def initial_status(test_mode: bool) -> Status:
    return Status.ENDED if test_mode else Status.ACTIVE


# The one state a conversation can end from, and the state it ends in. Storage
# builds its conditional write from these (`SET status = ENDS_IN WHERE status =
# ENDS_FROM`), so the rule tested here is the rule the database applies.
ENDS_FROM = Status.ACTIVE
ENDS_IN = Status.ENDED


def can_end(status: str) -> bool:
    return status == ENDS_FROM


def end(status: str) -> Status:
    """The transition itself: an active conversation ends; anything else stays as it is."""
    return ENDS_IN if can_end(status) else Status(status)


def transcript(history: History) -> list[dict[str, Any]]:
    """The end-of-call transcript: the system prompt entry first, then the room's turns in order."""
    return [{"role": "system", "content": history.system_prompt}, *history.turns]


def parse_turns(text: str | None) -> tuple[dict[str, Any], ...]:
    """The transcript entries as storage returns them for the outbox: a JSON array's text, or None."""
    return tuple(json.loads(text)) if text else ()


def lifecycle_events(history: History, only: Container[str] | None = None) -> list[Event]:
    """The events a conversation's history implies, in Tavus's order (of the types in `only`, if given).

    A live conversation's replica joins when it is created; when it ends, the
    shutdown (with its reason) comes first, then the transcript. A test-mode
    conversation has no replica and so no events at all. `only` lets the
    delivery worker skip building what it does not send yet: under a burst of
    ends it wants the shutdowns alone, and the transcript was most of the
    rendering (docs/performance.md).
    """
    if history.test_mode:
        return []
    cid, rid, url = history.conversation_id, history.replica_id, history.callback_url
    out = []
    if only is None or events.REPLICA_JOINED in only:
        out.append(events.replica_joined(cid, rid, url, history.created_at))
    if history.ended_at is not None and history.shutdown_reason is not None:
        if only is None or events.SHUTDOWN in only:
            out.append(events.shutdown(cid, rid, url, history.shutdown_reason, history.ended_at))
        if only is None or events.TRANSCRIPTION_READY in only:
            out.append(events.transcription_ready(cid, rid, url, transcript(history), history.ended_at))
    return out
