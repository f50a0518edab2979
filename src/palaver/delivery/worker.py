"""The outbox worker: sends what storage says is due, records every attempt.

It keeps nothing that matters in memory: the outbox rows are the queue, so a
crash or restart resumes where the database says. Events of one conversation
go out one at a time, in order (storage only offers the first pending one of
each conversation); different conversations go out in parallel, up to
`concurrency` at once, without ever blocking request handling.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from palaver.delivery.guard import RefusedTarget, check_target
from palaver.delivery.sender import SendResult, send
from palaver.domain.clock import Clock
from palaver.domain.retry import DeliveryStatus, RetryPolicy, decide
from palaver.metrics import observe_attempt
from palaver.storage.base import AttemptRecord, DeliveryRecord, Storage

log = logging.getLogger("palaver.webhooks")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# An attempt's outcome in palaver_webhook_attempts_total, from the delivery's resulting status.
_OUTCOMES = {DeliveryStatus.DELIVERED: "delivered", DeliveryStatus.PENDING: "retry", DeliveryStatus.FAILED: "failed"}


class DeliveryWorker:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        allow_private: bool = False,
        concurrency: int = 32,
        poll_interval: float = 0.05,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._allow_private = allow_private
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._busy_conversations: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self._concurrency * 2),
            trust_env=False,  # no proxies from the environment: targets are checked as given
        )

    async def run(self) -> None:
        """Dispatch until cancelled; a failing tick is logged, never fatal."""
        async with self.client() as client:
            try:
                while True:
                    try:
                        await self.dispatch(client)
                    except Exception:
                        log.exception("webhook dispatch failed")
                    await asyncio.sleep(self._poll_interval)
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def dispatch(self, client: httpx.AsyncClient) -> int:
        """Start sending what is due (not already in flight); returns how many were started."""
        free = self._concurrency - len(self._tasks)
        if free <= 0:
            return 0
        started = 0
        for delivery in await self._storage.due_deliveries(self._clock.now(), free + len(self._busy_conversations)):
            if started >= free:
                break
            if delivery.conversation_id in self._busy_conversations:
                continue
            self._busy_conversations.add(delivery.conversation_id)
            task = asyncio.create_task(self._deliver(client, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def drain(self, client: httpx.AsyncClient) -> None:
        """Dispatch and wait until nothing due is left (tests and shutdown)."""
        while await self.dispatch(client) or self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(self, client: httpx.AsyncClient, delivery: DeliveryRecord) -> None:
        try:
            now = self._clock.now()
            refused = False
            try:
                await check_target(delivery.url, allow_private=self._allow_private)
                secret = await self._storage.webhook_secret(delivery.account_id)
                result = await send(client, delivery, secret, now)
            except RefusedTarget as exc:
                refused = True
                result = SendResult(None, 0.0, str(exc))
            decision = decide(
                self._policy,
                attempts=delivery.attempts + 1,
                status_code=result.status_code,
                now=self._clock.now(),
                created_at=delivery.created_epoch,
                retry_after=result.retry_after,
            )
            status = DeliveryStatus.FAILED if refused else decision.status
            attempt = AttemptRecord(delivery.delivery_id, 0, now, result.status_code, result.latency_ms, result.error)
            await self._storage.record_attempt(attempt, status, decision.next_attempt_at)
            observe_attempt(_OUTCOMES[status], None if refused else result.latency_ms / 1000)
            if status is DeliveryStatus.FAILED:
                log.warning("webhook %s to %s failed for good: %s", delivery.event_id, delivery.url, result.error)
        except Exception:
            log.exception("webhook %s: attempt could not be recorded", delivery.event_id)
        finally:
            self._busy_conversations.discard(delivery.conversation_id)
