"""The aiohttp webhook sender against a real HTTP server on 127.0.0.1, and its address guard."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks.webhooks import Webhook

from palaver.delivery.guard import GuardedResolver, RefusedTarget
from palaver.delivery.sender import MAX_RESPONSE_BYTES, USER_AGENT, SendResult, WebhookSender, headers_for
from palaver.domain.signing import new_secret

NOW = 1_700_000_000.0
BODY = '{"event_type":"system.shutdown","conversation_id":"c1"}'
HUGE = 10 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


Answer = Callable[["Receiver", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]  # True: keep-alive


async def _ok(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nthanks")
    await writer.drain()
    return True


async def _cookie(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return True


async def _busy(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\noops")
    await writer.drain()
    return True


async def _redirect(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    location = rx.url("/target").encode()
    writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return True


async def _huge(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    # Announces 10 MB but sends only 1 MB of it, then waits: a sender that read past its cap would sit
    # here until its read timeout; one that stops at the cap returns at once and hangs up.
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE)
    try:
        writer.write(b"x" * (1024 * 1024))
        await writer.drain()
        await reader.read()
    except ConnectionError:
        pass
    return False


async def _slow(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(5)
    return await _ok(rx, reader, writer)


ANSWERS: dict[str, Answer] = {
    "/hook": _ok,
    "/target": _ok,
    "/cookie": _cookie,
    "/busy": _busy,
    "/redirect": _redirect,
    "/huge": _huge,
    "/slow": _slow,
}


class Receiver:
    """A tiny HTTP/1.1 server on 127.0.0.1 that records every connection and request reaching it."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.connections = 0
        self.hung_up = asyncio.Event()  # some connection has ended
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = [(name, value.strip()) for name, value in (line.split(":", 1) for line in lines[1:] if line)]
                length = int({name.lower(): value for name, value in headers}.get("content-length", "0"))
                self.requests.append(Request(method, path, headers, await reader.readexactly(length)))
                if not await ANSWERS[path](self, reader, writer):
                    return
        finally:
            self._tasks.discard(task)
            writer.close()
            self.hung_up.set()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _headers(now: float = NOW) -> tuple[str, dict[str, str]]:
    secret = new_secret()
    return secret, headers_for("c1.system.shutdown", BODY, secret, int(now))


