"""The Interactions Protocol checks (palaver.domain.interactions): what a room accepts from a participant."""

from __future__ import annotations

import json

import pytest

from palaver.domain import interactions as ip

CID = "c0123456789abcd"


def frame(event_type: str, properties: dict | None = None, **extra: object) -> str:
    return json.dumps(
        {"message_type": "conversation", "event_type": event_type, "properties": properties or {}, **extra}
    )


@pytest.mark.parametrize(
    ("event_type", "properties"),
    [
        (ip.RESPOND, {"text": "hi"}),
        (ip.ECHO, {"text": "say this", "done": False, "inference_id": "i-1"}),
        (ip.INTERRUPT, {}),
        (ip.OVERWRITE_CONTEXT, {"context": "c"}),
        (ip.APPEND_CONTEXT, {"context": "c"}),
        (ip.SENSITIVITY, {"participant_interrupt_sensitivity": "low"}),
        (ip.TOOL_RESULT, {"tool_call_id": "call_1", "output": {"ok": True}, "status": "error"}),
    ],
)
def test_every_inbound_type_is_accepted(event_type: str, properties: dict) -> None:
    message = ip.parse(frame(event_type, properties, conversation_id=CID), CID)
    assert message.event_type == event_type and message.properties == properties


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({"message_type": "conversation", "event_type": ip.RESPOND, "properties": []}), "object"),
        (frame("conversation.dance"), "unknown event_type"),
        (frame(ip.RESPOND, {"text": "  "}), "properties.text"),
        (frame(ip.RESPOND, {"text": "x" * (ip.MAX_TEXT + 1)}), "too long"),
        (frame(ip.ECHO, {"text": "hi", "modality": "audio"}), "audio echo"),
        (frame(ip.ECHO, {"text": "hi", "done": "yes"}), "done"),
        (frame(ip.SENSITIVITY, {}), "exactly one"),
        (
            frame(ip.SENSITIVITY, {"participant_pause_sensitivity": "low", "participant_interrupt_sensitivity": "low"}),
            "exactly one",
        ),
        (frame(ip.TOOL_RESULT, {"tool_call_id": "c", "output": 3}), "output"),
        (frame(ip.TOOL_RESULT, {"tool_call_id": "c", "output": "", "status": "maybe"}), "status"),
        (frame(ip.RESPOND, {"text": "hi"}, conversation_id="c999"), "not this room"),
        (json.dumps({"message_type": "system", "event_type": ip.RESPOND}), "message_type"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(text: str, needle: str) -> None:
    with pytest.raises(ip.ProtocolError, match=needle):
        ip.parse(text, CID)


def test_app_data_for_the_other_participants_passes_as_it_is() -> None:
    raw = {"message_type": "room", "event_type": ip.ROOM_APP_MESSAGE, "properties": {"data": [1, 2], "to": ["p1"]}}
    message = ip.parse(json.dumps(raw), CID)
    assert message.is_app_message and message.raw == raw


def test_oversized_counts_bytes_not_characters() -> None:
    assert not ip.oversized("x" * ip.MAX_MESSAGE_BYTES)
    assert ip.oversized("x" * (ip.MAX_MESSAGE_BYTES + 1))
    assert ip.oversized("é" * (ip.MAX_MESSAGE_BYTES // 2 + 1))  # two bytes each in UTF-8
    assert ip.oversized(b"\x00" * (ip.MAX_MESSAGE_BYTES + 1))
    assert not ip.oversized("é" * (ip.MAX_MESSAGE_BYTES // 4))


def test_outbound_carries_the_reference_fields_only_where_they_apply() -> None:
    m = ip.outbound(
        CID, ip.UTTERANCE, {"role": "replica", "speech": "hi"}, seq=7, timestamp=1.5, turn_idx=2, inference_id="i"
    )
    assert m == {
        "message_type": "conversation",
        "event_type": ip.UTTERANCE,
        "conversation_id": CID,
        "seq": 7,
        "timestamp": 1.5,
        "turn_idx": 2,
        "inference_id": "i",
        "properties": {"role": "replica", "speech": "hi"},
    }
    joined = ip.outbound(CID, ip.REPLICA_JOINED, {"replica_id": "r"}, seq=1, timestamp=1.0)
    assert joined["message_type"] == "system" and "turn_idx" not in joined and "inference_id" not in joined
