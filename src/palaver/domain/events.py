"""Conversation events: what Tavus records in `verbose` reads and sends to `callback_url`.

An event is built once, stored as its full webhook envelope (reference 4.2), and
served unchanged by both the verbose GET and (later) webhook delivery, so the two
can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from palaver.domain.clock import iso_timestamp
from palaver.domain.ids import new_event_id

REPLICA_JOINED = "system.replica_joined"
SHUTDOWN = "system.shutdown"
TRANSCRIPTION_READY = "application.transcription_ready"


@dataclass(frozen=True, slots=True)
class Event:
    conversation_id: str
    event_type: str
    timestamp: str
    properties: dict[str, Any]
    webhook_url: str = ""
    event_id: str = field(default_factory=new_event_id)

    @property
    def message_type(self) -> str:
        return self.event_type.split(".", 1)[0]

    def envelope(self) -> dict[str, Any]:
        """The webhook body, field for field as Tavus documents it."""
        return {
            "properties": self.properties,
            "conversation_id": self.conversation_id,
            "webhook_url": self.webhook_url,
            "event_type": self.event_type,
            "message_type": self.message_type,
            "timestamp": self.timestamp,
        }


def replica_joined(conversation_id: str, replica_id: str, webhook_url: str, at: float) -> Event:
    return Event(conversation_id, REPLICA_JOINED, iso_timestamp(at), {"replica_id": replica_id}, webhook_url)


def shutdown(conversation_id: str, replica_id: str, webhook_url: str, reason: str, at: float) -> Event:
    # The docs and clients read `shutdown_reason`; the OpenAPI example says `reason`.
    properties = {"replica_id": replica_id, "shutdown_reason": reason, "reason": reason}
    return Event(conversation_id, SHUTDOWN, iso_timestamp(at), properties, webhook_url)


def transcription_ready(
    conversation_id: str, replica_id: str, webhook_url: str, transcript: list[dict[str, Any]], at: float
) -> Event:
    properties = {"replica_id": replica_id, "transcript": transcript}
    return Event(conversation_id, TRANSCRIPTION_READY, iso_timestamp(at), properties, webhook_url)
