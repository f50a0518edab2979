"""`POST /v2/conversations/{conversation_id}/end` served in raw ASGI, in front of FastAPI.

The end endpoint is the heart of the API and the one Palaver promises to serve
at no less than half the speed of a bare ASGI app. Measured on the reference
machine, FastAPI's routing, dependency and exception layers alone cost about
three quarters of that budget (a trivial FastAPI route: ~8k req/s; a bare ASGI
app: ~34k req/s), so this one route skips them. It keeps the same contract and
goes through the same service call; every other request passes through to
FastAPI untouched. The route is described in `/openapi.json` by `openapi.py`.

Under `palaver serve` most ends do not get here: the HTTP protocol answers a
plain end itself (api/end_protocol.py) and hands this app the rest (a key not
yet cached, unusual request shapes, other methods).
"""

from __future__ import annotations

import json
import logging

from palaver.api.middleware import (
    MAX_BODY_BYTES,
    TOO_LARGE,
    UNAUTHORIZED,
    ASGIApp,
    Receive,
    Scope,
    Send,
    api_key_of,
    declared_length,
    send_json,
)
from palaver.domain.errors import InvalidId
from palaver.metrics import HTTP_REQUESTS
from palaver.service.auth import Authenticator
from palaver.service.conversations import ConversationService

log = logging.getLogger("palaver.api")

PREFIX = "/v2/conversations/"
SUFFIX = "/end"
METHOD_NOT_ALLOWED = json.dumps({"error": "Method not allowed"}, separators=(",", ":")).encode()
INTERNAL_ERROR = json.dumps({"error": "Internal server error"}, separators=(",", ":")).encode()
ROUTE = PREFIX + "{conversation_id}" + SUFFIX  # the route label in palaver_http_requests_total


def end_route_id(scope: Scope) -> str | None:
    """The conversation id if this request is for `/v2/conversations/{id}/end` (any method)."""
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    conversation_id = path[len(PREFIX) : -len(SUFFIX)]
    if "/" in conversation_id and not is_one_segment(scope, SUFFIX):
        return None  # a longer path, not this route
    # A slash that came from `%2F` is part of the id, which then fails
    # validation like any id Tavus does not know.
    return conversation_id


def is_one_segment(scope: Scope, suffix: str = "") -> bool:
    """Whether the raw (still percent-encoded) path is PREFIX + one segment + suffix."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    raw = raw.split(b"?", 1)[0]
    if not raw.startswith(PREFIX.encode()) or not raw.endswith(suffix.encode()):
        return False
    segment = raw[len(PREFIX) : len(raw) - len(suffix)]
    return bool(segment) and b"/" not in segment


class EndConversationFastPath:
    def __init__(self, app: ASGIApp, state: object) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: services exist once the lifespan has run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conversation_id = end_route_id(scope)
        if conversation_id is None:
            await self.app(scope, receive, send)
            return
        # Counted for `GET /metrics` here, not by api/metrics.py's RequestMetrics: wrapping
        # `send` in a per-request closure cost 8-13 % of end throughput (docs/performance.md).
        status = 500  # if anything below raises, the server answers 500
        try:
            authenticator: Authenticator = self.state.authenticator  # type: ignore[attr-defined]
            account_id = await authenticator.account_for(api_key_of(scope))
            if account_id is None:
                status = 401
                await send_json(send, status, UNAUTHORIZED)
                return
            if scope["method"] != "POST":
                status = 405
                await send_json(send, status, METHOD_NOT_ALLOWED, [(b"allow", b"POST")])
                return
            length = declared_length(scope)
            if length is not None and length > MAX_BODY_BYTES:
                status = 413
                await send_json(send, status, TOO_LARGE)
                return
            service: ConversationService = self.state.conversations  # type: ignore[attr-defined]
            try:
                await service.end(account_id, conversation_id)
            except InvalidId as exc:
                status = 400
                await send_json(send, status, json.dumps({"error": exc.message}, separators=(",", ":")).encode())
                return
            except Exception:
                log.exception("end of %s failed", conversation_id)
                await send_json(send, status, INTERNAL_ERROR)
                return
            status = 200
            await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        finally:
            HTTP_REQUESTS.add(ROUTE, scope["method"], status)
