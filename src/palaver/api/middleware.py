"""Pure-ASGI middleware for what every `/v2` request goes through first.

Written against raw ASGI rather than `BaseHTTPMiddleware`, which costs a task and
a stream per request: these run on the hot path of every call.

Order: the key is checked before anything else (Tavus answers 401 before any
validation, even for unknown routes or oversized bodies), then the body size.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palaver.service.auth import Authenticator

MAX_BODY_BYTES = 1024 * 1024

UNAUTHORIZED = json.dumps({"message": "Invalid access token"}, separators=(",", ":")).encode()
TOO_LARGE = json.dumps(
    {"error": f"Request body too large: the limit is {MAX_BODY_BYTES} bytes"}, separators=(",", ":")
).encode()


def api_key_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-api-key":  # ASGI servers lower-case header names
            return value.decode("latin-1")
    return None


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number; None when absent or malformed (the server rejects those)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """Resolves `x-api-key` to an account for `/v2` paths; stores it in `scope["state"]`.

    The authenticator is the app's (`app.state.authenticator`), created by the
    lifespan together with the storage it reads.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.app(scope, receive, send)
            return
        authenticator: Authenticator = scope["app"].state.authenticator
        account_id = await authenticator.account_for(api_key_of(scope))
        if account_id is None:
            await send_json(send, 401, UNAUTHORIZED)
            return
        scope.setdefault("state", {})["account_id"] = account_id
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for bodies over the limit, whether declared by Content-Length or streamed chunked."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None:
            if declared > self.limit:
                await send_json(send, 413, TOO_LARGE)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        # Chunked upload: buffer up to the limit, then replay to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send_json(send, 413, TOO_LARGE)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(chunks, None, receive), send)


def _replay(chunks: list[bytes], final: Message | None, upstream: Receive) -> Receive:
    """Hand the buffered body to the app once, then pass through to the real channel."""
    body = b"".join(chunks)
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if final is not None:
                return final
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive
