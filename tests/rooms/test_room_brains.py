"""The replica brain in a live room: an OpenAI-compatible LLM that streams, is interrupted, calls tools,
fails and hangs; and the offline brain answering from stored documents."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from document_origin import serve_origin
from llm_server import Reply, ScriptedToolCall, serve_llm
from room_client import RoomParticipant

REPLICA = "r90bbd427f71"


@pytest.fixture(scope="module")
def llm() -> Iterator:
    with serve_llm() as served:
        yield served


@pytest.fixture(scope="module")
def brain_server(server_factory):
    # Loopback LLM endpoints and document origins are allowed; an LLM that hangs fails after 1 s.
    return server_factory(name="room-brains", extra_args=("--allow-private-callbacks", "--llm-timeout", "1"))


@pytest.fixture
def api(brain_server):
    with brain_server.client(brain_server.new_account_key()) as c:
        yield c


def llm_persona(api, llm, **extra) -> str:
    body = {
        "persona_name": "Tester",
        "system_prompt": "You are a careful tester.",
        "pipeline_mode": "full",
        "default_replica_id": REPLICA,
        "layers": {"llm": {"model": "test-model", "base_url": llm.url, "api_key": "sk-test", **extra}},
    }
    r = api.post("/v2/personas", json=body)
    assert r.status_code == 200, r.text
    return r.json()["persona_id"]


def room(api, persona_id: str, **body) -> dict:
    r = api.post("/v2/conversations", json={"persona_id": persona_id, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_answer_streams_token_by_token(api, llm):
    conv = room(api, llm_persona(api, llm), conversational_context="The user is called Ada.")
    llm.script(Reply(tokens=["Hello", " Ada", ", nice", " to meet", " you."], delay=0.02))
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.respond", {"text": "Hi, who am I?"})
        p.wait_for("conversation.replica.started_speaking")
        final = p.wait_for("conversation.utterance", role="replica")
        assert final["properties"]["speech"] == "Hello Ada, nice to meet you."
        stopped = p.wait_for("conversation.replica.stopped_speaking")
        assert stopped["properties"]["interrupted"] is False
        streamed = [m["properties"]["speech"] for m in p.of_type("conversation.utterance.streaming")]
        assert streamed[:5] == [
            "Hello",
            "Hello Ada",
            "Hello Ada, nice",
            "Hello Ada, nice to meet",
            "Hello Ada, nice to meet you.",
        ]
        assert final["turn_idx"] == 1 and final["inference_id"] == stopped["inference_id"]
    asked = llm.requests[-1].messages
    assert asked[0]["role"] == "system"
    assert "You are a careful tester." in asked[0]["content"] and "The user is called Ada." in asked[0]["content"]
    assert asked[-1] == {"role": "user", "content": "Hi, who am I?"}
    assert llm.requests[-1].headers["authorization"] == "Bearer sk-test"


def test_context_messages_change_the_next_prompt(api, llm):
    conv = room(api, llm_persona(api, llm), conversational_context="Old context.")
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.overwrite_llm_context", {"context": "New context."})
        p.send("conversation.append_llm_context", {"context": "Appended fact."})
        p.send("conversation.respond", {"text": "Go"})
        p.wait_for("conversation.utterance", role="replica")
    system = llm.requests[-1].messages[0]["content"]
    assert "Old context." not in system
    assert system.index("New context.") < system.index("Appended fact.")


def test_interrupt_stops_the_stream_at_once(api, llm):
    conv = room(api, llm_persona(api, llm))
    llm.script(Reply(tokens=[f"word{i} " for i in range(200)], delay=0.05))
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.respond", {"text": "Talk for a long time"})
        p.wait_for("conversation.utterance.streaming")
        p.wait_for("conversation.utterance.streaming")
        t0 = time.monotonic()
        p.send("conversation.interrupt")
        said = p.wait_for("conversation.utterance", role="replica")
        assert said["properties"]["interrupted"] is True
        assert said["properties"]["speech"].startswith("word0 word1")
        stopped = p.wait_for("conversation.replica.stopped_speaking")
        assert stopped["properties"]["interrupted"] is True
        assert time.monotonic() - t0 < 1.0
        assert llm.requests[-1].wait_disconnect(2.0)
        time.sleep(0.3)
        count = len(p.of_type("conversation.utterance.streaming"))
        time.sleep(0.3)
        assert len(p.of_type("conversation.utterance.streaming")) == count  # nothing after the interrupt


def test_a_tool_call_and_its_result(api, llm):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    conv = room(api, llm_persona(api, llm, tools=[tool]))
    llm.script(
        Reply(
            tokens=["Let me check."], tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"}, call_id="call_abc")]
        )
    )
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.respond", {"text": "Weather in Oslo?"})
        call = p.wait_for("conversation.tool_call")
        assert call["properties"] == {
            "name": "get_weather",
            "arguments": '{"city": "Oslo"}',
            "tool_call_id": "call_abc",
        }
        assert call["message_type"] == "conversation" and call["turn_idx"] == 1
        p.send("conversation.tool_result", {"tool_call_id": "call_abc", "output": {"temp_c": 4}, "status": "success"})
        final = p.wait_for("conversation.utterance", role="replica")
        assert final["properties"]["speech"] == 'Let me check.The tool answered: {"temp_c": 4}'
    assert llm.requests[-2].tools[0]["function"]["name"] == "get_weather"  # the request that called it
    followup = llm.requests[-1].messages
    assert followup[-2]["tool_calls"][0]["id"] == "call_abc"
    assert followup[-1] == {"role": "tool", "content": '{"temp_c": 4}', "tool_call_id": "call_abc"}


@pytest.mark.parametrize("reply", [Reply(status=500, error="model exploded"), Reply(hang=True)], ids=["error", "hang"])
def test_llm_failures_reach_the_room_as_a_message(api, llm, reply):
    conv = room(api, llm_persona(api, llm))
    llm.script(reply)
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        t0 = time.monotonic()
        p.send("conversation.respond", {"text": "Hello?"})
        error = p.wait_for("room.error", timeout=5)
        assert "language model" in error["properties"]["message"]
        assert time.monotonic() - t0 < 4
        llm.script(Reply(tokens=["Back."]))
        p.send("conversation.respond", {"text": "Again?"})  # the room still works
        assert p.wait_for("conversation.utterance", role="replica")["properties"]["speech"] == "Back."


def test_a_private_endpoint_is_refused_without_the_operator_flag(client, llm):
    persona = client.post(
        "/v2/personas",
        json={
            "persona_name": "Local",
            "system_prompt": "Hi.",
            "default_replica_id": REPLICA,
            "layers": {"llm": {"model": "m", "base_url": llm.url}},
        },
    ).json()["persona_id"]
    conv = client.post("/v2/conversations", json={"persona_id": persona}).json()
    before = len(llm.requests)
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.respond", {"text": "Hello?"})
        message = p.wait_for("room.error")["properties"]["message"]
        assert "private" in message or "not allowed" in message
    assert len(llm.requests) == before


def test_the_offline_brain_answers_from_stored_documents(api):
    with serve_origin() as origin:
        doc = api.post(
            "/v2/documents", json={"document_url": origin.url + "/notes.txt", "document_name": "Secrets"}
        ).json()
        deadline = time.monotonic() + 30
        while api.get(f"/v2/documents/{doc['document_id']}").json()["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    persona = api.post(
        "/v2/personas",
        json={
            "persona_name": "Librarian",
            "system_prompt": "Answer from the docs.",
            "default_replica_id": REPLICA,
            "document_ids": [doc["document_id"]],
        },
    ).json()["persona_id"]
    conv = room(api, persona)
    with RoomParticipant(conv["conversation_url"]) as p:
        p.wait_for("system.replica_joined")
        p.send("conversation.respond", {"text": "What is the secret password?"})
        answer = p.wait_for("conversation.utterance", role="replica")["properties"]["speech"]
        assert "swordfish" in answer and "Secrets" in answer
        p.send("conversation.respond", {"text": "How tall is Mount Everest?"})
        answer = p.wait_for("conversation.utterance", role="replica")["properties"]["speech"]
        assert "no language model" in answer.lower()
