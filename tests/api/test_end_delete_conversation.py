"""POST /v2/conversations/{id}/end and DELETE /v2/conversations/{id}."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import datetime

import httpx
import pytest

INVALID_ID = {"error": "Invalid conversation_id"}
CONCURRENCY_ERROR = {"message": "User has reached maximum concurrent conversations"}
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def parse_ts(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00")


def create(c: httpx.Client, **extra) -> dict:
    r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71", **extra})
    assert r.status_code == 200, r.text
    return r.json()


def verbose(c: httpx.Client, cid: str) -> dict:
    r = c.get(f"/v2/conversations/{cid}", params={"verbose": "true"})
    assert r.status_code == 200, r.text
    return r.json()


def events_after_end(c: httpx.Client, cid: str, timeout: float = 3.0) -> list[dict]:
    """Verbose events once the transcript has arrived (it may be recorded just after the end returns)."""
    deadline = time.monotonic() + timeout
    while True:
        events = verbose(c, cid)["events"]
        if any(e["event_type"] == "application.transcription_ready" for e in events):
            return events
        if time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def assert_event_envelope(ev: dict, cid: str) -> None:
    for key in ("event_type", "message_type", "timestamp", "properties", "conversation_id"):
        assert key in ev, f"event lacks {key}: {ev}"
    assert ev["conversation_id"] == cid
    assert isinstance(ev["properties"], dict)
    assert TIMESTAMP_RE.match(ev["timestamp"]), ev["timestamp"]
    prefix = ev["event_type"].split(".", 1)[0]
    assert prefix in ("system", "application"), ev["event_type"]
    assert ev["message_type"] == prefix, ev


def is_json(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").split(";")[0].strip() == "application/json"


# ------------------------------------------------------------------------ END


def test_end_returns_200_empty_and_records_events(client):
    conv = create(client, conversation_name="to end")
    cid = conv["conversation_id"]
    before = client.get(f"/v2/conversations/{cid}").json()
    assert before["status"] == "active"

    r = client.post(f"/v2/conversations/{cid}/end")
    assert r.status_code == 200, r.text
    assert r.content == b""

    after = client.get(f"/v2/conversations/{cid}").json()
    assert after["status"] == "ended"
    assert parse_ts(after["updated_at"]) > parse_ts(before["updated_at"])
    assert after["created_at"] == before["created_at"]

    events = events_after_end(client, cid)
    assert [e["event_type"] for e in events] == [
        "system.replica_joined", "system.shutdown", "application.transcription_ready"
    ]
    for ev in events:
        assert_event_envelope(ev, cid)
    shutdown = events[1]["properties"]
    assert shutdown["shutdown_reason"] == "end_conversation_endpoint_hit"
    assert shutdown["reason"] == "end_conversation_endpoint_hit"
    assert shutdown["replica_id"] == conv["replica_id"]
    transcript = events[2]["properties"]["transcript"]
    assert isinstance(transcript, list) and transcript
    assert transcript[0]["role"] == "system"
    timestamps = [parse_ts(e["timestamp"]) for e in events]
    assert timestamps == sorted(timestamps)


def test_end_is_idempotent(client):
    cid = create(client)["conversation_id"]
    assert client.post(f"/v2/conversations/{cid}/end").status_code == 200
    first = events_after_end(client, cid)
    state = client.get(f"/v2/conversations/{cid}").json()
    time.sleep(0.05)
    for _ in range(3):
        r = client.post(f"/v2/conversations/{cid}/end")
        assert r.status_code == 200, r.text
        assert r.content == b""
    time.sleep(0.2)
    assert verbose(client, cid)["events"] == first
    assert client.get(f"/v2/conversations/{cid}").json() == state


def test_end_test_mode_conversation(client):
    conv = create(client, test_mode=True)
    cid = conv["conversation_id"]
    before = client.get(f"/v2/conversations/{cid}").json()
    r = client.post(f"/v2/conversations/{cid}/end")
    assert r.status_code == 200, r.text
    assert r.content == b""
    time.sleep(0.1)
    got = verbose(client, cid)
    assert got["status"] == "ended"
    assert got["events"] == []
    assert got["updated_at"] == before["updated_at"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"content": b"", "headers": {"Content-Type": "application/json", "Content-Length": "0"}},
        {"json": {}},
        {"content": b"{}"},
        {"content": b""},
    ],
    ids=["no-body", "empty-json-content-type", "json-object", "object-no-content-type", "empty-no-content-type"],
)
def test_end_accepts_any_empty_body_style(client, kwargs):
    cid = create(client)["conversation_id"]
    r = client.post(f"/v2/conversations/{cid}/end", **kwargs)
    assert r.status_code == 200, r.text
    assert client.get(f"/v2/conversations/{cid}").json()["status"] == "ended"


def test_end_frees_concurrency_slot(new_account, make_client):
    c = make_client(new_account(max_concurrent=1))
    cid = create(c)["conversation_id"]
    assert c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).json() == CONCURRENCY_ERROR
    assert c.post(f"/v2/conversations/{cid}/end").status_code == 200
    create(c)


# ------------------------------------------------------------------ bad ids


@pytest.fixture(scope="module")
def bad_ids(server, other_account_key, api_key) -> dict[str, str]:
    """Path segments (already URL-safe) that must all look the same: 400 Invalid conversation_id."""
    with server.client(api_key) as mine, server.client(other_account_key) as theirs:
        deleted = create(mine)["conversation_id"]
        assert mine.delete(f"/v2/conversations/{deleted}").status_code == 204
        hard_deleted = create(mine)["conversation_id"]
        assert mine.delete(f"/v2/conversations/{hard_deleted}", params={"hard": "true"}).status_code == 204
        foreign = create(theirs)["conversation_id"]
    return {
        "unknown": "c000000000000000",
        "unknown-short": "ca4301628cb9",
        "malformed": "abc",
        "long": "c" + "0" * 300,
        "uppercase": "C" + "0" * 15,
        "percent-junk": "%00%ff",
        "soft-deleted": deleted,
        "hard-deleted": hard_deleted,
        "other-account": foreign,
    }


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("GET", "?verbose=true"), ("POST", "/end"),
                                            ("DELETE", ""), ("DELETE", "?hard=true")])
def test_bad_ids_are_indistinguishable(client, bad_ids, method, suffix):
    contents = {}
    for label, cid in bad_ids.items():
        r = client.request(method, f"/v2/conversations/{cid}{suffix}")
        assert r.status_code == 400, f"{label}: {r.status_code} {r.text[:200]}"
        assert is_json(r), f"{label}: {r.headers.get('content-type')}"
        assert r.json() == INVALID_ID, f"{label}: {r.text[:200]}"
        contents[label] = r.content
    assert len(set(contents.values())) == 1, contents


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("POST", "/end"), ("DELETE", "")])
@pytest.mark.parametrize("cid", ["..%2Fx"])
def test_ids_with_encoded_slash_are_invalid_conversation_ids(client, method, suffix, cid):
    """`../x` as an id (sent URL-encoded, as a client quoting the id would) is just a malformed id."""
    unknown = client.request(method, f"/v2/conversations/c000000000000000{suffix}")
    r = client.request(method, f"/v2/conversations/{cid}{suffix}")
    assert r.status_code == 400, f"{r.status_code} {r.text[:200]}"
    assert r.content == unknown.content


def test_foreign_end_and_delete_do_not_touch_the_conversation(client, make_client, other_account_key):
    cid = create(client)["conversation_id"]
    other = make_client(other_account_key)
    assert other.post(f"/v2/conversations/{cid}/end").json() == INVALID_ID
    assert other.delete(f"/v2/conversations/{cid}").json() == INVALID_ID
    assert other.delete(f"/v2/conversations/{cid}", params={"hard": "true"}).json() == INVALID_ID
    got = verbose(client, cid)
    assert got["status"] == "active"
    assert [e["event_type"] for e in got["events"]] == ["system.replica_joined"]


# --------------------------------------------------------------------- DELETE


def _list_ids(c: httpx.Client) -> tuple[set[str], int]:
    body = c.get("/v2/conversations", params={"limit": 1000}).json()
    return {x["conversation_id"] for x in body["data"]}, body["total_count"]


@pytest.mark.parametrize("query", [{}, {"hard": "true"}, {"hard": "false"}], ids=["soft", "hard", "hard-false"])
def test_delete_removes_conversation(new_account, make_client, query):
    c = make_client(new_account(max_concurrent=10))
    keep = create(c)["conversation_id"]
    ended = create(c)["conversation_id"]
    assert c.post(f"/v2/conversations/{ended}/end").status_code == 200
    ids, total = _list_ids(c)
    assert ids == {keep, ended} and total == 2

    r = c.delete(f"/v2/conversations/{ended}", params=query)
    assert r.status_code == 204, r.text
    assert r.content == b""

    ids, total = _list_ids(c)
    assert ids == {keep} and total == 1
    assert c.get("/v2/conversations", params={"status": "ended"}).json() == {"data": [], "total_count": 0}
    for method, path in [("GET", f"/v2/conversations/{ended}"),
                         ("GET", f"/v2/conversations/{ended}?verbose=true"),
                         ("POST", f"/v2/conversations/{ended}/end"),
                         ("DELETE", f"/v2/conversations/{ended}"),
                         ("DELETE", f"/v2/conversations/{ended}?hard=true")]:
        r = c.request(method, path)
        assert r.status_code == 400, (method, path, r.text)
        assert r.json() == INVALID_ID
    assert c.get(f"/v2/conversations/{keep}").status_code == 200


def test_delete_active_ends_it_and_frees_slot(new_account, make_client):
    c = make_client(new_account(max_concurrent=1))
    cid = create(c)["conversation_id"]
    assert c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).json() == CONCURRENCY_ERROR
    r = c.delete(f"/v2/conversations/{cid}")
    assert r.status_code == 204 and r.content == b""
    again = create(c)
    assert again["status"] == "active"
    ids, total = _list_ids(c)
    assert ids == {again["conversation_id"]} and total == 1


def test_hard_delete_active_frees_slot(new_account, make_client):
    c = make_client(new_account(max_concurrent=1))
    cid = create(c)["conversation_id"]
    assert c.delete(f"/v2/conversations/{cid}", params={"hard": "true"}).status_code == 204
    create(c)


def test_delete_test_mode_conversation(client):
    cid = create(client, test_mode=True)["conversation_id"]
    r = client.delete(f"/v2/conversations/{cid}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v2/conversations/{cid}").json() == INVALID_ID


def _read_answers(sock: socket.socket, count: int, timeout: float = 10.0) -> list[tuple[bytes, bytes, bytes]]:
    """`count` HTTP/1.1 answers from a raw socket: (status line, header block, body)."""
    sock.settimeout(timeout)
    buffer, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} answers"
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status, _, headers = head.partition(b"\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", headers).group(1))
        while len(buffer) < length:
            buffer += sock.recv(65536)
        answers.append((status, headers, buffer[:length]))
        buffer = buffer[length:]
    return answers


def test_pipelined_ends_on_one_connection_are_answered_in_order(server, client, api_key):
    """Ends (and others) sent back to back on one keep-alive connection, as a client may pipeline
    them: answered in order, each end once, and the same bytes as one at a time."""
    ids = [create(client)["conversation_id"] for _ in range(4)]
    client.post(f"/v2/conversations/{ids[0]}/end")  # the key is in the server's cache from here on
    host, port = server.base_url.removeprefix("http://").split(":")
    requests_ = [
        f"POST /v2/conversations/{ids[1]}/end HTTP/1.1\r\nhost: x\r\nx-api-key: {api_key}\r\n\r\n",
        f"POST /v2/conversations/{ids[1]}/end HTTP/1.1\r\nhost: x\r\nx-api-key: {api_key}\r\n\r\n",
        f"POST /v2/conversations/c00000000000dead/end HTTP/1.1\r\nhost: x\r\nx-api-key: {api_key}\r\n\r\n",
        f"POST /v2/conversations/{ids[2]}/end HTTP/1.1\r\nhost: x\r\nx-api-key: wrong\r\n\r\n",
        f"GET /v2/conversations/{ids[1]} HTTP/1.1\r\nhost: x\r\nx-api-key: {api_key}\r\n\r\n",
        f"POST /v2/conversations/{ids[3]}/end HTTP/1.1\r\nhost: x\r\nx-api-key: {api_key}\r\n"
        "content-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    ]
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall("".join(requests_).encode())
        answers = _read_answers(sock, len(requests_))
    assert [a[0] for a in answers] == [
        b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 401 Unauthorized",
        b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK",
    ]
    assert answers[2][2] == b'{"error":"Invalid conversation_id"}'
    assert answers[3][2] == b'{"message":"Invalid access token"}'
    assert json.loads(answers[4][2])["status"] == "ended"
    for status, headers, body in (answers[0], answers[5]):
        names = [line.split(b":", 1)[0] for line in headers.split(b"\r\n")]
        assert names == [b"date", b"server", b"content-length"] and body == b""
    for cid in ids[1:2] + ids[3:]:
        events = [e["event_type"] for e in events_after_end(client, cid)]
        assert events.count("system.shutdown") == 1, events
    assert client.get(f"/v2/conversations/{ids[2]}").json()["status"] == "active"


def test_an_end_with_connection_close_is_answered_then_closed(server, client, api_key):
    cid = create(client)["conversation_id"]
    client.post(f"/v2/conversations/{cid}/end")
    cid = create(client)["conversation_id"]
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /v2/conversations/{cid}/end HTTP/1.1\r\nhost: x\r\nx-api-key: {api_key}\r\n"
            "connection: close\r\n\r\n".encode()
        )
        (status, headers, body), = _read_answers(sock, 1)
        assert status == b"HTTP/1.1 200 OK" and b"\r\nconnection: close" in b"\r\n" + headers
        assert sock.recv(1) == b""  # closed by the server
    assert client.get(f"/v2/conversations/{cid}").json()["status"] == "ended"
