"""Joins and leaves drive the timers; the room's turns become the end-of-call transcript."""

from __future__ import annotations

import time

import pytest
from room_client import RoomParticipant
from room_client import create_room as create


def wait_status(client, cid: str, status: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def shutdown_reason(body: dict) -> str:
    [shutdown] = [e for e in body["events"] if e["event_type"] == "system.shutdown"]
    return shutdown["properties"]["shutdown_reason"]


def test_left_timeout_runs_from_the_last_leave(client):
    conv = create(client, properties={"participant_left_timeout": 1, "participant_absent_timeout": 60})
    cid = conv["conversation_id"]
    with RoomParticipant(conv["conversation_url"]) as a:
        a.wait_for("system.replica_joined")
        with RoomParticipant(conv["conversation_url"]) as b:
            b.wait_for("system.replica_joined")
        time.sleep(1.8)  # one is still in: no left timeout
        assert client.get(f"/v2/conversations/{cid}").json()["status"] == "active"
        left_at = time.monotonic()
    body = wait_status(client, cid, "ended", timeout=5)
    assert time.monotonic() - left_at >= 0.9
    assert shutdown_reason(body) == "participant_left_timeout reached"


def test_absent_timeout_stops_at_the_first_join(client):
    joined = create(client, properties={"participant_absent_timeout": 2, "participant_left_timeout": 60})
    absent = create(client, properties={"participant_absent_timeout": 2})
    with RoomParticipant(joined["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        body = wait_status(client, absent["conversation_id"], "ended", timeout=6)
        assert shutdown_reason(body) == "participant_absent_timeout reached"
        time.sleep(0.5)
        assert client.get(f"/v2/conversations/{joined['conversation_id']}").json()["status"] == "active"


@pytest.fixture(scope="module")
def hook_server(server_factory):
    return server_factory(name="room-hooks", extra_args=("--allow-private-callbacks",))


def test_transcript_reaches_the_webhook_and_verbose_get(hook_server, receiver):
    account = hook_server.create_key(name="room-transcript")
    with hook_server.client(account.key) as client:
        conv = create(client, custom_greeting="Hi, I am your replica.", callback_url=receiver.url("/hooks"))
        cid = conv["conversation_id"]
        with RoomParticipant(conv["conversation_url"]) as p:
            p.wait_for("conversation.utterance", role="replica")
            p.send("conversation.respond", {"text": "What's up?"})
            p.wait_for("conversation.utterance", role="user")
            p.send("conversation.echo", {"text": "Not much, thanks."})
            p.wait_for("conversation.utterance", role="replica")
            time.sleep(0.3)  # let the last turn be stored
            assert client.post(f"/v2/conversations/{cid}/end").status_code == 200
        hooks = receiver.wait_for("/hooks", 3, timeout=10)
        [ready] = [h.json for h in hooks if h.json["event_type"] == "application.transcription_ready"]
        transcript = ready["properties"]["transcript"]
        assert [(t["role"], t["content"]) for t in transcript[1:]] == [
            ("assistant", "Hi, I am your replica."),
            ("user", "What's up?"),
            ("assistant", "Not much, thanks."),
        ]
        assert transcript[0]["role"] == "system"
        for turn in transcript[1:]:
            assert isinstance(turn["timestamp"], float)
            assert turn["seconds_from_start"] >= 0 and turn["duration"] >= 0
            assert ("inference_id" in turn) == (turn["role"] == "assistant")
        body = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()
        [event] = [e for e in body["events"] if e["event_type"] == "application.transcription_ready"]
        assert event["properties"]["transcript"] == transcript
