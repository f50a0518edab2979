"""One signed POST of one webhook, and what came of it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from palaver import __version__
from palaver.domain.signing import sign
from palaver.storage.base import DeliveryRecord

USER_AGENT = f"Palaver-Webhooks/{__version__}"
MAX_RESPONSE_BYTES = 64 * 1024  # what a receiver's answer may cost us to read


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None  # None: no HTTP response
    latency_ms: float
    error: str | None = None
    retry_after: float | None = None  # seconds


def headers_for(delivery: DeliveryRecord, secret: str, timestamp: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, delivery.event_id, timestamp, delivery.body),
    }


def parse_retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


async def send(client: httpx.AsyncClient, delivery: DeliveryRecord, secret: str, now: float) -> SendResult:
    """POST the stored body; never follows redirects, reads at most MAX_RESPONSE_BYTES of the answer."""
    started = time.perf_counter()
    try:
        request = client.build_request(
            "POST", delivery.url, content=delivery.body.encode(), headers=headers_for(delivery, secret, int(now))
        )
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        return SendResult(None, (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}")
    latency = (time.perf_counter() - started) * 1000
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return SendResult(response.status_code, latency, error, parse_retry_after(response.headers.get("retry-after"), now))
