"""One room across processes on PostgreSQL: participants on A and B share it; ending through C closes both.

Three independent `palaver serve` processes on one database (as on three hosts).
The replica is hosted by one of them; the others relay through LISTEN/NOTIFY.
When the host's participant leaves, the other process takes the replica over
and the conversation goes on with its transcript.
"""

from __future__ import annotations

import time

import pytest
from backends import PostgresBackend
from room_client import RoomParticipant, create_room
from servers import PalaverServer, create_key, wait_until


@pytest.fixture
def three(pg_cluster, tmp_path):
    database = PostgresBackend(pg_cluster, prefix="rooms3")
    nodes = []
    try:
        for name in ("a", "b", "c"):
            nodes.append(PalaverServer(tmp_path / name, database=database, name=name).start())
        key = create_key(database.url, name="rooms", max_concurrent=1000)
        yield nodes, key
    finally:
        for node in nodes:
            node.stop()
        database.drop()


def url_on(node: PalaverServer, conversation_url: str) -> str:
    return node.base_url + "/rooms/" + conversation_url.rsplit("/", 1)[1]


def test_participants_on_two_processes_share_the_room_and_an_end_elsewhere_closes_both(three):
    (a, b, c), key = three
    with a.client(key.key) as api:
        conv = create_room(api, custom_greeting="Hello both.")
    cid = conv["conversation_id"]
    with RoomParticipant(url_on(a, conv["conversation_url"]), name="on-a") as pa:
        pa.wait_for("system.replica_joined")
        assert pa.wait_for("conversation.utterance")["properties"]["speech"] == "Hello both."
        with RoomParticipant(url_on(b, conv["conversation_url"]), name="on-b") as pb:
            pb.wait_for("system.replica_joined")
            assert pa.wait_for("room.participant_joined")["properties"]["participant"]["user_name"] == "on-b"
            assert pb.seen("room.participant_joined")[0]["properties"]["participant"]["user_name"] == "on-a"
            # B speaks through process B; the replica (hosted on A) answers both.
            pb.send("conversation.echo", {"text": "said on B"})
            said = [p.wait_for("conversation.utterance") for p in (pa, pb)]
            assert [m["properties"]["speech"] for m in said] == ["said on B", "said on B"]
            # The same message, the same seq, on both processes (compared on the utterance itself: what
            # follows it, replica.stopped_speaking, may have reached one socket and not yet the other).
            assert said[0]["seq"] == said[1]["seq"]
            pa.ws.send('{"message_type":"room","event_type":"room.app_message","properties":{"data":"hi B"}}')
            assert pb.wait_for("room.app_message")["properties"]["data"]["properties"]["data"] == "hi B"
            # The end goes through C, which has no socket of this room.
            t0 = time.monotonic()
            with c.client(key.key) as api:
                assert api.post(f"/v2/conversations/{cid}/end").status_code == 200
            for p in (pa, pb):
                p.wait_for("room.ended", timeout=3)
                assert p.wait_closed(3) == 4410
                assert p.closed_at - t0 < 1.0


def test_the_replica_moves_to_the_process_that_still_has_participants(three):
    (a, b, _), key = three
    with a.client(key.key) as api:
        conv = create_room(api, properties={"participant_left_timeout": 60})
    with RoomParticipant(url_on(a, conv["conversation_url"]), name="host-side") as pa:
        pa.wait_for("system.replica_joined")  # the first to join: A hosts the replica
        pb = RoomParticipant(url_on(b, conv["conversation_url"]), name="stays")
        pb.wait_for("system.replica_joined")
        pa.send("conversation.echo", {"text": "first"})
        pb.wait_for("conversation.utterance")
    with pb:
        pb.wait_for("room.participant_left")
        pb.send("conversation.echo", {"text": "after the handover"})
        said = pb.wait_for("conversation.utterance", timeout=10)
        assert said["properties"]["speech"] == "after the handover"
        seqs = [m["seq"] for m in pb.messages if "seq" in m]
        assert seqs[-1] > max(seqs[:-1])  # the new host goes on from the seq it saw


def test_a_killed_host_is_replaced_once_its_lease_lapses(three):
    """kill -9 of the process hosting the replica: the other process's participant is answered again
    within the lease (5 s) and a tick, by a replica that kept the transcript."""
    (a, b, c), key = three
    with a.client(key.key) as api:
        conv = create_room(api, properties={"participant_left_timeout": 60})
    pa = RoomParticipant(url_on(a, conv["conversation_url"]), name="on-a")
    pa.wait_for("system.replica_joined")  # A hosts the replica
    with RoomParticipant(url_on(b, conv["conversation_url"]), name="on-b") as pb:
        pb.wait_for("system.replica_joined")
        pb.send("conversation.echo", {"text": "before the crash"})
        pb.wait_for("conversation.utterance")
        # The host announces a turn and then stores it: a kill in between would lose a turn the
        # transcript never had. What this test is about is the turns stored before the crash.
        assert wait_until(lambda: (c.stored_conversation(conv["conversation_id"]) or {}).get("turns", 0) >= 1, 5)
        a.kill()
        killed_at = time.monotonic()
        deadline = killed_at + 15
        answered = None
        while answered is None and time.monotonic() < deadline:
            pb.send("conversation.echo", {"text": "anyone there?"})
            try:
                answered = pb.wait_for("conversation.utterance", timeout=1.0)
            except AssertionError:
                continue
        assert answered is not None, "no process took the replica over"
        assert time.monotonic() - killed_at < 10
        assert answered["properties"]["speech"] == "anyone there?"
    # The transcript survived the crash: the new host stored its turns after the old host's.
    with c.client(key.key) as api:
        cid = conv["conversation_id"]
        assert api.post(f"/v2/conversations/{cid}/end").status_code == 200
        events = api.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()["events"]
    [ready] = [e for e in events if e["event_type"] == "application.transcription_ready"]
    said = [t["content"] for t in ready["properties"]["transcript"] if t["role"] == "assistant"]
    assert said[0] == "before the crash" and said[-1] == "anyone there?"
