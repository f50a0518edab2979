"""`GET /metrics` (Prometheus text format) and the layer that counts every HTTP request.

No API key, like `/health`: operators scrape it from inside their network and
must not expose it publicly (it reveals traffic and volumes, not data).
"""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palaver.metrics import CONTENT_TYPE, HTTP_REQUESTS, render
from palaver.storage.base import Storage
from palaver.storage.ledger import DeliveryLedger

UNMATCHED = "unmatched"

router = APIRouter(tags=["Operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "Prometheus text exposition format. No API key: keep it off the public internet "
        "(scrape it from inside your network)."
    ),
    response_class=PlainTextResponse,
    responses={200: {"description": "The metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    storage: Storage = request.app.state.storage
    ledger: DeliveryLedger = request.app.state.ledger
    snapshot = await storage.metrics_snapshot()
    return Response(render(snapshot, await ledger.totals()), media_type=CONTENT_TYPE)


class RequestMetrics:
    """Counts the requests FastAPI answers in `palaver_http_requests_total` (the end fast path
    counts its own, see api/fastpath.py).

    Raw ASGI with a plain function around `send`, to catch the status. The route
    label is the template of the route that matched, which Starlette's router
    leaves in `scope["route"]`, never the raw path; "unmatched" if none did.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers for an app that fails before it responds

        def send_counted(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = scope.get("route")
            template = UNMATCHED if route is None else getattr(route, "path", UNMATCHED)
            HTTP_REQUESTS.add(template, scope["method"], status)
