"""Webhook rules without a network: retry decisions, signatures, refused targets."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from palaver.delivery.guard import GuardedResolver, RefusedTarget, parse_target
from palaver.delivery.sender import parse_retry_after
from palaver.domain.retry import DeliveryStatus, RetryPolicy, decide, is_retryable
from palaver.domain.signing import new_secret, sign

POLICY = RetryPolicy(max_attempts=5, max_age=3600, base_delay=1.0, max_delay=60.0)
T0 = 1_000_000.0


@pytest.mark.parametrize("code", [None, 408, 429, 500, 502, 503, 599])
def test_retryable(code: int | None) -> None:
    assert is_retryable(code)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 422])
def test_plain_4xx_fails_at_once(code: int) -> None:
    assert not is_retryable(code)
    assert decide(POLICY, attempts=1, status_code=code, now=T0, created_at=T0).status is DeliveryStatus.FAILED


def test_2xx_is_delivered() -> None:
    assert decide(POLICY, attempts=3, status_code=204, now=T0, created_at=T0).status is DeliveryStatus.DELIVERED


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    delays = [
        decide(POLICY, attempts=n, status_code=503, now=T0, created_at=T0, rng=rng).next_attempt_at - T0
        for n in range(1, 5)
    ]
    for n, delay in enumerate(delays, start=1):
        full = min(60.0, 2 ** (n - 1))
        assert full * 0.5 <= delay <= full
    capped = decide(RetryPolicy(max_attempts=50, max_delay=60.0), attempts=30, status_code=None, now=T0, created_at=T0)
    assert capped.next_attempt_at is not None and capped.next_attempt_at - T0 <= 60.0


def test_retry_after_is_respected() -> None:
    d = decide(POLICY, attempts=1, status_code=429, now=T0, created_at=T0, retry_after=30)
    assert d.status is DeliveryStatus.PENDING and d.next_attempt_at is not None and d.next_attempt_at >= T0 + 30


def test_gives_up_after_max_attempts_and_max_age() -> None:
    assert decide(POLICY, attempts=5, status_code=500, now=T0, created_at=T0).status is DeliveryStatus.FAILED
    old = decide(POLICY, attempts=2, status_code=500, now=T0 + 3599.5, created_at=T0)
    assert old.status is DeliveryStatus.FAILED


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7", T0) == 7.0
    assert parse_retry_after(None, T0) is None and parse_retry_after("soon", T0) is None
    when = datetime.fromtimestamp(T0 + 120, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(when, T0) == pytest.approx(120, abs=1)


def test_signature_is_what_the_standard_webhooks_library_expects() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = '{"event_type":"system.shutdown"}'
    ts = int(datetime.now(UTC).timestamp())
    headers = {"webhook-id": "c1.system.shutdown", "webhook-timestamp": str(ts)}
    ours = sign(secret, "c1.system.shutdown", ts, body)
    assert ours == Webhook(secret).sign("c1.system.shutdown", datetime.fromtimestamp(ts, UTC), body)
    assert Webhook(secret).verify(body, {**headers, "webhook-signature": ours}) == {"event_type": "system.shutdown"}
    assert sign(new_secret(), "c1.system.shutdown", ts, body) != ours


async def check_target(url: str, *, allow_private: bool) -> None:
    """What the sender does before connecting: parse the URL, then resolve and vet a name."""
    target = parse_target(url, allow_private=allow_private)
    if not target.is_address:
        await GuardedResolver(allow_private=allow_private).resolve(target.host, target.port)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10:8080/hook",
        "http://172.16.5.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://localhost/hook",
    ],
)
def test_private_targets_are_refused(url: str) -> None:
    with pytest.raises(RefusedTarget, match="allow-private-callbacks"):
        asyncio.run(check_target(url, allow_private=False))
    asyncio.run(check_target(url, allow_private=True))  # the operator's flag allows them


def test_public_address_literal_is_allowed() -> None:
    asyncio.run(check_target("https://93.184.216.34/hook", allow_private=False))
