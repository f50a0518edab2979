"""When to try a webhook again, and when to give up.

Network errors, timeouts, 408, 429 and 5xx are worth retrying; any other 4xx
will fail the same way every time, so it stops at once. Delays grow
exponentially with jitter (so a receiver coming back is not hit by every
sender at the same instant), never shorter than the receiver's `Retry-After`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

RETRYABLE_STATUS = frozenset({408, 429})


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# What an attempt is counted as (palaver_webhook_attempts_total), from the status it leaves its delivery in.
ATTEMPT_OUTCOMES = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retry",
    DeliveryStatus.FAILED: "failed",
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    max_age: float = 86_400.0  # seconds since the event was recorded
    base_delay: float = 1.0
    max_delay: float = 300.0


@dataclass(frozen=True, slots=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: float | None = None  # epoch seconds, for PENDING


def is_retryable(status_code: int | None) -> bool:
    """None stands for a network error or timeout."""
    return status_code is None or status_code in RETRYABLE_STATUS or status_code >= 500


def decide(
    policy: RetryPolicy,
    *,
    attempts: int,
    status_code: int | None,
    now: float,
    created_at: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """The state after attempt number `attempts` (1-based) ended with `status_code`."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(DeliveryStatus.DELIVERED)
    if not is_retryable(status_code) or attempts >= policy.max_attempts:
        return Decision(DeliveryStatus.FAILED)
    delay = min(policy.max_delay, policy.base_delay * 2 ** (attempts - 1))
    delay *= (rng or random).uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_age))
    next_at = now + delay
    if next_at - created_at > policy.max_age:
        return Decision(DeliveryStatus.FAILED)
    return Decision(DeliveryStatus.PENDING, next_at)
