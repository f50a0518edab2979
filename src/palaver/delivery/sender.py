"""One signed POST of one webhook, and what came of it.

The request goes out through Palaver's own small HTTP/1.1 client
(delivery/http1.py; why not httpx or aiohttp is explained there), to an address
the guard has vetted (delivery/guard.py). One `WebhookSender` (one keep-alive
pool, one resolver cache) lives as long as the delivery worker.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache

from palaver import __version__
from palaver.delivery.guard import GuardedResolver, LookupFailed, RefusedTarget, Target, parse_target
from palaver.delivery.http1 import Answer, ConnectError, Http1Pool, HTTPError, Origin
from palaver.domain.signing import sign

USER_AGENT = f"Palaver-Webhooks/{__version__}"
MAX_RESPONSE_BYTES = 64 * 1024  # what a receiver's answer may cost us to read
DNS_CACHE_SECONDS = 5.0  # short: a receiver's DNS change should take effect soon


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None  # None: no HTTP response
    latency_ms: float
    error: str | None = None
    retry_after: float | None = None  # seconds
    refused: bool = False  # the address guard refused the target: final, no request was made


def headers_for(event_id: str, body: str, secret: str, timestamp: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event_id, timestamp, body),
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


@lru_cache(maxsize=4096)
def _vetted(url: str, allow_private: bool) -> Target | str:
    """`parse_target` remembered per URL (a conversation's events share one callback_url): the target, or why not."""
    try:
        return parse_target(url, allow_private=allow_private)
    except RefusedTarget as exc:
        return str(exc)


def _request(target: Target, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {target.request_target} HTTP/1.1", f"host: {target.host_header}", f"content-length: {len(body)}"]
    if target.authorization is not None:
        lines.append(f"authorization: {target.authorization}")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


class WebhookSender:
    """Owns the keep-alive pool and the resolver for the delivery worker's lifetime.

    With `allow_private=False`, IP-literal targets are checked when the URL is parsed
    and host names when they are resolved; the connection goes to a checked address.
    No proxies, no cookies, no redirects followed, no headers but ours (plus Host,
    Content-Length, and Authorization when the URL carries user info).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_connections: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = GuardedResolver(allow_private=allow_private, ttl=DNS_CACHE_SECONDS, timeout=connect_timeout)
        self._pool = Http1Pool(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            max_response_bytes=MAX_RESPONSE_BYTES,
            ssl_context=ssl_context,
        )

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pool.close()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str], now: float) -> SendResult:
        """POST `body` with exactly `headers`; never follows redirects, reads at most MAX_RESPONSE_BYTES."""
        target = _vetted(url, self._allow_private)
        if isinstance(target, str):
            return SendResult(None, 0.0, target, refused=True)
        started = time.perf_counter()
        try:
            if target.is_address:
                addresses = [target.host]
            else:
                addresses = await self._resolver.resolve(target.host, target.port)
        except RefusedTarget as exc:
            return SendResult(None, 0.0, str(exc), refused=True)
        except LookupFailed as exc:
            return SendResult(None, (time.perf_counter() - started) * 1000, str(exc))
        payload = _request(target, body, headers)
        try:
            answer = await self._post(target, addresses, payload)
        except HTTPError as exc:
            return SendResult(None, (time.perf_counter() - started) * 1000, str(exc))
        latency = (time.perf_counter() - started) * 1000
        status = answer.status
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return SendResult(status, latency, error, parse_retry_after(answer.retry_after, now))

    async def _post(self, target: Target, addresses: list[str], payload: bytes) -> Answer:
        """Try the addresses in the resolver's order until one connects."""
        for address in addresses[:-1]:
            try:
                return await self._pool.post(Origin(target.scheme, address, target.port, target.host), payload)
            except ConnectError:
                continue
        return await self._pool.post(Origin(target.scheme, addresses[-1], target.port, target.host), payload)
