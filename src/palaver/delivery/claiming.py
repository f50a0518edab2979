"""The delivery worker on PostgreSQL: any number of them, on any hosts, sharing one ledger.

Each step it takes outbox changes into the ledger (one taker at a time across
all workers), claims due deliveries for a lease, sends them, and records what
came of them, which also releases the claims. It keeps no queue of its own:
the ledger is the queue, so a worker can die at any moment and another one
carries on once the dead one's leases run out (at least once, same
`webhook-id`). A conversation's next event can be claimed only after its
earlier one is recorded, so events go out in order across workers.

Why not the SQLite worker with shards and lanes: those exist because SQLite has
one writer, and a worker must own its shard to keep order with a cursor. Row
locks, `SKIP LOCKED` and leases give PostgreSQL the same guarantees with no
assignment of work at all (docs/decisions.md #63).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from palaver.delivery.attempts import SigningSecrets, attempt
from palaver.delivery.sender import WebhookSender
from palaver.delivery.worker import render
from palaver.domain.clock import Clock
from palaver.domain.retry import RetryPolicy
from palaver.settings import DEFAULT_WEBHOOK_LEASE
from palaver.storage.base import Storage
from palaver.storage.ledger import AttemptResult, DeliveryRecord
from palaver.storage.postgres_ledger import PostgresDeliveryLedger

log = logging.getLogger("palaver.webhooks")

STOP_GRACE = 2.0  # seconds a stopping worker waits for attempts in flight


def worker_name() -> str:
    """Who holds a claim, for operators reading the ledger: host, process, and a unique suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ClaimingDeliveryWorker:
    def __init__(
        self,
        storage: Storage,
        ledger: PostgresDeliveryLedger,
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        allow_private: bool = False,
        concurrency: int = 64,
        poll_interval: float = 0.05,
        flush_interval: float = 0.05,
        take_batch: int = 1000,
        lease: float = DEFAULT_WEBHOOK_LEASE,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._allow_private = allow_private
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._flush_interval = flush_interval
        self._take_batch = take_batch
        self._lease = lease
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self.name = name or worker_name()
        self._secrets = SigningSecrets(storage, clock)
        self._tasks: dict[asyncio.Task[None], list[int]] = {}  # conversations in flight: their delivery ids
        self._unsent: list[int] = []  # claimed, then not sent (behind a retry): released at the next flush
        self._refill = max(1, concurrency // 4)  # free slots worth a claim before the poll interval is up
        self._slots_free = asyncio.Event()
        self._results: list[AttemptResult] = []
        self._flushed_at = float("-inf")

    def sender(self) -> WebhookSender:
        return WebhookSender(
            allow_private=self._allow_private,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_connections=self._concurrency,
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until cancelled or `stop` is set; a failing step is logged, never fatal."""
        stop = stop or asyncio.Event()
        async with self.sender() as sender:
            try:
                while not stop.is_set():
                    busy = False
                    try:
                        busy = await self.step(sender)
                    except Exception:
                        log.exception("webhook delivery step failed")
                    if not busy:
                        await self._pause(stop)
            finally:
                # Attempts in flight may finish, briefly, so their outcome is recorded rather
                # than sent again by another worker when the lease runs out.
                if self._tasks:
                    await asyncio.wait(set(self._tasks), timeout=STOP_GRACE)
                unfinished = dict(self._tasks)
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
                await self.flush()
                # Cut short: another worker may take them at once instead of after the lease.
                await self._ledger.release([i for ids in unfinished.values() for i in ids])

    async def step(self, sender: WebhookSender) -> bool:
        """Take changes, claim and start what is due, record outcomes. True if more may be waiting."""
        taken = await self._ledger.take_outbox(self._take_batch, render)
        free = self._concurrency - len(self._tasks)
        claimed: list[list[DeliveryRecord]] = []
        if free > 0:
            claimed = await self._ledger.claim(self.name, self._clock.now(), self._lease, free)
            for chain in claimed:
                task = asyncio.create_task(self._send_chain(sender, chain))
                self._tasks[task] = [d.delivery_id for d in chain]
                task.add_done_callback(self._forget)
        if self._results and (
            len(self._results) >= self._take_batch or self._clock.now() - self._flushed_at >= self._flush_interval
        ):
            await self.flush()
        return taken >= self._take_batch or (free > 0 and len(claimed) == free)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if self._concurrency - len(self._tasks) >= self._refill:
            self._slots_free.set()

    async def _pause(self, stop: asyncio.Event) -> None:
        """Until the next step: a poll interval, or less when slots free up.

        With every slot taken, a step claims nothing; waiting a whole poll interval
        then capped delivery at one batch of `concurrency` webhooks per interval
        (measured: ~1,000-1,300 a second, docs/performance.md). So a full worker
        goes on as soon as a quarter of its slots are free: claims stay batched,
        and no slot waits long.
        """
        self._slots_free.clear()
        if self._concurrency - len(self._tasks) >= self._refill and self._tasks:
            return
        waiters = [asyncio.ensure_future(stop.wait())]
        if self._tasks:
            waiters.append(asyncio.ensure_future(self._slots_free.wait()))
        try:
            await asyncio.wait(waiters, timeout=self._poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _send_chain(self, sender: WebhookSender, chain: list[DeliveryRecord]) -> None:
        """A conversation's claimed events, one after the other; a retry or an error stops the chain
        (the events behind it stay pending, claimed until recorded or their lease runs out)."""
        for position, delivery in enumerate(chain):
            try:
                secret = await self._secrets.of(delivery.account_id)
                result = await attempt(sender, delivery, secret, self._policy, self._clock)
            except Exception:
                # Not recorded: the claim runs out and the delivery is tried again (same webhook-id).
                log.exception("webhook %s: attempt failed unexpectedly; will try again", delivery.event_id)
                return
            self._results.append(result)
            if result.status == "pending":
                # Behind a retry, nothing may go out: give the rest back now rather than at the lease.
                self._unsent.extend(d.delivery_id for d in chain[position + 1 :])
                return

    async def flush(self) -> int:
        """Record every finished attempt in one transaction (they stay for the next flush if it fails),
        then give back claims of events left unsent."""
        self._flushed_at = self._clock.now()
        batch = self._results[:]
        if batch:
            await self._ledger.record(batch)
            del self._results[: len(batch)]
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            await self._ledger.release(unsent)
        return len(batch)

    async def drain(self, sender: WebhookSender) -> None:
        """Step until nothing is due or in flight, then record everything (for tests and tools)."""
        while True:
            busy = await self.step(sender)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self.flush()
                continue
            await self.flush()
            if not busy and not await self._ledger.has_due_work(self._clock.now()):
                return
