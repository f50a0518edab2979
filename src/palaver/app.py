"""The application factory: routes, middleware and the lifespan that owns storage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from palaver import __version__
from palaver.api import conversations, health, metrics, personas, replica_training, replicas, rooms
from palaver.api.errors import install_error_handlers
from palaver.api.fastpath import EndConversationFastPath
from palaver.api.metrics import RequestMetrics
from palaver.api.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from palaver.api.openapi import install_openapi
from palaver.delivery import process as delivery_process
from palaver.domain.clock import Clock, SystemClock
from palaver.service.auth import Authenticator
from palaver.service.conversations import ConversationService
from palaver.service.health import DatabaseHealth
from palaver.service.jobs import JobRunner
from palaver.service.personas import PersonaService
from palaver.service.replica_training import ReplicaTraining
from palaver.service.replicas import ReplicaService
from palaver.service.statistics import refresh_statistics_forever
from palaver.service.timers import TimerService
from palaver.service.webhooks import trim_outbox_forever
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
        app.state.storage = storage
        app.state.ledger = ledger
        app.state.authenticator = Authenticator(storage, clock, ttl=settings.key_cache_ttl)
        app.state.jobs = JobRunner(storage.resources, clock)  # resources register their job kinds on it
        app.state.replicas = ReplicaService(storage.resources, clock)
        # Registers the `replica_training` job kind on app.state.jobs and the hard delete's purge hook.
        app.state.training = ReplicaTraining(app.state.replicas, storage.media, app.state.jobs, clock,
                                             public_url=settings.public_url,
                                             allow_private=settings.allow_private_callbacks)  # fmt: skip
        app.state.personas = PersonaService(storage.resources, clock, app.state.replicas)
        app.state.conversations = ConversationService(
            storage, clock, settings.public_url, ledger=ledger, personas=app.state.personas
        )
        app.state.timers = TimerService(storage, clock)
        app.state.health = DatabaseHealth(storage, clock)
        await app.state.timers.fire_due()  # deadlines that passed while the server was down
        tasks = [
            asyncio.create_task(app.state.timers.run(), name="palaver-timers"),
            asyncio.create_task(app.state.jobs.run(), name="palaver-jobs"),
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
    app.include_router(conversations.router)
    for router in [*personas.routers(), *replicas.routers(), *replica_training.routers()]:
        app.include_router(router)
    app.include_router(rooms.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_error_handlers(app)
    install_openapi(app)
    # Added last, runs first: the key is checked before the body is even looked at.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(ApiKeyMiddleware)
    return app
