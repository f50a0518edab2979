"""Baseline ASGI app: the floor the Palaver figures are compared against.

A raw ASGI application (no framework) that does the bare minimum the Tavus
API surface needs for the two benchmarked calls:

* ``POST /v2/conversations``            -> 200, small JSON with a fake id
* ``POST /v2/conversations/{id}/end``   -> 200, empty body
* ``GET  /health``                      -> 200 (no key needed)

Every ``/v2`` request must carry ``x-api-key`` equal to ``$BASELINE_API_KEY``
(checked with ``hmac.compare_digest``), otherwise it gets
401 ``{"message":"Invalid access token"}``.  The request body is always
drained.  There is no storage, so the difference between this app and
Palaver is what Palaver's framework, validation and persistence cost.

Run it on the same server stack as ``palaver serve`` (uvicorn, one process,
uvloop, httptools, no access log, lifespan on)::

    BASELINE_API_KEY=secret python benchmarks/baseline_app.py --port 0

It prints ``Baseline listening on http://HOST:PORT`` once the socket is bound.
``serve()`` below is also used by ``baseline_starlette.py``, the second
baseline, so that both run on exactly the same stack.
"""

from __future__ import annotations

import argparse
import hmac
import os
import random
import socket
import sys

_KEY = os.environ.get("BASELINE_API_KEY", "").encode()

_JSON_HEADERS = [(b"content-type", b"application/json")]
_UNAUTHORIZED = b'{"message":"Invalid access token"}'
_NOT_FOUND = b'{"message":"Not found"}'
_PREFIX = b"/v2/conversations"


async def _drain(receive) -> None:
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)


async def _send(send, status: int, body: bytes = b"", json: bool = True) -> None:
    headers = list(_JSON_HEADERS) if json and body else []
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _authorized(scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return bool(_KEY) and hmac.compare_digest(value, _KEY)
    return False


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return

    await _drain(receive)
    method = scope["method"]
    path = scope["path"]

    if path == "/health" and method == "GET":
        await _send(send, 200, b'{"status":"ok"}')
        return

    if not path.startswith("/v2/"):
        await _send(send, 404, _NOT_FOUND)
        return

    if not _authorized(scope):
        await _send(send, 401, _UNAUTHORIZED)
        return

    raw = scope.get("raw_path") or path.encode()
    if method == "POST" and raw == _PREFIX:
        conversation_id = "c%015x" % random.getrandbits(60)
        body = (
            '{"conversation_id":"%s","conversation_name":"bench",'
            '"status":"active","conversation_url":"http://localhost/%s"}'
            % (conversation_id, conversation_id)
        ).encode()
        await _send(send, 200, body)
        return

    if method == "POST" and raw.startswith(_PREFIX + b"/") and raw.endswith(b"/end"):
        await _send(send, 200)
        return

    await _send(send, 404, _NOT_FOUND)


def serve(asgi_app, label: str, argv: list[str] | None = None) -> int:
    """Serve ``asgi_app`` on the benchmark stack and announce the address.

    Shared by both baselines (this raw ASGI app and ``baseline_starlette.py``)
    so that they run on exactly the same stack: uvicorn, one process, uvloop,
    httptools, no access log, log level warning, lifespan on.  Prints
    ``<label> listening on http://HOST:PORT`` once the socket is bound.
    """
    import uvicorn

    parser = argparse.ArgumentParser(description=f"{label} for the Palaver benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    if not _KEY:
        print("BASELINE_API_KEY is not set", file=sys.stderr)
        return 2

    # Bind ourselves so that --port 0 works and the real port can be printed.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    host, port = sock.getsockname()[:2]

    config = uvicorn.Config(
        asgi_app,
        loop="uvloop",
        http="httptools",
        access_log=False,
        lifespan="on",
        log_level="warning",
        backlog=2048,
    )
    server = uvicorn.Server(config)
    print(f"{label} listening on http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    return serve(app, "Baseline", argv)


if __name__ == "__main__":
    sys.exit(main())
