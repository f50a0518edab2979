"""Second baseline: a minimal Starlette app, for reference.

The same three routes as the raw ASGI baseline (``baseline_app.py``), written
the way a plain Starlette app would be, with no tuning:

* ``POST /v2/conversations``            -> 200, JSONResponse with a fake id
* ``POST /v2/conversations/{id}/end``   -> 200, empty body
* ``GET  /health``                      -> 200 (no key needed)

Each ``/v2`` endpoint checks ``x-api-key`` against ``$BASELINE_API_KEY`` with
``hmac.compare_digest`` and answers 401 ``{"message":"Invalid access token"}``
otherwise; the create endpoint reads (drains) the request body.  No storage.

Where the raw ASGI baseline is the floor of the stack, this one shows what a
framework's routing, request and response objects cost on their own, so
Palaver / this app is the ratio against "the least a Starlette app does".

It is served by ``baseline_app.serve``, i.e. on exactly the same stack as the
raw baseline and as ``palaver serve`` (uvicorn, one process, uvloop,
httptools, no access log, log level warning, lifespan on)::

    BASELINE_API_KEY=secret python benchmarks/baseline_starlette.py --port 0

It prints ``Starlette baseline listening on http://HOST:PORT`` once the
socket is bound.
"""

from __future__ import annotations

import hmac
import os
import random
import sys

from baseline_app import serve  # same stack as the raw baseline (same directory)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = os.environ.get("BASELINE_API_KEY", "").encode()


def authorized(request: Request) -> bool:
    key = request.headers.get("x-api-key")
    return bool(API_KEY) and key is not None and hmac.compare_digest(
        key.encode("latin-1"), API_KEY)


def unauthorized() -> JSONResponse:
    return JSONResponse({"message": "Invalid access token"}, status_code=401)


async def create_conversation(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    await request.body()
    conversation_id = f"c{random.getrandbits(60):015x}"
    return JSONResponse({
        "conversation_id": conversation_id,
        "conversation_name": "bench",
        "status": "active",
        "conversation_url": f"http://localhost/{conversation_id}",
    })


async def end_conversation(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    return Response(status_code=200)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/health", health, methods=["GET"]),
    Route("/v2/conversations", create_conversation, methods=["POST"]),
    Route("/v2/conversations/{conversation_id}/end", end_conversation,
          methods=["POST"]),
])


if __name__ == "__main__":
    sys.exit(serve(app, "Starlette baseline", sys.argv[1:]))
