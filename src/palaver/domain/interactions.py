"""The Interactions Protocol (reference section 5) as Palaver's rooms speak it over a WebSocket.

Tavus carries these JSON messages over Daily's data channel; a Palaver room
carries the very same objects over `<conversation_url>/ws`, so app code only
swaps the transport. This module is pure: it checks what a participant sends
and builds what the room sends, nothing more.

Besides the protocol's own messages the socket carries a few of the room's
(`message_type: "room"`): the welcome on joining, participants joining and
leaving, an app message relayed from another participant, errors, and the
final message when the room closes. Clients written for Tavus ignore them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_BYTES = 64 * 1024

RESPOND = "conversation.respond"
ECHO = "conversation.echo"
INTERRUPT = "conversation.interrupt"
OVERWRITE_CONTEXT = "conversation.overwrite_llm_context"
APPEND_CONTEXT = "conversation.append_llm_context"
SENSITIVITY = "conversation.sensitivity"
TOOL_RESULT = "conversation.tool_result"
INBOUND = (RESPOND, ECHO, INTERRUPT, OVERWRITE_CONTEXT, APPEND_CONTEXT, SENSITIVITY, TOOL_RESULT)

UTTERANCE = "conversation.utterance"
UTTERANCE_STREAMING = "conversation.utterance.streaming"
REPLICA_STARTED = "conversation.replica.started_speaking"
REPLICA_STOPPED = "conversation.replica.stopped_speaking"
USER_STARTED = "conversation.user.started_speaking"
USER_STOPPED = "conversation.user.stopped_speaking"
TOOL_CALL = "conversation.tool_call"
REPLICA_JOINED = "system.replica_joined"

# The room's own messages (not Tavus's).
ROOM_WELCOME = "room.joined"
ROOM_PARTICIPANT_JOINED = "room.participant_joined"
ROOM_PARTICIPANT_LEFT = "room.participant_left"
ROOM_APP_MESSAGE = "room.app_message"
ROOM_ERROR = "room.error"
ROOM_ENDED = "room.ended"

SENSITIVITIES = ("superlow", "verylow", "low", "medium", "high", "auto")
SENSITIVITY_KEYS = ("participant_pause_sensitivity", "participant_interrupt_sensitivity")
MAX_TEXT = 16_000  # characters of one utterance or context piece


class ProtocolError(ValueError):
    """A message the room cannot act on; its text goes back to the sender."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A checked message from a participant: a protocol event, or app data for the others."""

    event_type: str
    properties: dict[str, Any]
    raw: dict[str, Any]

    @property
    def is_app_message(self) -> bool:
        return self.event_type == ROOM_APP_MESSAGE


def oversized(frame: str | bytes) -> bool:
    """Whether a frame is over MAX_MESSAGE_BYTES (in UTF-8 bytes, as it travelled): such a frame is not
    answered but closes its socket (api/room_socket.py)."""
    if len(frame) <= MAX_MESSAGE_BYTES // 4:  # no text this short can be over, whatever its characters
        return False
    return len(frame if isinstance(frame, bytes) else frame.encode()) > MAX_MESSAGE_BYTES


def parse(text: str | bytes, conversation_id: str) -> Inbound:
    """Check one frame from a participant (not oversized); raises ProtocolError with a message meant for them."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("message is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("message must be a JSON object")
    message_type, event_type = message.get("message_type"), message.get("event_type")
    properties = message.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise ProtocolError("properties must be an object")
    if message_type == "room" and event_type == ROOM_APP_MESSAGE:
        return Inbound(ROOM_APP_MESSAGE, properties, message)
    if message_type != "conversation":
        raise ProtocolError(
            'message_type must be "conversation" (Interactions Protocol) or "room" (event_type "room.app_message")'
        )
    if event_type not in INBOUND:
        raise ProtocolError(f"unknown event_type {str(event_type)[:80]!r}; known: {', '.join(INBOUND)}")
    target = message.get("conversation_id")
    if target is not None and target != conversation_id:
        raise ProtocolError(f"conversation_id {str(target)[:40]!r} is not this room's ({conversation_id})")
    _check(event_type, properties)
    return Inbound(event_type, properties, message)


def _text(properties: dict[str, Any], key: str, *, required: bool = True) -> None:
    value = properties.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise ProtocolError(f"properties.{key} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise ProtocolError(f"properties.{key} is too long: at most {MAX_TEXT} characters")


def _check(event_type: str, p: dict[str, Any]) -> None:
    if event_type == RESPOND:
        _text(p, "text")
    elif event_type == ECHO:
        modality = p.get("modality", "text")
        if modality == "audio":
            raise ProtocolError("audio echo is not supported: Palaver rooms carry text only")
        if modality != "text":
            raise ProtocolError('properties.modality must be "text" or "audio"')
        _text(p, "text")
        if "done" in p and not isinstance(p["done"], bool):
            raise ProtocolError("properties.done must be a boolean")
        if p.get("inference_id") is not None and not isinstance(p["inference_id"], str):
            raise ProtocolError("properties.inference_id must be a string")
    elif event_type in (OVERWRITE_CONTEXT, APPEND_CONTEXT):
        _text(p, "context")
    elif event_type == SENSITIVITY:
        given = [k for k in SENSITIVITY_KEYS if k in p]
        if len(given) != 1:
            raise ProtocolError(f"give exactly one of {' or '.join(SENSITIVITY_KEYS)}")
        if p[given[0]] not in SENSITIVITIES:
            raise ProtocolError(f"properties.{given[0]} must be one of {', '.join(SENSITIVITIES)}")
    elif event_type == TOOL_RESULT:
        _text(p, "tool_call_id")
        if "output" not in p or not isinstance(p["output"], str | dict | list):
            raise ProtocolError("properties.output must be a string or an object")
        if p.get("status", "success") not in ("success", "error"):
            raise ProtocolError('properties.status must be "success" or "error"')


def outbound(
    conversation_id: str,
    event_type: str,
    properties: dict[str, Any] | None,
    *,
    seq: int,
    timestamp: float,
    turn_idx: int | None = None,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """A message from the replica, with the fields reference 5 gives outbound messages."""
    message: dict[str, Any] = {
        "message_type": event_type.split(".", 1)[0],
        "event_type": event_type,
        "conversation_id": conversation_id,
        "seq": seq,
        "timestamp": timestamp,
    }
    if turn_idx is not None:
        message["turn_idx"] = turn_idx
    if inference_id is not None:
        message["inference_id"] = inference_id
    if properties is not None:
        message["properties"] = properties
    return message


def room_message(conversation_id: str, event_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    """One of the room's own messages (joins, leaves, relayed app data, errors, the end)."""
    return {
        "message_type": "room",
        "event_type": event_type,
        "conversation_id": conversation_id,
        "properties": properties,
    }
