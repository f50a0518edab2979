"""A real HTTP receiver on 127.0.0.1 for the webhook tests (the `receiver` fixture in conftest.py).

Records every POST (path, headers, body) and answers each path from its plan:
`plan[path]` lists `(status, headers)` answers to give in turn, then
`default[path]` (else 200). `delay` holds every answer back that many seconds
after the request was recorded.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.time() at arrival

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    plan: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    default: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def ids(self, path: str) -> list[str]:
        """The webhook-id of every POST to `path`, in arrival order."""
        return [r.headers["webhook-id"] for r in self.at(path)]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count:
            assert time.monotonic() < deadline, f"{path}: {len(self.at(path))} of {count} webhooks arrived"
            time.sleep(0.02)
        return self.at(path)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.received.append(Received(path, headers, body, time.time()))
            steps = self.plan.get(path, [])
            return steps.pop(0) if steps else (self.default.get(path, 200), {})


def start_receiver() -> Receiver:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            receiver = holder["r"]
            status, headers = receiver._answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            time.sleep(receiver.delay)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    holder["r"] = receiver = Receiver(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver
