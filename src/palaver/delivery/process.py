"""The delivery worker as a process of its own, and how `palaver serve` starts and stops it.

Why a process: the server is one event loop on one core, and every microsecond
of webhook work done there is taken from request handling (measured: sending
from the server's loop cost ends 74 % of their throughput, docs/benchmarks.md).
In its own process, delivery runs on whatever CPU the server leaves, at a lower
scheduling priority (`nice`), so under load requests come first and webhooks
use the rest; when the server is idle, delivery has the machine.

Lifetime: `palaver serve` starts `palaver deliver --parent-pipe` with a pipe on
its standard input and closes the pipe to stop it. If the server dies, even by
`kill -9`, the kernel closes the pipe and the worker stops on its own: an
orphan can never keep delivering beside the next server's worker. An exclusive
lock on a file next to the ledger makes sure of it: a second worker for the
same ledger and shard waits until the first is gone.

Several workers (`--delivery-workers`, default 1) split the conversations
between them by a hash of the id (domain/shards.py): one process sends at most
~7,000-10,000 webhooks a second (docs/performance.md). One is the default
because on a small machine a second worker takes its CPU from the API during
a burst (measured on 2 cores: the end throughput cost of webhooks rose from
~18 % to ~23 %, for a shutdown p99 of 2.6 s instead of 3.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from typing import Any

from palaver.delivery.worker import DeliveryWorker
from palaver.domain.clock import SystemClock
from palaver.domain.retry import RetryPolicy
from palaver.domain.shards import ALL, Shard
from palaver.runtime import collect_young_objects_less_often
from palaver.settings import Settings
from palaver.storage.base import backend_of
from palaver.storage.sqlite_connection import sqlite_path
from palaver.storage.sqlite_ledger import SQLiteDeliveryLedger, ledger_path

log = logging.getLogger("palaver.webhooks")


def spawn_all(settings: Settings) -> list[subprocess.Popen[bytes]]:
    """`settings.delivery_workers` workers: on SQLite one per shard, on PostgreSQL all sharing the ledger."""
    count = settings.delivery_workers
    if backend_of(settings.database_url) == "postgres":
        return [spawn(settings) for _ in range(count)]
    return [spawn(settings, Shard(index, count)) for index in range(count)]


def spawn(settings: Settings, shard: Shard = ALL) -> subprocess.Popen[bytes]:
    """Start `palaver deliver` for these settings, tied to this process by a pipe on its stdin."""
    args = [
        sys.executable,
        "-m",
        "palaver",
        "deliver",
        "--parent-pipe",
        "--database-url",
        settings.database_url,
        "--webhook-max-attempts",
        str(settings.webhook_max_attempts),
        "--webhook-max-age",
        str(settings.webhook_max_age),
        "--niceness",
        str(settings.delivery_niceness),
        "--shard",
        f"{shard.index}/{shard.count}",
        "--webhook-lease",
        str(settings.webhook_lease),
    ]
    if settings.allow_private_callbacks:
        args.append("--allow-private-callbacks")
    return subprocess.Popen(args, stdin=subprocess.PIPE)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Close the pipe (the worker records what is in flight and exits), then insist if it must."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _parent_gone() -> bool:
    """True once the server's end of the pipe on stdin is closed."""
    readable, _, _ = select.select([0], [], [], 0.1)
    return bool(readable) and not os.read(0, 4096)


@contextlib.contextmanager
def _exclusive(lock_path: str, *, parent_pipe: bool) -> Iterator[bool]:
    """Hold the worker lock; yields False if the parent went away while waiting for it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if parent_pipe and _parent_gone():
                    yield False
                    return
                if not parent_pipe:
                    time.sleep(0.1)
        yield True
    finally:
        os.close(fd)  # releases the lock


def run(settings: Settings, *, parent_pipe: bool, niceness: int, shard: Shard = ALL) -> None:
    """The body of `palaver deliver`."""
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    collect_young_objects_less_often()
    if backend_of(settings.database_url) == "postgres":
        # Any number of workers share a PostgreSQL ledger through row claims: no lock, no shards.
        _run_loop(_deliver_postgres(settings, parent_pipe=parent_pipe))
        return
    ledger_file = ledger_path(sqlite_path(settings.database_url))
    lock = ledger_file + ".lock" + (f".{shard.index}" if shard.index else "")
    with _exclusive(lock, parent_pipe=parent_pipe) as locked:
        if not locked:
            return
        _run_loop(_deliver(settings, parent_pipe=parent_pipe, shard=shard))


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main)


def _stop_when_parent_goes(stop_event: asyncio.Event) -> None:
    """Set `stop_event` once the server's end of the pipe on stdin closes (even by kill -9)."""
    loop = asyncio.get_running_loop()

    def parent_gone() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop_event.set()

    loop.add_reader(0, parent_gone)


async def _deliver(settings: Settings, *, parent_pipe: bool, shard: Shard) -> None:
    from palaver.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(
        sqlite_path(settings.database_url), synchronous=settings.sqlite_synchronous, checkpoints=False
    )
    ledger = SQLiteDeliveryLedger(ledger_path(sqlite_path(settings.database_url)))
    await storage.migrate()
    await ledger.migrate()
    stop_event = asyncio.Event()
    if parent_pipe:
        _stop_when_parent_goes(stop_event)
    worker = DeliveryWorker(
        storage,
        ledger,
        SystemClock(),
        policy=RetryPolicy(max_attempts=settings.webhook_max_attempts, max_age=settings.webhook_max_age),
        allow_private=settings.allow_private_callbacks,
        shard=shard,
    )
    try:
        await worker.run(stop_event)
    finally:
        await ledger.close()
        await storage.close()


async def _deliver_postgres(settings: Settings, *, parent_pipe: bool) -> None:
    from palaver.delivery.claiming import ClaimingDeliveryWorker
    from palaver.storage.postgres import PostgresStorage
    from palaver.storage.postgres_ledger import PostgresDeliveryLedger

    storage = PostgresStorage(settings.database_url, pool_size=2)
    ledger = PostgresDeliveryLedger(settings.database_url, pool_size=4)
    await storage.migrate()
    stop_event = asyncio.Event()
    if parent_pipe:
        _stop_when_parent_goes(stop_event)
    worker = ClaimingDeliveryWorker(
        storage,
        ledger,
        SystemClock(),
        policy=RetryPolicy(max_attempts=settings.webhook_max_attempts, max_age=settings.webhook_max_age),
        allow_private=settings.allow_private_callbacks,
        lease=settings.webhook_lease,
    )
    try:
        await worker.run(stop_event)
    finally:
        await ledger.close()
        await storage.close()
