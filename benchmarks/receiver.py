"""Webhook receiver for the Palaver webhook benchmark (``run.py --webhooks``).

Two stacks answer the same requests:

* ``--stack raw`` (the default): an asyncio protocol on uvloop that parses
  requests with httptools and writes fixed answers, ~10 us of CPU a webhook.
  The receiver shares the machine's cores with wrk, the server and the
  delivery worker, and a production receiver would not; the less it takes,
  the less the benchmark measures the rig instead of Palaver.
* ``--stack asgi``: a raw ASGI app on the baselines' stack (uvicorn, one
  process, uvloop, httptools, no access log), ~35 us a webhook: the receiver
  of the figures before 2026-11-25's lanes (docs/benchmarks.md).

* ``POST <any path>`` -> 200 with an empty body; records ``time.time()`` at
  arrival (before the body is read) and the ``webhook-id`` header.
* ``GET /stats``      -> 200 JSON ``{webhook_id: first_arrival_epoch}``.
* ``GET /counts``     -> 200 JSON ``{"by_event": {event_type: distinct ids},
  "posts": N, "duplicates": N}`` (cheap; run.py polls it while waiting).
* ``GET /health``     -> 200 (used by run.py to wait for start-up).

Counters of all POSTs (including redeliveries) are in ``GET /stats?full=1``
as ``{"first": {...}, "posts": N, "duplicates": N}``.

    python benchmarks/receiver.py --port 0 [--stack raw|asgi]

prints ``Receiver listening on http://HOST:PORT`` once the socket is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import httptools

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# baseline_app.serve insists on a key for its own app; the receiver has none.
os.environ.setdefault("BASELINE_API_KEY", "unused-by-the-receiver")

import baseline_app  # noqa: E402

_first: dict[str, float] = {}
_by_event: dict[str, int] = {}  # distinct webhook ids per event type
_posts = 0
_duplicates = 0


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await baseline_app._lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    now = time.time()
    method = scope["method"]
    if method == "POST":
        hook_id = None
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                hook_id = value.decode("latin-1")
                break
        _record(hook_id, now)
        await baseline_app._drain(receive)
        await baseline_app._send(send, 200, b"", json=False)
        return
    await baseline_app._drain(receive)
    path = scope["path"]
    if method == "GET" and path == "/stats":
        if b"full=1" in scope.get("query_string", b""):
            body = {"first": _first, "posts": _posts, "duplicates": _duplicates}
        else:
            body = _first
        await baseline_app._send(send, 200, json.dumps(body).encode())
        return
    if method == "GET" and path == "/counts":
        body = {"by_event": _by_event, "posts": _posts, "duplicates": _duplicates}
        await baseline_app._send(send, 200, json.dumps(body).encode())
        return
    if method == "GET" and path == "/health":
        await baseline_app._send(send, 200, b'{"status":"ok"}')
        return
    await baseline_app._send(send, 404, baseline_app._NOT_FOUND)


def _record(hook_id: str | None, now: float) -> None:
    global _posts, _duplicates
    _posts += 1
    key = hook_id if hook_id is not None else "(missing webhook-id)"
    if key in _first:
        _duplicates += 1
    else:
        _first[key] = now
        event = key.split(".", 1)[1] if "." in key else "?"
        _by_event[event] = _by_event.get(event, 0) + 1


def _answer(status: str, body: bytes, keep_alive: bool) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n"
    if body:
        head += "content-type: application/json\r\n"
    if not keep_alive:
        head += "connection: close\r\n"
    return head.encode() + b"\r\n" + body


_OK_EMPTY = _answer("200 OK", b"", True)


class _Raw(asyncio.Protocol):
    """One connection: requests in (pipelined ones too), fixed answers out, in order."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._hook_id: str | None = None
        self._arrived = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.write(_answer("400 Bad Request", b"", False))
            self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._arrived = time.time()
        self._url, self._hook_id = b"", None

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self._hook_id = value.decode("latin-1")

    def on_message_complete(self) -> None:
        assert self._transport is not None
        method = self._parser.get_method()
        keep_alive = self._parser.should_keep_alive()
        if method == b"POST":
            _record(self._hook_id, self._arrived)
            answer = _OK_EMPTY if keep_alive else _answer("200 OK", b"", False)
        else:
            path, _, query = self._url.partition(b"?")
            if method == b"GET" and path == b"/stats":
                full = {"first": _first, "posts": _posts, "duplicates": _duplicates}
                answer = _answer("200 OK", json.dumps(full if b"full=1" in query else _first).encode(), keep_alive)
            elif method == b"GET" and path == b"/counts":
                counts = {"by_event": _by_event, "posts": _posts, "duplicates": _duplicates}
                answer = _answer("200 OK", json.dumps(counts).encode(), keep_alive)
            elif method == b"GET" and path == b"/health":
                answer = _answer("200 OK", b'{"status":"ok"}', keep_alive)
            else:
                answer = _answer("404 Not Found", b"", keep_alive)
        self._transport.write(answer)
        if not keep_alive:
            self._transport.close()


def _serve_raw(host: str, port: int) -> int:
    import uvloop

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(_Raw, host, port, backlog=2048)
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        print(f"Receiver listening on http://{bound_host}:{bound_port}", flush=True)
        await server.serve_forever()

    try:
        uvloop.run(run())
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Webhook receiver for the Palaver benchmark")
    parser.add_argument("--stack", choices=("raw", "asgi"), default="raw")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.stack == "asgi":
        return baseline_app.serve(app, "Receiver", ["--host", args.host, "--port", str(args.port)])
    return _serve_raw(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
