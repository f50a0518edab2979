"""The application factory: routes, middleware and the lifespan that owns storage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from palaver import __version__
from palaver.api import rooms, routes
from palaver.api.errors import install_error_handlers
from palaver.api.fastpath import EndConversationFastPath
from palaver.api.metrics import RequestMetrics
from palaver.api.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from palaver.api.openapi import install_openapi
from palaver.delivery import process as delivery_process
from palaver.domain.clock import Clock, SystemClock
from palaver.service.rooms.bus import open_room_bus
from palaver.service.statistics import refresh_statistics_forever
from palaver.service.webhooks import trim_outbox_forever
from palaver.services import build_services
from palaver.settings import Settings
from palaver.storage import open_storage
from palaver.storage.base import backend_of, open_ledger


def create_app(
    settings: Settings, *, clock: Clock | None = None, on_ready: Callable[[], Any] | None = None
) -> EndConversationFastPath:
    """The ASGI app: the end endpoint's fast path in front of the FastAPI app (see api/fastpath.py).

    Every request is counted for `GET /metrics` once: by the fast path for the end
    route, by RequestMetrics, just inside it, for everything FastAPI answers.
    """
    api = create_api(settings, clock=clock, on_ready=on_ready)
    return EndConversationFastPath(RequestMetrics(api), api.state)


def create_api(settings: Settings, *, clock: Clock | None = None, on_ready: Callable[[], Any] | None = None) -> FastAPI:
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = open_storage(
            settings.database_url, synchronous=settings.sqlite_synchronous, pool_size=settings.pool_size
        )
        await storage.migrate()
        ledger = open_ledger(settings.database_url)
        await ledger.migrate()
        bus = open_room_bus(settings.database_url)
        await bus.start()
        build_services(app.state, storage, ledger, clock, settings, bus)
        await app.state.timers.fire_due()  # deadlines that passed while the server was down
        tasks = [
            asyncio.create_task(app.state.timers.run(), name="palaver-timers"),
            asyncio.create_task(app.state.jobs.run(), name="palaver-jobs"),
            asyncio.create_task(app.state.rooms.run(), name="palaver-rooms"),
        ]
        if backend_of(settings.database_url) == "sqlite":
            # PostgreSQL's delivery workers delete the changes they take: nothing to trim.
            tasks.append(asyncio.create_task(trim_outbox_forever(storage, ledger), name="palaver-outbox-trim"))
        else:
            tasks.append(asyncio.create_task(refresh_statistics_forever(storage), name="palaver-statistics"))
        workers = delivery_process.spawn_all(settings) if settings.delivery_process else []
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.jobs.close()
            await app.state.rooms.close()
            await bus.close()
            # All at once: each is given a grace period for its attempts in flight.
            await asyncio.gather(*(asyncio.to_thread(delivery_process.stop, worker) for worker in workers))
            await ledger.close()
            await storage.close()

    app = FastAPI(
        title="Palaver",
        version=__version__,
        description="A self-hostable server for the Tavus Conversational Video API (v2).",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry probes global providers on every request;
        # Palaver exposes its own metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # No slash redirects: the SDK counts a 3xx as success (api/resources.py serves both spellings).
    app.router.redirect_slashes = False
    for router in routes.routers():
        app.include_router(router)
    app.mount("/static", rooms.static_files(), name="static")  # the room page's files and the JS drop-in
    install_error_handlers(app)
    install_openapi(app)
    # Added last, runs first: the key is checked before the body is even looked at.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(ApiKeyMiddleware)
    return app
