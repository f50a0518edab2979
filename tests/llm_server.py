"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1, for the brain and room tests.

    with serve_llm() as llm:                       # uvicorn in a thread, on a free port
        llm.url                                    # the base_url to give: "http://127.0.0.1:PORT/v1"
        llm.script(Reply(tokens=["Hi", " there"], delay=0.05))   # what the next request gets
        ...                                        # point a brain or a persona at llm.url
        llm.requests[-1].messages                  # what it was asked (also .tools, .headers, .body)
        llm.requests[-1].wait_disconnect(1.0)      # True once the client hung up mid-reply

Each `POST .../chat/completions` takes the next scripted `Reply` (in the order
given to `script`), else answers with `default_reply`: "You said: <last user
text>" (or "The tool answered: <content>" after a `tool` message), streamed a
word at a time. Streaming (`"stream": true`) sends SSE chunks shaped as
OpenAI's: a first chunk with the assistant role, one chunk per token, tool
calls split into fragments across chunks (id and name first, then the JSON
arguments in small pieces), a last chunk with `finish_reason`, then
`data: [DONE]`. Without `stream`, the same reply comes as one JSON completion.

`Reply` scripts the failures too: `status` (an OpenAI-style error body with
that HTTP status), `hang` (read the request, never answer), `stall_after`
(send that many chunks, then stay silent with the connection open),
`drop_after` (send that many chunks, then drop the connection) and
`error_event` (an `{"error": ...}` event in the middle of the stream).

Every request is recorded (`Recorded`): path, headers (lower-case names), the
JSON body, when it arrived, and whether and when the client disconnected
before the reply was complete. Hanging and stalled replies end when the
client goes away or the server stops, so `close()` never waits on them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class ScriptedToolCall:
    name: str
    arguments: dict[str, Any] | str  # an object is sent as its JSON text
    call_id: str | None = None  # default: "call_<n>"

    def text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    """What the server does with one request."""

    tokens: list[str] = field(default_factory=list)
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)  # streamed after the tokens
    delay: float = 0.0  # seconds before each chunk after the role chunk
    first_delay: float = 0.0  # seconds between the response headers and the first chunk
    status: int | None = None  # fail with this HTTP status instead
    error: str = "scripted failure"  # the message of `status` and of `error_event`
    hang: bool = False  # never answer at all (not even the headers)
    stall_after: int | None = None  # send this many chunks (the role chunk counts), then go silent
    error_event: bool = False  # after the tokens, send an SSE `{"error": ...}` event and stop
    drop_after: int | None = None  # send this many chunks, then drop the connection (a crashed server)
    argument_piece: int = 7  # characters of arguments per tool-call fragment


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float  # time.monotonic()
    disconnected_at: float | None = None  # time.monotonic() when the client left before the reply ended
    completed: bool = False  # the whole reply was sent
    _gone: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])

    def wait_disconnect(self, timeout: float) -> bool:
        """Whether the client hung up mid-reply within `timeout` seconds."""
        return self._gone.wait(timeout)


def default_reply(body: dict[str, Any]) -> Reply:
    """Echo the last message: "You said: ..." for a user's, "The tool answered: ..." for a tool's."""
    messages = body.get("messages") or [{}]
    last = messages[-1]
    content = last.get("content") if isinstance(last.get("content"), str) else ""
    text = f"The tool answered: {content}" if last.get("role") == "tool" else f"You said: {content}"
    words = text.split(" ")
    return Reply(tokens=[w if i == 0 else " " + w for i, w in enumerate(words)])


class LlmServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(self._app, log_level="critical", lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="llm-server", daemon=True)

    # the test's side ------------------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._replies.extend(replies)

    def wait_requests(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} requests arrived"
            time.sleep(0.01)
        return self.requests

    def start(self) -> LlmServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the LLM test server did not start"
            time.sleep(0.01)
        return self

    def close(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(10)
        self._sock.close()

    # the server's side ----------------------------------------------------------------------------

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            await self._server.serve(sockets=[self._sock])

        asyncio.run(main())

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        record = Recorded(scope["path"], headers, body if isinstance(body, dict) else {}, time.monotonic())
        with self._lock:
            self.requests.append(record)
            reply = self._replies.pop(0) if self._replies else None
        if not scope["path"].endswith("/chat/completions") or scope["method"] != "POST":
            await _json(send, 404, {"error": {"message": f"no route {scope['method']} {scope['path']}"}})
            return
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not record.completed:
                record.disconnected_at = time.monotonic()
                record._gone.set()
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._answer(reply or default_reply(record.body), record, send, gone)
        finally:
            watcher.cancel()

    async def _answer(self, reply: Reply, record: Recorded, send: Any, gone: asyncio.Event) -> None:
        async def pause(seconds: float) -> bool:
            """Wait; False if the client left or the server stops meanwhile."""
            assert self._stopping is not None
            waits = [asyncio.ensure_future(gone.wait()), asyncio.ensure_future(self._stopping.wait())]
            done, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            return not done

        if reply.hang:
            await pause(3600)
            return
        if reply.status is not None:
            record.completed = True  # before the last send: the client may close as soon as it has it
            await _json(send, reply.status, {"error": {"message": reply.error, "type": "scripted", "code": None}})
            return
        model = str(record.body.get("model", "test-model"))
        chunks = _chunks(reply, model)
        if not record.body.get("stream"):
            record.completed = True
            await _json(send, 200, _completion(reply, model))
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})  # fmt: skip
        for number, chunk in enumerate(chunks):
            if reply.stall_after is not None and number >= reply.stall_after:
                await pause(3600)
                return
            if reply.drop_after is not None and number >= reply.drop_after:
                raise _Dropped  # uvicorn closes the connection of an app that fails mid-response
            wait = reply.first_delay if number == 0 else reply.delay
            if wait and not await pause(wait):
                return
            if gone.is_set():
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        record.completed = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Dropped(Exception):
    """Raised to make uvicorn drop a connection mid-response (`Reply.drop_after`)."""


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def _chunks(reply: Reply, model: str) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})  # fmt: skip

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": token}) for token in reply.tokens]
    for index, call in enumerate(reply.tool_calls):
        call_id = call.call_id or f"call_{index}"
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        out.append(chunk({"tool_calls": [head]}))
        text = call.text()
        for start in range(0, len(text), reply.argument_piece):
            piece = text[start : start + reply.argument_piece]
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    if reply.error_event:
        out.append(_sse({"error": {"message": reply.error, "type": "scripted"}}))
        return out
    out.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    out.append(_sse("[DONE]"))
    return out


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.tokens) or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.call_id or f"call_{i}", "type": "function", "function": {"name": c.name, "arguments": c.text()}}
            for i, c in enumerate(reply.tool_calls)
        ]
    finish = "tool_calls" if reply.tool_calls else "stop"
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]}  # fmt: skip


async def _json(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve_llm() -> Iterator[LlmServer]:
    """A running LlmServer, stopped on exit."""
    server = LlmServer().start()
    try:
        yield server
    finally:
        server.close()
