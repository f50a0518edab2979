"""Conversation events: what Tavus shows in `verbose` reads and sends to `callback_url`.

The lifecycle events are not stored as separate rows: each is fully determined
by facts the conversation row already holds (when it was created and ended, why,
with which replica, callback and system prompt). Rendering them from those facts
means a conversation can never have two shutdowns or a shutdown without an end,
whatever races happen, and the end endpoint writes one row, not three. The same
function feeds the verbose GET and (later) webhook delivery, so they agree byte
for byte, and each event's id is derived from what it is, so retries of a
webhook carry the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REPLICA_JOINED = "system.replica_joined"
SHUTDOWN = "system.shutdown"
TRANSCRIPTION_READY = "application.transcription_ready"
# A conversation's lifecycle events in the order they happen and are delivered.
LIFECYCLE_ORDER = (REPLICA_JOINED, SHUTDOWN, TRANSCRIPTION_READY)


def rank_of(event_type: str) -> int:
    """An event's place in its conversation's delivery order (unknown types go last)."""
    try:
        return LIFECYCLE_ORDER.index(event_type)
    except ValueError:
        return len(LIFECYCLE_ORDER)


@dataclass(frozen=True, slots=True)
class Event:
    conversation_id: str
    event_type: str
    timestamp: str
    properties: dict[str, Any]
    webhook_url: str = ""

    @property
    def event_id(self) -> str:
        """Stable: one lifecycle event of each type per conversation."""
        return f"{self.conversation_id}.{self.event_type}"

    @property
    def message_type(self) -> str:
        return self.event_type.split(".", 1)[0]

    def envelope(self) -> dict[str, Any]:
        """The webhook body, field for field as Tavus documents it (reference 4.2)."""
        return {
            "properties": self.properties,
            "conversation_id": self.conversation_id,
            "webhook_url": self.webhook_url,
            "event_type": self.event_type,
            "message_type": self.message_type,
            "timestamp": self.timestamp,
        }


def split_event_id(event_id: str) -> tuple[str, str] | None:
    """`Event.event_id` read back: (conversation id, event type), or None if it is not one.

    Conversation ids have no dot and event types do, so the first dot divides them.
    """
    conversation_id, dot, event_type = event_id.partition(".")
    return (conversation_id, event_type) if dot and conversation_id and event_type else None


def replica_joined(conversation_id: str, replica_id: str, webhook_url: str, at: str) -> Event:
    return Event(conversation_id, REPLICA_JOINED, at, {"replica_id": replica_id}, webhook_url)


def shutdown(conversation_id: str, replica_id: str, webhook_url: str, reason: str, at: str) -> Event:
    # The docs and clients read `shutdown_reason`; the OpenAPI example says `reason`.
    properties = {"replica_id": replica_id, "shutdown_reason": reason, "reason": reason}
    return Event(conversation_id, SHUTDOWN, at, properties, webhook_url)


def transcription_ready(
    conversation_id: str, replica_id: str, webhook_url: str, transcript: list[dict[str, Any]], at: str
) -> Event:
    properties = {"replica_id": replica_id, "transcript": transcript}
    return Event(conversation_id, TRANSCRIPTION_READY, at, properties, webhook_url)
