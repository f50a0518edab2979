"""The end endpoint answered by the HTTP protocol (palaver.api.end_protocol.EndProtocol).

Each request is fed to two protocols over the same services: uvicorn's own
httptools protocol running the ASGI app (the fast path in front of a stand-in
for FastAPI), and EndProtocol. The bytes written back must be the same, and
EndProtocol must have answered the plain ends without calling the ASGI app,
and handed everything else to it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from palaver.api.end_protocol import EndProtocol
from palaver.api.fastpath import EndConversationFastPath
from palaver.domain.clock import ManualClock
from palaver.domain.conversation import EndOutcome
from palaver.domain.keys import hash_key, lookup_of
from palaver.service.auth import Authenticator
from palaver.service.conversations import ConversationService
from palaver.storage.base import ApiKeyRecord

KEY = "k" * 48
OTHER_KEY = "o" * 48
DATE = (b"date", b"Thu, 03 Dec 2026 09:00:00 GMT")


class FakeStorage:
    """Keys and conversations, with ends committed on the next loop turn (or held by the test)."""

    resources = None

    def __init__(self) -> None:
        self.keys = {KEY: "acct-a", OTHER_KEY: "acct-b"}
        self.conversations: dict[str, tuple[str, str]] = {}  # id -> (account, status)
        self.held: list[tuple[asyncio.Future[EndOutcome], str, str]] = []
        self.hold = False
        self.ends = 0

    async def find_keys(self, lookup: str) -> list[ApiKeyRecord]:
        return [
            ApiKeyRecord(f"key-{account}", account, "", lookup_of(key), hash_key(key), "t", None)
            for key, account in self.keys.items()
            if lookup_of(key) == lookup
        ]

    def end_conversation(self, account_id: str, conversation_id: str, *_: Any) -> asyncio.Future[EndOutcome]:
        future: asyncio.Future[EndOutcome] = asyncio.get_running_loop().create_future()
        if self.hold:
            self.held.append((future, account_id, conversation_id))
        else:
            asyncio.get_running_loop().call_soon(self._commit, future, account_id, conversation_id)
        return future

    def release(self) -> None:
        for future, account_id, conversation_id in self.held:
            self._commit(future, account_id, conversation_id)
        self.held.clear()

    def _commit(self, future: asyncio.Future[EndOutcome], account_id: str, conversation_id: str) -> None:
        if conversation_id.startswith("cfa11"):
            future.set_exception(RuntimeError("the disk is on fire"))
            return
        owner, status = self.conversations.get(conversation_id, ("", ""))
        if owner != account_id:
            future.set_result(EndOutcome.NOT_FOUND)
        elif status == "ended":
            future.set_result(EndOutcome.ALREADY_ENDED)
        else:
            self.conversations[conversation_id] = (owner, "ended")
            self.ends += 1
            future.set_result(EndOutcome.ENDED)


class Services:
    """What the app's state holds for the end endpoint: the real authenticator and service."""

    def __init__(self, storage: FakeStorage) -> None:
        self.authenticator = Authenticator(storage, ManualClock(1_000.0))  # type: ignore[arg-type]
        self.conversations = ConversationService(storage, ManualClock(1_000.0), "http://test")  # type: ignore[arg-type]


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)


