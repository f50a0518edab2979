"""The room's WebSocket, as a scripted participant meets it, on both backends.

Every inbound message type, the outbound fields (seq, turn_idx, inference_id,
timestamp), joining and leaving, bad input, and the room closing when the
conversation ends by any path.
"""

from __future__ import annotations

import json
import time

import pytest
from room_client import ECHO_PERSONA, REPLICA, RoomParticipant
from room_client import create_room as create
from websockets.exceptions import InvalidStatus


def replica_messages(p: RoomParticipant) -> list[dict]:
    return [m for m in p.messages if m.get("message_type") in ("conversation", "system")]


def test_join_welcome_replica_joined_and_greeting(client):
    conv = create(client, persona_id=ECHO_PERSONA, custom_greeting="Hello there, welcome!")
    with RoomParticipant(conv["conversation_url"], name="Ada") as p:
        welcome = p.wait_for("room.joined")
        assert welcome["message_type"] == "room"
        assert welcome["properties"]["participant"]["user_name"] == "Ada"
        assert welcome["properties"]["replica_id"] == REPLICA
        joined = p.wait_for("system.replica_joined")
        assert joined["properties"] == {"replica_id": REPLICA}
        started = p.wait_for("conversation.replica.started_speaking")
        said = p.wait_for("conversation.utterance")
        assert said["properties"] == {"role": "replica", "speech": "Hello there, welcome!"}
        stopped = p.wait_for("conversation.replica.stopped_speaking")
        assert stopped["properties"]["interrupted"] is False
        assert started["inference_id"] == said["inference_id"] == stopped["inference_id"]
        for m in replica_messages(p):
            assert m["conversation_id"] == conv["conversation_id"]
            assert isinstance(m["seq"], int) and isinstance(m["timestamp"], float)
        seqs = [m["seq"] for m in replica_messages(p)]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_echo_speaks_exactly_and_joins_pieces(client):
    conv = create(client, persona_id=ECHO_PERSONA)
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.echo", {"text": 'Exactly <emotion value="excited"/> this.'})
        said = p.wait_for("conversation.utterance")
        assert said["properties"]["speech"] == 'Exactly <emotion value="excited"/> this.'
        p.send("conversation.echo", {"text": "One, ", "done": False, "inference_id": "inf-1"})
        first = p.wait_for("conversation.utterance.streaming")
        assert first["properties"]["final"] is False and first["inference_id"] == "inf-1"
        p.send("conversation.echo", {"text": "two.", "done": True, "inference_id": "inf-1"})
        said = p.wait_for("conversation.utterance")
        assert said["properties"]["speech"] == "One, two." and said["inference_id"] == "inf-1"


def test_respond_turns_and_user_events(client):
    conv = create(client, persona_id=ECHO_PERSONA)
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        for idx, text in enumerate(("First question", "Second question"), start=1):
            p.send("conversation.respond", {"text": text})
            started = p.wait_for("conversation.user.started_speaking")
            p.wait_for("conversation.user.stopped_speaking")
            said = p.wait_for("conversation.utterance", role="user")
            assert said["properties"]["speech"] == text
            assert said["turn_idx"] == started["turn_idx"] == idx
            assert said["inference_id"] == started["inference_id"]


def test_context_sensitivity_and_tool_result_are_accepted(client):
    conv = create(client, persona_id=ECHO_PERSONA)
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.overwrite_llm_context", {"context": "The user is called Ada."})
        p.send("conversation.append_llm_context", {"context": "She likes tea."})
        p.send("conversation.sensitivity", {"participant_pause_sensitivity": "high"})
        p.send("conversation.interrupt")
        p.send("conversation.tool_result", {"tool_call_id": "call_nope", "output": "42"})
        error = p.wait_for("room.error")
        assert "call_nope" in error["properties"]["message"]
        assert len(p.of_type("room.error")) == 1  # the others were fine


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"message_type": "conversation", "event_type": "conversation.dance"}), "unknown event_type"),
        (json.dumps({"message_type": "conversation", "event_type": "conversation.respond", "properties": {}}), "text"),
        (
            json.dumps(
                {
                    "message_type": "conversation",
                    "event_type": "conversation.respond",
                    "conversation_id": "c000000000000000",
                    "properties": {"text": "hi"},
                }
            ),
            "not this room",
        ),
        (
            json.dumps(
                {
                    "message_type": "conversation",
                    "event_type": "conversation.sensitivity",
                    "properties": {"participant_pause_sensitivity": "loud"},
                }
            ),
            "must be one of",
        ),
        (json.dumps({"message_type": "elsewhere"}), "message_type"),
    ],
)
def test_bad_messages_get_an_error_and_the_socket_stays(client, frame, needle):
    conv = create(client, persona_id=ECHO_PERSONA)
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send_raw(frame)
        assert needle in p.wait_for("room.error")["properties"]["message"]
        p.send("conversation.echo", {"text": "still here"})
        assert p.wait_for("conversation.utterance")["properties"]["speech"] == "still here"


def test_oversized_message_closes_only_that_socket(client):
    conv = create(client, persona_id=ECHO_PERSONA)
    with (
        RoomParticipant(conv["conversation_url"], name="big") as big,
        RoomParticipant(conv["conversation_url"], name="other") as other,
    ):
        big.wait_for("system.replica_joined")
        other.wait_for("system.replica_joined")
        big.send_raw("x" * (64 * 1024 + 1))
        assert big.wait_closed() == 1009
        other.send("conversation.echo", {"text": "room still works"})
        assert other.wait_for("conversation.utterance")["properties"]["speech"] == "room still works"
        # (inside: once the last one leaves, participant_left_timeout's default of 0 ends the call)
        assert client.get(f"/v2/conversations/{conv['conversation_id']}").json()["status"] == "active"


