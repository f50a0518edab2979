"""Downloading what API clients point Palaver at, under the private-address guard.

Training footage, knowledge documents and (later) LLM endpoints are URLs chosen
by API clients. Like webhook targets (delivery/guard.py), every address Palaver
connects to for them must be public unless the operator allows private ones.
The check sits in the connection layer: an httpx client whose transport
resolves each host through `GuardedResolver` and connects only to the addresses
it vetted, so redirects, retries and keep-alive connections are all covered and
a second DNS answer never comes into it. TLS still verifies the certificate for
the host name of the URL.

`fetch` adds what a download needs: a size cap enforced while streaming (not
trusted from Content-Length), an overall time limit, and a bounded number of
redirects, each checked again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from palaver.delivery.guard import GuardedResolver, LookupFailed, RefusedTarget, parse_target

USER_AGENT = "Palaver (self-hosted Tavus API)"
MAX_REDIRECTS = 5


class FetchFailed(Exception):
    """The URL could not be fetched: refused, unreachable, an HTTP error, too large or too slow.

    `reason` is one of: refused, unreachable, http_error, too_large, timeout.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # after redirects
    status: int
    content_type: str  # the media type alone, lower-case ("" when absent)
    content: bytes


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with every host name resolved through the guard first."""

    def __init__(self, resolver: GuardedResolver) -> None:
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolver.resolve(host, port)
        except (RefusedTarget, LookupFailed) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address to connect to for {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(*, allow_private: bool, timeout: float | httpx.Timeout = 30.0, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that connects only where the guard allows (no proxies from the environment)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its httpcore pool itself; only the pool's network layer is swapped for the guarded one.
    transport._pool._network_backend = GuardedBackend(GuardedResolver(allow_private=allow_private))
    headers = {"user-agent": USER_AGENT, **kwargs.pop("headers", {})}
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False, headers=headers, **kwargs)


async def fetch(url: str, *, allow_private: bool, max_bytes: int, timeout: float = 60.0) -> Fetched:
    """GET `url` (following up to MAX_REDIRECTS redirects, each checked), at most `max_bytes` of body."""
    try:
        async with asyncio.timeout(timeout), guarded_client(allow_private=allow_private, timeout=timeout) as client:
            for _ in range(MAX_REDIRECTS + 1):
                _check(url, allow_private)
                async with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code >= 400:
                        raise FetchFailed("http_error", f"{url} answered HTTP {response.status_code}")
                    content = await _read_capped(response, max_bytes, url)
                    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                    return Fetched(str(response.url), response.status_code, media_type, content)
            raise FetchFailed("http_error", f"{url}: more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise FetchFailed("timeout", f"{url}: not fetched within {timeout:g} s") from None
    except httpx.TimeoutException:
        raise FetchFailed("timeout", f"{url}: timed out") from None
    except httpx.ConnectError as exc:
        reason = "refused" if "non-public" in str(exc) else "unreachable"
        raise FetchFailed(reason, str(exc).replace("refused callback target", "refused target")) from None
    except httpx.HTTPError as exc:
        raise FetchFailed("unreachable", f"{url}: {exc}") from None


def _check(url: str, allow_private: bool) -> None:
    try:
        parse_target(url, allow_private=allow_private)
    except RefusedTarget as exc:
        raise FetchFailed("refused", str(exc).replace("refused callback target", "refused target")) from None


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed("too_large", f"{url}: {int(declared)} bytes, over the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed("too_large", f"{url}: over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
