"""What both delivery workers do with one webhook: sign it, send it, decide what comes next.

The SQLite worker (delivery/worker.py) and the PostgreSQL one (delivery/claiming.py)
differ in how they find work, not in what one attempt is.
"""

from __future__ import annotations

import logging

from palaver.delivery.sender import WebhookSender, headers_for
from palaver.domain.clock import Clock
from palaver.domain.retry import ATTEMPT_OUTCOMES, DeliveryStatus, RetryPolicy, decide
from palaver.storage.base import Storage
from palaver.storage.ledger import AttemptRecord, AttemptResult, DeliveryRecord

log = logging.getLogger("palaver.webhooks")

SECRETS_TTL = 1.0  # seconds: a rotated signing secret is used from at most this long after rotation


class SigningSecrets:
    """Every account's signing secret, read again at most every SECRETS_TTL seconds."""

    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._secrets: dict[str, str] = {}
        self._read_at = float("-inf")

    async def of(self, account_id: str) -> str:
        now = self._clock.now()
        if account_id not in self._secrets or now - self._read_at > SECRETS_TTL:
            self._secrets = await self._storage.webhook_secrets()
            self._read_at = now
        return self._secrets[account_id]


async def attempt(
    sender: WebhookSender, delivery: DeliveryRecord, secret: str, policy: RetryPolicy, clock: Clock
) -> AttemptResult:
    """One signed POST of `delivery`, and the state it leaves the delivery in."""
    now = clock.now()
    headers = headers_for(delivery.event_id, delivery.body, secret, int(now))
    result = await sender.send(delivery.url, delivery.body.encode(), headers, now)
    decision = decide(
        policy,
        attempts=delivery.attempts + 1,
        status_code=result.status_code,
        now=clock.now(),
        created_at=delivery.created_epoch,
        retry_after=result.retry_after,
    )
    status = DeliveryStatus.FAILED if result.refused else decision.status
    if status is DeliveryStatus.FAILED:
        log.warning("webhook %s to %s failed for good: %s", delivery.event_id, delivery.url, result.error)
    record = AttemptRecord(delivery.delivery_id, 0, now, result.status_code, result.latency_ms, result.error)
    next_at = decision.next_attempt_at if status is DeliveryStatus.PENDING else None
    return AttemptResult(record, status.value, next_at, ATTEMPT_OUTCOMES[status])
