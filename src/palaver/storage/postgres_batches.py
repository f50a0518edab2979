"""Group commit on PostgreSQL: requests that arrive together share one statement and one commit.

A batch starts at once while fewer than `max_in_flight` batches are running, so
a lone request waits for nothing; under load, the requests that arrive while
batches run gather into the next one, and one round trip and one WAL flush
serve them all. Unlike SQLite's group commit (storage/sqlite_writer.py), batches
overlap: PostgreSQL commits several at a time, and every process has its own.

The work of a batch is a function of a connection and the batch's requests
that returns one outcome per request: a value, or an exception for that
request alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import asyncpg

from palaver.storage.postgres_pool import LazyPool
from palaver.storage.running_loop import RunningLoop

R = TypeVar("R")  # a request
T = TypeVar("T")  # what a request gets back

MAX_BATCH = 1000
# Batches running at once per process. More than the cores PostgreSQL has brings no
# throughput, only more lock waits and smaller batches; fewer serialises round trips.
# Measured with the sustained end load on two cores shared with PostgreSQL (two
# alternating pairs of runs, docs/performance.md): 2 against 4 gave 7,049 and 6,654
# ends/s against 5,771 and 6,142, and 77-83 against 94-101 us of PostgreSQL's CPU per end.
DEFAULT_IN_FLIGHT = 2

Work = Callable[[asyncpg.Connection, list[R]], Awaitable[list["T | BaseException"]]]


class Batcher(Generic[R, T]):
    def __init__(self, pool: LazyPool, work: Work[R, T], max_in_flight: int = DEFAULT_IN_FLIGHT) -> None:
        self._pool = pool
        self._work = work
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[R, asyncio.Future[T]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._running_loop = RunningLoop()

    def submit(self, request: R) -> asyncio.Future[T]:
        """The request's outcome, as a future (not a coroutine: one frame less on hot paths)."""
        loop = self._running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((request, future))
        self._schedule(loop)
        return future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # After the callbacks already ready: requests read in the same poll join this batch.
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._launch)

    def _launch(self) -> None:
        self._scheduled = False
        loop = self._running_loop()
        while self._waiting and self._in_flight < self._max_in_flight:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            self._in_flight += 1
            task = loop.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[R, asyncio.Future[T]]]) -> None:
        """Run this batch, then, on the same connection, whatever gathered meanwhile, until nothing waits.

        Keeping the connection while there is work spares a pool acquire and release per batch
        (about 30 us of CPU each, measured; docs/performance.md); an idle batcher holds none.
        """
        try:
            pool = await self._pool.get()
            async with pool.acquire() as conn:
                while True:
                    self._finish(batch, await self._outcomes(conn, batch))
                    if not self._waiting or conn.is_closed():
                        break
                    batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        except Exception as exc:  # noqa: BLE001 - no connection: the batch fails as a whole
            self._finish(batch, [exc] * len(batch))
        finally:
            self._in_flight -= 1
            if self._waiting:
                self._schedule(self._running_loop())

    async def _outcomes(
        self, conn: asyncpg.Connection, batch: list[tuple[R, asyncio.Future[T]]]
    ) -> list[T | BaseException]:
        try:
            return await self._work(conn, [request for request, _ in batch])
        except Exception as exc:  # noqa: BLE001 - the batch failed as a whole: every request gets it
            return [exc] * len(batch)

    @staticmethod
    def _finish(batch: list[tuple[R, asyncio.Future[T]]], outcomes: list[T | BaseException]) -> None:
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled (its client went away)
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def drain(self) -> None:
        """Wait for every batch started or waiting (before the pool closes)."""
        while self._tasks or self._waiting:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