def test_two_participants_see_each_other(client):
    conv = create(client, persona_id=ECHO_PERSONA)
    with RoomParticipant(conv["conversation_url"], name="A") as a:
        a.wait_for("system.replica_joined")
        with RoomParticipant(conv["conversation_url"], name="B") as b:
            b_welcome = b.wait_for("room.joined")
            b_id = b_welcome["properties"]["participant"]["participant_id"]
            joined = a.wait_for("room.participant_joined")
            assert joined["properties"]["participant"]["user_name"] == "B"
            # B learns of A from the welcome (same process) or a participant_joined (another process)
            known = [x["user_name"] for x in b_welcome["properties"]["participants"]]
            if "A" not in known:
                assert b.wait_for("room.participant_joined")["properties"]["participant"]["user_name"] == "A"
            a.ws.send(
                json.dumps(
                    {"message_type": "room", "event_type": "room.app_message", "properties": {"data": {"hello": "B"}}}
                )
            )
            relayed = b.wait_for("room.app_message")
            assert relayed["properties"]["data"]["properties"]["data"] == {"hello": "B"}
            b.send("conversation.echo", {"text": "for everyone"})
            assert a.wait_for("conversation.utterance")["properties"]["speech"] == "for everyone"
            assert b.wait_for("conversation.utterance")["properties"]["speech"] == "for everyone"
        left = a.wait_for("room.participant_left")
        assert left["properties"]["participant"]["participant_id"] == b_id


@pytest.mark.parametrize("how", ["end", "delete"])
def test_ending_closes_every_socket_within_a_second(client, how):
    conv = create(client, persona_id=ECHO_PERSONA)
    cid = conv["conversation_id"]
    with RoomParticipant(conv["conversation_url"]) as a, RoomParticipant(conv["conversation_url"]) as b:
        a.wait_for("system.replica_joined")
        b.wait_for("system.replica_joined")
        t0 = time.monotonic()
        r = client.post(f"/v2/conversations/{cid}/end") if how == "end" else client.delete(f"/v2/conversations/{cid}")
        assert r.status_code in (200, 204)
        for p in (a, b):
            ended = p.wait_for("room.ended", timeout=2)
            assert p.wait_closed(2) == 4410
            assert p.closed_at - t0 < 1.0
        assert ended["properties"]["message"] == "This conversation has ended."
    late_code = 4410 if how == "end" else 4404  # a deleted conversation is not found at all
    with RoomParticipant(conv["conversation_url"]) as late:
        assert late.wait_for("room.error")["properties"]["code"] == late_code
        assert late.wait_closed() == late_code


def test_unknown_room_is_refused(server):
    for cid in ("c0000000000000aa", "not-an-id"):
        with RoomParticipant(f"{server.base_url}/rooms/{cid}") as p:
            assert p.wait_for("room.error")["properties"]["code"] == 4404
            assert p.wait_closed() == 4404


def test_require_auth_needs_the_meeting_token(client):
    conv = create(client, persona_id=ECHO_PERSONA, require_auth=True)
    other = create(client, persona_id=ECHO_PERSONA, require_auth=True)
    url = conv["conversation_url"]
    for token in (None, "eyJhbGciOiJIUzI1NiJ9.e30.x", other["meeting_token"]):
        with RoomParticipant(url, token=token) as p:
            error = p.wait_for("room.error")
            assert error["properties"]["message"] == "You are not allowed to join this meeting."
            assert p.wait_closed() == 4401
    with RoomParticipant(url, token=conv["meeting_token"]) as p:
        p.wait_for("system.replica_joined")


def test_max_participants_counts_the_replica(client):
    # The left timeout keeps the conversation going once `first` leaves (the default, 0, would end
    # it at the next timer tick, racing `third`'s join).
    conv = create(client, persona_id=ECHO_PERSONA, max_participants=2, properties={"participant_left_timeout": 60})
    url = conv["conversation_url"]
    with RoomParticipant(url, name="first") as first:
        first.wait_for("system.replica_joined")
        with RoomParticipant(url, name="second") as second:
            assert second.wait_for("room.error")["properties"]["message"] == "This meeting is full."
            assert second.wait_closed() == 4409
    deadline = time.monotonic() + 5
    while True:  # the first one's leave is recorded as its socket closes
        with RoomParticipant(url, name="third") as third:
            try:
                third.wait_for("system.replica_joined", timeout=2)
                break
            except AssertionError:
                assert time.monotonic() < deadline, third.messages


def test_http_upgrade_path_only(server):
    with pytest.raises(InvalidStatus):
        RoomParticipant(f"{server.base_url}/rooms/c0000000000000aa/nope")


def test_an_addressed_app_message_reaches_only_its_addressee(client):
    conv = create(client, persona_id=ECHO_PERSONA)
    url = conv["conversation_url"]
    with RoomParticipant(url, name="A") as a, RoomParticipant(url, name="B") as b, RoomParticipant(url, name="C") as c:
        for p in (a, b, c):
            p.wait_for("system.replica_joined")
        b_id = b.of_type("room.joined")[0]["properties"]["participant"]["participant_id"]
        a.ws.send(
            json.dumps(
                {
                    "message_type": "room",
                    "event_type": "room.app_message",
                    "properties": {"data": "for B only", "to": [b_id]},
                }
            )
        )
        a.ws.send(
            json.dumps({"message_type": "room", "event_type": "room.app_message", "properties": {"data": "for all"}})
        )
        assert b.wait_for("room.app_message")["properties"]["data"]["properties"]["data"] == "for B only"
        assert c.wait_for("room.app_message")["properties"]["data"]["properties"]["data"] == "for all"
