"""POST /v2/conversations: response shape, defaults, aliases, replica resolution, validation, limits."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

CONVERSATION_ID_RE = re.compile(r"^c[0-9a-f]{15}$")
CREATED_AT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
DEFAULT_NAME_RE = re.compile(r"^New Conversation (\d{13})$")

STOCK_PERSONA = "pcb7a34da5fe"
STOCK_PERSONA_REPLICA = "r90bbd427f71"
LIVEKIT_PAL = "pb87e71797da"
LIVEKIT_FACE = "r4067604db72"
STOCK_REPLICAS = ["r90bbd427f71", "rfe12d8b9597", "r79e1c033f", "r4067604db72"]
CONCURRENCY_ERROR = {"message": "User has reached maximum concurrent conversations"}

STRING_FIELDS = ["conversation_id", "conversation_name", "conversation_url", "status", "callback_url",
                 "replica_id", "persona_id", "created_at"]


def parse_ts(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00")


def is_json(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").split(";")[0].strip() == "application/json"


def total_count(client: httpx.Client) -> int:
    r = client.get("/v2/conversations", params={"limit": 1})
    assert r.status_code == 200, r.text
    return r.json()["total_count"]


def assert_create_shape(body: dict, base_url: str) -> None:
    for field in STRING_FIELDS:
        assert field in body, f"missing {field}: {body}"
        assert type(body[field]) is str, f"{field} should be a string: {body[field]!r}"
    assert CONVERSATION_ID_RE.match(body["conversation_id"]), body["conversation_id"]
    assert body["conversation_url"] == f"{base_url}/rooms/{body['conversation_id']}"
    assert CREATED_AT_RE.match(body["created_at"]), body["created_at"]
    assert "events" not in body


# ----------------------------------------------------------------- happy path


def test_create_minimal_response_shape(client, server):
    before = datetime.now(timezone.utc)
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
    after = datetime.now(timezone.utc)
    assert r.status_code == 200, r.text
    assert is_json(r)
    body = r.json()
    assert_create_shape(body, server.base_url)
    assert body["status"] == "active"
    assert body["callback_url"] == ""
    assert body["replica_id"] == "r90bbd427f71"
    assert "meeting_token" not in body
    created = parse_ts(body["created_at"])
    assert before - timedelta(seconds=5) <= created <= after + timedelta(seconds=5)


def test_conversation_ids_are_unique(client):
    ids = {client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "test_mode": True})
           .json()["conversation_id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(CONVERSATION_ID_RE.match(i) for i in ids)


def test_default_conversation_name_is_epoch_ms(client):
    before_ms = int(time.time() * 1000)
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
    after_ms = int(time.time() * 1000)
    assert r.status_code == 200, r.text
    m = DEFAULT_NAME_RE.match(r.json()["conversation_name"])
    assert m, r.json()["conversation_name"]
    assert before_ms - 5000 <= int(m.group(1)) <= after_ms + 5000


def test_full_request_with_every_field(client, server):
    body = {
        "replica_id": "rfe12d8b9597",
        "persona_id": STOCK_PERSONA,
        "audio_only": True,
        "callback_url": "https://example.com/webhook?x=1",
        "conversation_name": "Improve Sales Technique",
        "conversational_context": "You are talking to a sales rep.",
        "custom_greeting": "Hello there!",
        "memory_stores": ["anna_p123"],
        "document_ids": ["d1234567890"],
        "document_retrieval_strategy": "balanced",
        "document_tags": ["sales"],
        "test_mode": False,
        "require_auth": False,
        "max_participants": 2,
        "properties": {
            "max_call_duration": 600,
            "participant_left_timeout": 0,
            "participant_absent_timeout": 300,
            "enable_recording": True,
            "enable_closed_captions": True,
            "apply_greenscreen": False,
            "language": "english",
            "recording_s3_bucket_name": "bucket",
            "recording_s3_bucket_region": "us-east-1",
            "aws_assume_role_arn": "arn:aws:iam::123:role/x",
            "livekit_ws_url": "wss://example.livekit.cloud",
            "livekit_room_token": "tok",
        },
        "policy": "eu",
        "enable_dynamic_greeting": True,
        "some_future_field": {"nested": [1, 2, 3]},
    }
    r = client.post("/v2/conversations", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert_create_shape(out, server.base_url)
    assert out["conversation_name"] == "Improve Sales Technique"
    assert out["callback_url"] == "https://example.com/webhook?x=1"
    assert out["replica_id"] == "rfe12d8b9597"
    assert out["persona_id"] == STOCK_PERSONA
    assert out["status"] == "active"
    assert "meeting_token" not in out


@pytest.mark.parametrize("callback_url", ["http://localhost:8080/hook", "https://example.com/a/b?c=d"])
def test_callback_url_is_echoed(client, callback_url):
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "callback_url": callback_url})
    assert r.status_code == 200, r.text
    assert r.json()["callback_url"] == callback_url
    got = client.get(f"/v2/conversations/{r.json()['conversation_id']}")
    assert got.json()["callback_url"] == callback_url


def test_require_auth_returns_meeting_token(client):
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "require_auth": True})
    assert r.status_code == 200, r.text
    token = r.json().get("meeting_token")
    assert isinstance(token, str) and token, r.json()


def test_require_auth_false_has_no_meeting_token(client):
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "require_auth": False})
    assert r.status_code == 200, r.text
    assert "meeting_token" not in r.json()


def test_unicode_conversation_name_round_trips(client):
    name = "Réunion — 会議 🎥"
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "conversation_name": name})
    assert r.status_code == 200, r.text
    assert r.json()["conversation_name"] == name
    assert client.get(f"/v2/conversations/{r.json()['conversation_id']}").json()["conversation_name"] == name


# ------------------------------------------------- aliases and replica resolution


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"conversation_name": "a\u0000b"}, "conversation_name"),
        ({"conversational_context": "\u0000"}, "conversational_context"),
        ({"properties": {"language": "en\u0000"}}, "properties.language"),
        ({"extra": [1, {"k\u0000": 1}]}, "extra.1.k\u0000"),
    ],
)
def test_a_nul_character_anywhere_is_refused_and_nothing_is_stored(client, body, where):
    """PostgreSQL text cannot hold U+0000: the same 400 on every backend, before anything is stored."""
    before = total_count(client)
    r = client.post("/v2/conversations", json={"replica_id": STOCK_PERSONA_REPLICA, **body})
    assert r.status_code == 400, r.text
    assert r.json() == {"error": f"{where}: must not contain the NUL character (U+0000)"}
    assert total_count(client) == before


def test_livekit_request_with_pal_and_face_aliases(client):
    body = {"pal_id": LIVEKIT_PAL, "face_id": LIVEKIT_FACE, "properties": {},
            "conversation_name": "lk_conversation_x"}
    r = client.post("/v2/conversations", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["persona_id"] == LIVEKIT_PAL
    assert out["replica_id"] == LIVEKIT_FACE
    assert out["conversation_name"] == "lk_conversation_x"


def test_pal_id_alone_uses_its_default_replica(client):
    r = client.post("/v2/conversations", json={"pal_id": LIVEKIT_PAL})
    assert r.status_code == 200, r.text
    assert r.json()["persona_id"] == LIVEKIT_PAL
    assert r.json()["replica_id"] == LIVEKIT_FACE


def test_face_id_overrides_pal_default(client):
    r = client.post("/v2/conversations", json={"pal_id": LIVEKIT_PAL, "face_id": "r79e1c033f"})
    assert r.status_code == 200, r.text
    assert r.json()["replica_id"] == "r79e1c033f"


def test_persona_default_replica_is_used(client):
    r = client.post("/v2/conversations", json={"persona_id": STOCK_PERSONA})
    assert r.status_code == 200, r.text
    assert r.json()["persona_id"] == STOCK_PERSONA
    assert r.json()["replica_id"] == STOCK_PERSONA_REPLICA


def test_request_replica_overrides_persona_default(client):
    r = client.post("/v2/conversations", json={"persona_id": STOCK_PERSONA, "replica_id": "rfe12d8b9597"})
    assert r.status_code == 200, r.text
    assert r.json()["replica_id"] == "rfe12d8b9597"
    assert r.json()["persona_id"] == STOCK_PERSONA


@pytest.mark.parametrize("replica_id", STOCK_REPLICAS)
def test_stock_replica_without_persona(client, replica_id):
    r = client.post("/v2/conversations", json={"replica_id": replica_id, "test_mode": True})
    assert r.status_code == 200, r.text
    assert r.json()["replica_id"] == replica_id
    assert isinstance(r.json()["persona_id"], str) and r.json()["persona_id"]


@pytest.mark.parametrize("persona_id", ["pipecat-stream", "pipecat0"])
def test_pipecat_persona_with_replica(client, persona_id):
    r = client.post("/v2/conversations", json={"persona_id": persona_id, "replica_id": "r90bbd427f71"})
    assert r.status_code == 200, r.text
    assert r.json()["persona_id"] == persona_id
    assert r.json()["replica_id"] == "r90bbd427f71"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"persona_id": "p000000000000", "replica_id": "r90bbd427f71"}, "Invalid persona_id"),
        ({"persona_id": "p000000000000"}, "Invalid persona_id"),
        ({"pal_id": "pnot-a-persona", "face_id": "r90bbd427f71"}, "Invalid persona_id"),
        ({"replica_id": "r000000000000"}, "Invalid replica_id"),
        ({"persona_id": STOCK_PERSONA, "replica_id": "rnope"}, "Invalid replica_id"),
        ({"pal_id": LIVEKIT_PAL, "face_id": "r000000000000"}, "Invalid replica_id"),
    ],
    ids=["persona+replica", "persona-only", "pal-alias", "replica", "replica-with-persona", "face-alias"],
)
def test_unknown_persona_or_replica(client, body, message):
    before = total_count(client)
    r = client.post("/v2/conversations", json=body)
    assert r.status_code == 400, r.text
    assert is_json(r)
    assert r.json() == {"error": message}
    assert total_count(client) == before


@pytest.mark.parametrize(
    "body",
    [{}, {"persona_id": "pipecat-stream"}, {"persona_id": "pipecat0"}, {"conversation_name": "no replica"}],
    ids=["empty", "pipecat-stream-only", "pipecat0-only", "name-only"],
)
def test_no_resolvable_replica(client, body):
    before = total_count(client)
    r = client.post("/v2/conversations", json=body)
    assert r.status_code == 400, r.text
    assert is_json(r)
    assert set(r.json()) == {"error"} and isinstance(r.json()["error"], str) and r.json()["error"]
    assert total_count(client) == before


# ------------------------------------------------------------------- test_mode


def test_test_mode_creates_ended_conversation_without_events(client, server):
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "test_mode": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert_create_shape(out, server.base_url)
    assert out["status"] == "ended"
    got = client.get(f"/v2/conversations/{out['conversation_id']}", params={"verbose": "true"})
    assert got.status_code == 200
    assert got.json()["status"] == "ended"
    assert got.json()["events"] == []


# ------------------------------------------------------------------ validation

INVALID_BODIES = {
    "test_mode-string": {"replica_id": "r90bbd427f71", "test_mode": "yes"},
    "audio_only-string": {"replica_id": "r90bbd427f71", "audio_only": "true"},
    "require_auth-string": {"replica_id": "r90bbd427f71", "require_auth": "no"},
    "properties-int": {"replica_id": "r90bbd427f71", "properties": 5},
    "properties-list": {"replica_id": "r90bbd427f71", "properties": []},
    "max_participants-1": {"replica_id": "r90bbd427f71", "max_participants": 1},
    "max_participants-0": {"replica_id": "r90bbd427f71", "max_participants": 0},
    "max_participants-string": {"replica_id": "r90bbd427f71", "max_participants": "3"},
    "max_participants-float": {"replica_id": "r90bbd427f71", "max_participants": 2.5},
    "callback-ftp": {"replica_id": "r90bbd427f71", "callback_url": "ftp://x"},
    "callback-not-url": {"replica_id": "r90bbd427f71", "callback_url": "not a url"},
    "callback-int": {"replica_id": "r90bbd427f71", "callback_url": 5},
    "name-int": {"replica_id": "r90bbd427f71", "conversation_name": 123},
    "replica-int": {"replica_id": 123},
    "memory_stores-string": {"replica_id": "r90bbd427f71", "memory_stores": "anna"},
    "document_ids-ints": {"replica_id": "r90bbd427f71", "document_ids": [1, 2]},
    "max_call_duration-string": {"replica_id": "r90bbd427f71", "properties": {"max_call_duration": "long"}},
    "enable_recording-string": {"replica_id": "r90bbd427f71", "properties": {"enable_recording": "yes"}},
}


@pytest.mark.parametrize("body", list(INVALID_BODIES.values()), ids=list(INVALID_BODIES))
def test_invalid_field_types_are_rejected(client, body):
    before = total_count(client)
    r = client.post("/v2/conversations", json=body)
    assert r.status_code == 400, r.text
    assert is_json(r)
    assert set(r.json()) == {"error"}, r.json()
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert total_count(client) == before


RAW_INVALID = {
    "invalid-json": b"{not json",
    "truncated-json": b'{"replica_id": "r90bbd427f71"',
    "array": b'[{"replica_id": "r90bbd427f71"}]',
    "empty-array": b"[]",
    "string": b'"r90bbd427f71"',
    "number": b"5",
    "null": b"null",
    "not-utf8": b'{"replica_id": "\xff\xfe"}',
}


@pytest.mark.parametrize("content", list(RAW_INVALID.values()), ids=list(RAW_INVALID))
def test_malformed_bodies_are_rejected(client, content):
    before = total_count(client)
    r = client.post("/v2/conversations", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert is_json(r)
    assert set(r.json()) == {"error"}, r.json()
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert total_count(client) == before


def test_body_over_one_mib_is_413(client):
    before = total_count(client)
    content = b'{"replica_id": "r90bbd427f71", "padding": "' + b"x" * (1024 * 1024) + b'"}'
    r = client.post("/v2/conversations", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert is_json(r)
    assert isinstance(r.json().get("error"), str)
    assert total_count(client) == before


def test_chunked_body_over_one_mib_is_413(client):
    """No Content-Length: the limit must hold for a streamed body too."""
    before = total_count(client)

    def chunks():
        yield b'{"replica_id": "r90bbd427f71", "padding": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    r = client.post("/v2/conversations", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert is_json(r)
    assert isinstance(r.json().get("error"), str)
    assert total_count(client) == before


def test_body_of_exactly_one_mib_is_accepted(client):
    head = b'{"replica_id": "r90bbd427f71", "test_mode": true, "padding": "'
    tail = b'"}'
    content = head + b"x" * (1024 * 1024 - len(head) - len(tail)) + tail
    assert len(content) == 1024 * 1024
    r = client.post("/v2/conversations", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:300]


# ----------------------------------------------------------------- concurrency


def test_concurrency_limit(new_account, make_client):
    c = make_client(new_account(max_concurrent=1))
    first = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
    assert first.status_code == 200, first.text

    second = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
    assert second.status_code == 400, second.text
    assert is_json(second)
    assert second.json() == CONCURRENCY_ERROR
    assert c.get("/v2/conversations").json()["total_count"] == 1

    # test-mode conversations never take a slot
    for _ in range(3):
        t = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "test_mode": True})
        assert t.status_code == 200, t.text
        assert t.json()["status"] == "ended"

    # ending the first frees its slot
    assert c.post(f"/v2/conversations/{first.json()['conversation_id']}/end").status_code == 200
    third = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
    assert third.status_code == 200, third.text
    assert third.json()["status"] == "active"
    fourth = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
    assert fourth.status_code == 400
    assert fourth.json() == CONCURRENCY_ERROR


def test_concurrency_limit_above_one(new_account, make_client):
    c = make_client(new_account(max_concurrent=3))
    ids = []
    for _ in range(3):
        r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
        assert r.status_code == 200, r.text
        ids.append(r.json()["conversation_id"])
    r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
    assert r.status_code == 400 and r.json() == CONCURRENCY_ERROR
    assert c.post(f"/v2/conversations/{ids[1]}/end").status_code == 200
    assert c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).status_code == 200


def test_concurrency_is_per_account(new_account, make_client, client):
    limited = make_client(new_account(max_concurrent=1))
    assert limited.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).status_code == 200
    # another account is unaffected
    assert client.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).status_code == 200
    assert limited.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).status_code == 400