def test_2xx_is_delivered_with_exactly_our_headers_and_body() -> None:
    secret, headers = _headers(time.time())  # the verifying library checks the timestamp against its clock

    async def scenario() -> tuple[SendResult, Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            return await sender.send(rx.url("/hook"), BODY.encode(), headers, NOW), rx

    result, rx = asyncio.run(scenario())
    assert result.status_code == 200 and result.error is None and result.retry_after is None
    assert not result.refused and result.latency_ms > 0
    [seen] = rx.requests
    assert (seen.method, seen.path, seen.body) == ("POST", "/hook", BODY.encode())
    names = [name.lower() for name, _ in seen.headers]
    assert len(names) == len(set(names)), seen.headers
    received = {name.lower(): value for name, value in seen.headers}
    assert received.pop("host") == f"127.0.0.1:{rx.port}"
    assert received.pop("content-length") == str(len(BODY.encode()))
    assert received == headers  # nothing added: no Accept, Accept-Encoding, Cookie, aiohttp User-Agent
    assert received["user-agent"] == USER_AGENT
    assert Webhook(secret).verify(seen.body, received) == {"event_type": "system.shutdown", "conversation_id": "c1"}


def test_connections_are_kept_alive_and_reused() -> None:
    _, headers = _headers()

    async def scenario() -> tuple[list[SendResult], Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            return [await sender.send(rx.url("/hook"), BODY.encode(), headers, NOW) for _ in range(3)], rx

    results, rx = asyncio.run(scenario())
    assert [r.status_code for r in results] == [200, 200, 200]
    assert (len(rx.requests), rx.connections) == (3, 1)


def test_cookies_are_not_kept() -> None:
    _, headers = _headers()

    async def scenario() -> Receiver:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            for path in ("/cookie", "/hook"):  # by name: aiohttp's default jar ignores cookies of IP hosts
                assert (await sender.send(rx.url(path, "localhost"), BODY.encode(), headers, NOW)).status_code == 200
            return rx

    rx = asyncio.run(scenario())
    assert [name.lower() for name, _ in rx.requests[1].headers if name.lower() == "cookie"] == []


def test_5xx_with_retry_after() -> None:
    _, headers = _headers()

    async def scenario() -> SendResult:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            return await sender.send(rx.url("/busy"), BODY.encode(), headers, NOW)

    result = asyncio.run(scenario())
    assert (result.status_code, result.error, result.retry_after, result.refused) == (500, "HTTP 500", 7.0, False)


def test_redirect_is_not_followed() -> None:
    _, headers = _headers()

    async def scenario() -> tuple[SendResult, Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            result = await sender.send(rx.url("/redirect"), BODY.encode(), headers, NOW)
            await asyncio.sleep(0.05)  # room for a (wrong) follow-up request to arrive
            return result, rx

    result, rx = asyncio.run(scenario())
    assert (result.status_code, result.error) == (302, "HTTP 302")
    assert [r.path for r in rx.requests] == ["/redirect"]


def test_huge_answer_is_read_only_up_to_the_cap_then_the_connection_is_dropped() -> None:
    _, headers = _headers()
    assert MAX_RESPONSE_BYTES < 1024 * 1024  # what _huge sends before stalling

    async def scenario() -> tuple[SendResult, float, bool]:
        async with Receiver() as rx, WebhookSender(allow_private=True, read_timeout=3.0) as sender:
            started = time.perf_counter()
            result = await sender.send(rx.url("/huge"), BODY.encode(), headers, NOW)
            elapsed = time.perf_counter() - started
            try:
                await asyncio.wait_for(rx.hung_up.wait(), 1.0)  # not kept for reuse with 9 MB unread
            except TimeoutError:
                return result, elapsed, False
            return result, elapsed, True

    result, elapsed, hung_up = asyncio.run(scenario())
    assert (result.status_code, result.error) == (200, None)
    assert elapsed < 1.0
    assert hung_up


def test_connection_refused() -> None:
    _, headers = _headers()

    async def scenario() -> SendResult:
        async with WebhookSender(allow_private=True) as sender:
            return await sender.send(f"http://127.0.0.1:{_closed_port()}/hook", BODY.encode(), headers, NOW)

    result = asyncio.run(scenario())
    assert result.status_code is None and not result.refused
    assert result.error is not None and result.error.startswith("ClientConnectorError: ")


def test_read_timeout() -> None:
    _, headers = _headers()

    async def scenario() -> SendResult:
        async with Receiver() as rx, WebhookSender(allow_private=True, read_timeout=0.2) as sender:
            return await sender.send(rx.url("/slow"), BODY.encode(), headers, NOW)

    result = asyncio.run(scenario())
    assert result.status_code is None and not result.refused
    assert result.error is not None and "timeout" in result.error.lower(), result.error
    assert 150 < result.latency_ms < 2000


@pytest.mark.parametrize(
    ("host", "named"),
    [
        ("127.0.0.1", "127.0.0.1: resolves to non-public address(es) 127.0.0.1 "),
        ("[::1]", "::1: resolves to non-public address(es) ::1 "),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1: resolves to non-public address(es) ::ffff:7f00:1 "),
        ("localhost", "localhost: resolves to non-public address(es) 127.0.0.1"),  # a name: GuardedResolver's refusal
    ],
)
def test_private_targets_are_refused_without_a_request(host: str, named: str) -> None:
    """IP literals are refused before the request; names by GuardedResolver inside aiohttp's connector."""
    _, headers = _headers()

    async def scenario() -> tuple[SendResult, Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=False) as sender:
            return await sender.send(rx.url("/hook", host), BODY.encode(), headers, NOW), rx

    result, rx = asyncio.run(scenario())
    assert (result.status_code, result.latency_ms, result.refused) == (None, 0.0, True)
    assert result.error is not None and result.error.startswith(f"refused callback target {named}"), result.error
    assert result.error.endswith("(start the server with --allow-private-callbacks to allow them)")
    assert (rx.connections, rx.requests) == (0, [])


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1:{port}/hook", "not an http(s) URL"),
        ("ws://127.0.0.1:{port}/hook", "not an http(s) URL"),
        ("http:///hook", "not an http(s) URL"),
        ("http://127.1:{port}/hook", "not a canonical IP address"),  # aiohttp skips the resolver for these
        ("http://2130706433:{port}/hook", "not a canonical IP address"),
    ],
)
def test_unusable_urls_are_refused_whatever_the_flag(url: str, why: str, allow_private: bool) -> None:
    _, headers = _headers()

    async def scenario() -> tuple[SendResult, Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=allow_private) as sender:
            return await sender.send(url.format(port=rx.port), BODY.encode(), headers, NOW), rx

    result, rx = asyncio.run(scenario())
    assert (result.status_code, result.refused) == (None, True)
    assert result.error is not None and result.error.startswith(why), result.error
    assert rx.connections == 0


def test_allow_private_reaches_loopback_by_address_and_by_name() -> None:
    _, headers = _headers()

    async def scenario() -> tuple[list[SendResult], Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            urls = [rx.url("/hook"), rx.url("/hook", "localhost")]
            return [await sender.send(url, BODY.encode(), headers, NOW) for url in urls], rx

    results, rx = asyncio.run(scenario())
    assert [(r.status_code, r.error, r.refused) for r in results] == [(200, None, False)] * 2
    assert len(rx.requests) == 2


class _FakeResolver(AbstractResolver):
    def __init__(self, *addresses: str, error: OSError | None = None) -> None:
        self.addresses, self.error, self.closed = addresses, error, False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self.error is not None:
            raise self.error
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


def test_guarded_resolver_keeps_only_public_addresses() -> None:
    resolver = GuardedResolver(_FakeResolver("10.0.0.7", "93.184.216.34", "169.254.169.254", "2606:2800:220:1::1"))
    results = asyncio.run(resolver.resolve("mixed.example", 443))
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::1"]


def test_guarded_resolver_refuses_a_name_with_only_private_addresses() -> None:
    resolver = GuardedResolver(_FakeResolver("10.0.0.7", "::ffff:127.0.0.1", "10.0.0.7"))
    with pytest.raises(RefusedTarget) as refused:
        asyncio.run(resolver.resolve("rebound.example", 443))
    assert isinstance(refused.value, OSError)  # what aiohttp's connector wraps instead of letting it escape
    assert str(refused.value) == (
        "refused callback target rebound.example: resolves to non-public address(es) 10.0.0.7, ::ffff:127.0.0.1 "
        "(start the server with --allow-private-callbacks to allow them)"
    )


def test_guarded_resolver_passes_lookup_failures_through_and_closes_the_inner_resolver() -> None:
    inner = _FakeResolver(error=socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    resolver = GuardedResolver(inner)
    with pytest.raises(socket.gaierror):
        asyncio.run(resolver.resolve("nowhere.invalid", 80))
    asyncio.run(resolver.close())
    assert inner.closed