class Stack:
    """One protocol on one fake connection, with the ASGI app it falls back to."""

    def __init__(self, protocol_class: type[HttpToolsProtocol], services: Services, keep_alive: float = 5.0) -> None:
        self.app_calls: list[str] = []

        async def framework(scope: dict[str, Any], receive: Any, send: Any) -> None:  # stands in for FastAPI
            body = b'{"error":"Not found"}'
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        fast_path = EndConversationFastPath(framework, services)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.app_calls.append(scope["path"])
            await fast_path(scope, receive, send)

        config = uvicorn.Config(
            app, http="httptools", lifespan="off", log_level="warning", proxy_headers=False, timeout_keep_alive=keep_alive
        )
        config.load()
        state = ServerState()
        state.default_headers = [DATE, (b"server", b"uvicorn")]
        kwargs: dict[str, Any] = {"services": services} if protocol_class is EndProtocol else {}
        self.protocol = protocol_class(config=config, server_state=state, app_state={}, **kwargs)
        self.transport = Transport()
        self.protocol.connection_made(self.transport)

    async def exchange(self, raw: bytes) -> bytes:
        start = len(self.transport.written)
        self.protocol.data_received(raw)
        await settle()
        return bytes(self.transport.written[start:])


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the protocols start their tasks on the current loop
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def request(path: str, *headers: str, method: str = "POST", version: str = "1.1", body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def end(cid: str, *headers: str, key: str | None = KEY, **kwargs: Any) -> bytes:
    keyed = (f"x-api-key: {key}",) if key is not None else ()
    return request(f"/v2/conversations/{cid}/end", *keyed, *headers, **kwargs)


async def answer(protocol_class: type[HttpToolsProtocol], storage: FakeStorage, raw: bytes) -> tuple[bytes, Stack]:
    """The protocol's answer to the request, the keys cached first."""
    services = Services(storage)
    for key in (KEY, OTHER_KEY, "not-a-key"):
        await services.authenticator.account_for(key)
    stack = Stack(protocol_class, services)
    return await stack.exchange(raw), stack


ANSWERED_BY_THE_PROTOCOL = {
    "ended": (end("c0000000000000001"), b"HTTP/1.1 200 OK\r\n"),
    "already ended": (end("c0000000000000002"), b"HTTP/1.1 200 OK\r\n"),
    "unknown id": (end("c00000000000000ff"), b"HTTP/1.1 400 Bad Request\r\n"),
    "malformed id": (end("not-an-id"), b"HTTP/1.1 400 Bad Request\r\n"),
    "another account's id": (end("c0000000000000003"), b"HTTP/1.1 400 Bad Request\r\n"),
    "no key": (end("c0000000000000001", key=None), b"HTTP/1.1 401 Unauthorized\r\n"),
    "unknown key": (end("c0000000000000001", key="not-a-key"), b"HTTP/1.1 401 Unauthorized\r\n"),
    "storage failure": (end("cfa1100000000000"), b"HTTP/1.1 500 Internal Server Error\r\n"),
    "connection: close": (end("c0000000000000001", "connection: close"), b"HTTP/1.1 200 OK\r\n"),
    "a small body": (
        end("c0000000000000001", "content-type: application/json", "content-length: 2", body=b"{}"),
        b"HTTP/1.1 200 OK\r\n",
    ),
    "two keys, the first one good": (end("c0000000000000001", "x-api-key: not-a-key"), b"HTTP/1.1 200 OK\r\n"),
    "two keys, the first one wrong": (
        request("/v2/conversations/c0000000000000001/end", "x-api-key: not-a-key", f"x-api-key: {KEY}"),
        b"HTTP/1.1 401 Unauthorized\r\n",
    ),
    "a query string": (
        request("/v2/conversations/c0000000000000001/end?verbose=true", f"x-api-key: {KEY}"),
        b"HTTP/1.1 200 OK\r\n",
    ),
}


@pytest.mark.parametrize("case", sorted(ANSWERED_BY_THE_PROTOCOL))
def test_plain_ends_are_answered_without_the_asgi_app_and_the_same_bytes(
    loop: asyncio.AbstractEventLoop, case: str
) -> None:
    raw, status_line = ANSWERED_BY_THE_PROTOCOL[case]

    def fresh() -> FakeStorage:
        storage = FakeStorage()
        storage.conversations = {
            "c0000000000000001": ("acct-a", "active"),
            "c0000000000000002": ("acct-a", "ended"),
            "c0000000000000003": ("acct-b", "active"),
        }
        return storage

    # Each protocol gets its own storage, so both see the conversation in the same state.
    plain_storage, our_storage = fresh(), fresh()
    expected, _ = loop.run_until_complete(answer(HttpToolsProtocol, plain_storage, raw))
    ours_written, ours = loop.run_until_complete(answer(EndProtocol, our_storage, raw))
    assert expected.startswith(status_line), expected
    assert ours_written == expected
    assert ours.app_calls == [], "the ASGI app answered a request the protocol should have"
    assert our_storage.ends == plain_storage.ends
    assert ours.transport.closed == (b"connection: close" in raw)


HANDED_TO_THE_ASGI_APP = {
    "another method": (end("c0000000000000001", method="GET"), b"HTTP/1.1 405 Method Not Allowed\r\n"),
    "a longer path": (request("/v2/conversations/c0000000000000001/end/x"), b"HTTP/1.1 404 Not Found\r\n"),
    "a percent-encoded id": (end("c00000000%2F0000001"), b"HTTP/1.1 400 Bad Request\r\n"),
    "HTTP/1.0": (end("c0000000000000001", version="1.0"), b"HTTP/1.1 200 OK\r\n"),
    "a chunked body": (
        end("c0000000000000001", "transfer-encoding: chunked", body=b"2\r\n{}\r\n0\r\n\r\n"),
        b"HTTP/1.1 200 OK\r\n",
    ),
    "a body over the limit": (end("c0000000000000001", "content-length: 2000000"), b"HTTP/1.1 413 "),
    "expect: 100-continue": (
        end("c0000000000000001", "expect: 100-continue", "content-length: 2", body=b"{}"),
        b"HTTP/1.1 200 OK\r\n",
    ),
}


def connection(
    loop: asyncio.AbstractEventLoop,
    protocol_class: type[HttpToolsProtocol],
    active: list[str],
    keep_alive: float = 5.0,
) -> tuple[FakeStorage, Stack]:
    """A protocol on a fresh connection; `active` are acct-a's active conversations; KEY is cached."""
    storage = FakeStorage()
    storage.conversations = {cid: ("acct-a", "active") for cid in active}
    services = Services(storage)
    loop.run_until_complete(services.authenticator.account_for(KEY))
    return storage, Stack(protocol_class, services, keep_alive=keep_alive)


def ids(*numbers: int) -> list[str]:
    return [f"c{n:016x}" for n in numbers]


@pytest.mark.parametrize("case", sorted(HANDED_TO_THE_ASGI_APP))
def test_other_requests_go_through_the_asgi_app(loop: asyncio.AbstractEventLoop, case: str) -> None:
    raw, status_line = HANDED_TO_THE_ASGI_APP[case]
    _, ours = connection(loop, EndProtocol, ids(1))
    written = loop.run_until_complete(ours.exchange(raw))
    assert written.startswith(status_line), written
    assert len(ours.app_calls) == 1


def test_a_key_not_yet_cached_goes_through_the_asgi_app_once(loop: asyncio.AbstractEventLoop) -> None:
    storage = FakeStorage()
    storage.conversations = {f"c000000000000000{n}": ("acct-a", "active") for n in range(3)}
    ours = Stack(EndProtocol, Services(storage))
    for n in range(3):
        written = loop.run_until_complete(ours.exchange(end(f"c000000000000000{n}")))
        assert written.startswith(b"HTTP/1.1 200 OK\r\n"), written
    assert ours.app_calls == ["/v2/conversations/c0000000000000000/end"]  # it filled the cache
    assert storage.ends == 3


def test_pipelined_requests_are_answered_in_order(loop: asyncio.AbstractEventLoop) -> None:
    raw = end("c0000000000000001") + end("c00000000000000ff") + end("c0000000000000002") + request("/health", method="GET")
    written = {}
    for protocol_class in (HttpToolsProtocol, EndProtocol):
        storage, stack = connection(loop, protocol_class, ids(1, 2))
        storage.hold = True
        assert loop.run_until_complete(stack.exchange(raw)) == b""  # the first end waits for its commit
        storage.hold = False
        storage.release()
        loop.run_until_complete(settle())
        written[protocol_class] = bytes(stack.transport.written)
        assert storage.ends == 2
    statuses = re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+\r\n", written[EndProtocol])
    assert statuses == [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 400 Bad Request\r\n", b"HTTP/1.1 200 OK\r\n",
                        b"HTTP/1.1 404 Not Found\r\n"]
    assert written[EndProtocol] == written[HttpToolsProtocol]
    # The first was the protocol's; the rest queued behind it, through uvicorn's pipeline.
    assert stack.app_calls == ["/v2/conversations/c00000000000000ff/end", "/v2/conversations/c0000000000000002/end",
                               "/health"]


def end_held_at_commit(loop: asyncio.AbstractEventLoop) -> tuple[FakeStorage, Stack]:
    """An end sent through EndProtocol whose commit has not happened yet (`storage.release()` does it)."""
    storage, ours = connection(loop, EndProtocol, ids(1))
    storage.hold = True
    assert loop.run_until_complete(ours.exchange(end("c0000000000000001"))) == b""
    return storage, ours


def test_a_client_gone_before_the_commit_gets_no_answer_and_the_end_stands(loop: asyncio.AbstractEventLoop) -> None:
    storage, ours = end_held_at_commit(loop)
    ours.protocol.connection_lost(None)
    storage.release()
    loop.run_until_complete(settle())
    assert ours.transport.written == b""
    assert storage.conversations["c0000000000000001"] == ("acct-a", "ended")


def test_a_server_shutting_down_answers_the_end_waiting_and_closes(loop: asyncio.AbstractEventLoop) -> None:
    storage, ours = end_held_at_commit(loop)
    ours.protocol.shutdown()
    assert not ours.transport.closed  # uvicorn waits for the answer
    storage.release()
    loop.run_until_complete(settle())
    assert ours.transport.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in ours.transport.written
    assert ours.transport.closed


KEEP_ALIVE = 0.2  # seconds


@pytest.mark.parametrize("protocol_class", [HttpToolsProtocol, EndProtocol])
def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(
    loop: asyncio.AbstractEventLoop, protocol_class: type[HttpToolsProtocol]
) -> None:
    """uvicorn's behaviour, which EndProtocol keeps with one timer per connection instead of one per answer."""
    _, stack = connection(loop, protocol_class, ids(*range(8)), keep_alive=KEEP_ALIVE)
    started = loop.time()
    for n in range(8):  # busy for about twice the timeout: never idle for as long as the timeout
        if n:
            loop.run_until_complete(asyncio.sleep(KEEP_ALIVE / 4))
        assert not stack.transport.closed
        assert loop.run_until_complete(stack.exchange(end(f"c000000000000000{n}"))).startswith(b"HTTP/1.1 200 OK")
    idle_from = loop.time()
    assert idle_from - started > KEEP_ALIVE * 1.5
    while not stack.transport.closed and loop.time() - idle_from < KEEP_ALIVE * 5:
        loop.run_until_complete(asyncio.sleep(0.01))
    assert stack.transport.closed
    # Not before the timeout (the point); the upper bound leaves room for a loaded machine.
    assert KEEP_ALIVE * 0.9 <= loop.time() - idle_from <= KEEP_ALIVE * 4


@pytest.mark.parametrize("protocol_class", [HttpToolsProtocol, EndProtocol])
def test_a_connection_waiting_for_its_answer_is_not_closed_as_idle(
    loop: asyncio.AbstractEventLoop, protocol_class: type[HttpToolsProtocol]
) -> None:
    storage, stack = connection(loop, protocol_class, ids(0, 1), keep_alive=KEEP_ALIVE)
    loop.run_until_complete(stack.exchange(end("c0000000000000000")))
    loop.run_until_complete(asyncio.sleep(KEEP_ALIVE / 2))
    storage.hold = True
    loop.run_until_complete(stack.exchange(end("c0000000000000001")))
    loop.run_until_complete(asyncio.sleep(KEEP_ALIVE * 2))  # the first answer's timer is long due
    assert not stack.transport.closed
    storage.release()
    loop.run_until_complete(settle())
    assert stack.transport.written.count(b"HTTP/1.1 200 OK") == 2
    loop.run_until_complete(asyncio.sleep(KEEP_ALIVE * 2))
    assert stack.transport.closed
