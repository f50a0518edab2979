"""The resource requests pipecat and livekit's Tavus plugin send, replayed byte for byte.

The bodies and paths are those of pipecat-ai (`transports/tavus/transport.py`:
create a conversation with `replica_id` and `persona_id`, read the persona's
`persona_name`) and livekit-plugins-tavus (`api.py`: `create_pal`, the
deprecated `create_persona`, `create_conversation` with `pal_id`/`face_id`
and LiveKit properties); what each reads back is asserted as it reads it.
"""

from __future__ import annotations

import json


def test_pipecat_reads_its_echo_personas_name(client) -> None:
    for persona_id in ("pipecat-stream", "pipecat0"):
        r = client.get(f"/v2/personas/{persona_id}")
        r.raise_for_status()
        assert isinstance(r.json()["persona_name"], str) and r.json()["persona_name"]
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "persona_id": "pipecat-stream"})
    r.raise_for_status()
    cid = r.json()["conversation_id"]
    client.post(f"/v2/conversations/{cid}/end").raise_for_status()


def test_pipecat_with_an_accounts_own_persona(client) -> None:
    pid = client.post("/v2/personas", json={"persona_name": "Bot", "system_prompt": "x"}).json()["persona_id"]
    assert client.get(f"/v2/personas/{pid}").json()["persona_name"] == "Bot"
    r = client.post("/v2/conversations", json={"replica_id": "rfe12d8b9597", "persona_id": pid})
    r.raise_for_status()
    client.post(f"/v2/conversations/{r.json()['conversation_id']}/end").raise_for_status()


def test_livekit_create_pal_then_conversation(client) -> None:
    payload = {"pal_name": "lk_pal_3k2j4h5g6f7d", "default_face_id": "r4067604db72", "pipeline_mode": "echo",
               "layers": {"transport": {"transport_type": "livekit"}}}  # fmt: skip
    r = client.post("/v2/pals", content=json.dumps(payload), headers={"content-type": "application/json"})
    r.raise_for_status()
    pal_id = r.json()["pal_id"]
    conversation = {
        "pal_id": pal_id,
        "properties": {"livekit_ws_url": "wss://example.livekit.cloud", "livekit_room_token": "tok",
                       "livekit_room_name": "room"},
        "conversation_name": "lk_conversation_abc",
    }  # fmt: skip
    r = client.post("/v2/conversations", json=conversation)
    r.raise_for_status()
    got = client.get(f"/v2/conversations/{r.json()['conversation_id']}").json()
    assert got["persona_id"] == pal_id and got["replica_id"] == "r4067604db72"  # the PAL's default face
    client.post(f"/v2/conversations/{got['conversation_id']}/end").raise_for_status()


def test_livekit_default_pal_and_face(client) -> None:
    r = client.post("/v2/conversations", json={"pal_id": "pb87e71797da", "properties": {}, "face_id": "r4067604db72",
                                                "conversation_name": "lk_conversation_def"})  # fmt: skip
    r.raise_for_status()
    client.post(f"/v2/conversations/{r.json()['conversation_id']}/end").raise_for_status()


def test_livekit_deprecated_create_persona(client) -> None:
    payload = {"persona_name": "lk_persona_x", "pipeline_mode": "echo",
               "layers": {"transport": {"transport_type": "livekit"}}}  # fmt: skip
    r = client.post("/v2/personas", json=payload)
    r.raise_for_status()
    persona = client.get(f"/v2/personas/{r.json()['persona_id']}").json()
    assert persona["layers"] == {"transport": {"transport_type": "livekit"}} and persona["pipeline_mode"] == "echo"
