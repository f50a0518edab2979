"""Webhook receiver for the Palaver webhook benchmark (``run.py --webhooks``).

A raw ASGI app served on the same stack as the baselines (uvicorn, one
process, uvloop, httptools, no access log):

* ``POST <any path>`` -> 200 with an empty body; records ``time.time()`` at
  arrival (before the body is read) and the ``webhook-id`` header.
* ``GET /stats``      -> 200 JSON ``{webhook_id: first_arrival_epoch}``.
* ``GET /counts``     -> 200 JSON ``{"by_event": {event_type: distinct ids},
  "posts": N, "duplicates": N}`` (cheap; run.py polls it while waiting).
* ``GET /health``     -> 200 (used by run.py to wait for start-up).

Counters of all POSTs (including redeliveries) are in ``GET /stats?full=1``
as ``{"first": {...}, "posts": N, "duplicates": N}``.

    python benchmarks/receiver.py --port 0

prints ``Receiver listening on http://HOST:PORT`` once the socket is bound.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# baseline_app.serve insists on a key for its own app; the receiver has none.
os.environ.setdefault("BASELINE_API_KEY", "unused-by-the-receiver")

import baseline_app  # noqa: E402

_first: dict[str, float] = {}
_by_event: dict[str, int] = {}  # distinct webhook ids per event type
_posts = 0
_duplicates = 0


async def app(scope, receive, send) -> None:
    global _posts, _duplicates
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
        _posts += 1
        key = hook_id if hook_id is not None else "(missing webhook-id)"
        if key in _first:
            _duplicates += 1
        else:
            _first[key] = now
            event = key.split(".", 1)[1] if "." in key else "?"
            _by_event[event] = _by_event.get(event, 0) + 1
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


def main(argv: list[str] | None = None) -> int:
    return baseline_app.serve(app, "Receiver", argv)


if __name__ == "__main__":
    sys.exit(main())
