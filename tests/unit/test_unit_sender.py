"""The webhook sender and its HTTP/1.1 client against a real HTTP server on 127.0.0.1, and its address guard."""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from palaver.delivery.guard import GuardedResolver, LookupFailed, RefusedTarget
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


def _canned(raw: bytes, *, keep_alive: bool = True) -> Answer:
    """An answer that writes `raw` as is, then keeps the connection or closes it."""

    async def answer(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep_alive

    return answer


_ok = _canned(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nthanks")


async def _redirect(rx: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    location = rx.url("/target").encode()
    return await _canned(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")(
        rx, reader, writer
    )


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
    "/cookie": _canned(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 0\r\n\r\n"),
    "/busy": _canned(b"HTTP/1.1 500 Internal Server Error\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\noops"),
    "/redirect": _redirect,
    "/huge": _huge,
    "/slow": _slow,
    # Answers as if keeping the connection, then closes it: the next request finds it dead.
    "/close-after": _canned(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nthanks", keep_alive=False),
    # No Content-Length, no chunking: the body ends when the connection does.
    "/until-close": _canned(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nsee you", keep_alive=False),
    # An interim answer, then a chunked one; the connection stays usable only if the chunks were framed right.
    "/chunked": _canned(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ),
    "/garbage": _canned(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep_alive=False),
}


class Receiver:
    """A tiny HTTP/1.1 server on 127.0.0.1 that records every connection and request reaching it."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[Request] = []
        self.connections = 0
        self.hung_up = asyncio.Event()  # some connection has ended
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
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
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

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
                method, target, _ = lines[0].split(" ", 2)
                path = target.split("?", 1)[0]
                headers = [(name, value.strip()) for name, value in (line.split(":", 1) for line in lines[1:] if line)]
                length = int({name.lower(): value for name, value in headers}.get("content-length", "0"))
                self.requests.append(Request(method, target, headers, await reader.readexactly(length)))
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
    assert received == headers  # nothing added: no Accept, Accept-Encoding, Cookie, another User-Agent
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
            for path in ("/cookie", "/hook"):  # by name: cookie jars tend to ignore cookies of IP hosts
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
    assert result.error is not None and result.error.startswith("ConnectError: ")


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
        ("localhost", "localhost: resolves to non-public address(es) "),  # a name: GuardedResolver's refusal
    ],
)
def test_private_targets_are_refused_without_a_request(host: str, named: str) -> None:
    """IP literals are refused when the URL is parsed; names when GuardedResolver resolves them."""
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
        ("http://127.1:{port}/hook", "not a canonical IP address"),  # inet_aton reads these as 127.0.0.1
        ("http://2130706433:{port}/hook", "not a canonical IP address"),
        ("http://0x7f.0.0.1:{port}/hook", "not a canonical IP address"),
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


class _FakeDNS:
    """Answers lookups from a script, one answer per call, and counts the calls."""

    def __init__(self, *answers: list[str] | OSError) -> None:
        self.answers, self.calls = list(answers), 0

    async def __call__(self, host: str, port: int) -> list[str]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, OSError):
            raise answer
        return answer


def test_guarded_resolver_keeps_only_public_addresses() -> None:
    dns = _FakeDNS(["10.0.0.7", "93.184.216.34", "169.254.169.254", "2606:2800:220:1::1"])
    resolver = GuardedResolver(allow_private=False, lookup=dns)
    assert asyncio.run(resolver.resolve("mixed.example", 443)) == ["93.184.216.34", "2606:2800:220:1::1"]


def test_guarded_resolver_refuses_a_name_with_only_private_addresses() -> None:
    resolver = GuardedResolver(allow_private=False, lookup=_FakeDNS(["10.0.0.7", "::ffff:127.0.0.1"]))
    with pytest.raises(RefusedTarget) as refused:
        asyncio.run(resolver.resolve("rebound.example", 443))
    assert str(refused.value) == (
        "refused callback target rebound.example: resolves to non-public address(es) 10.0.0.7, ::ffff:127.0.0.1 "
        "(start the server with --allow-private-callbacks to allow them)"
    )


def test_guarded_resolver_keeps_an_answer_for_its_ttl_so_a_second_answer_cannot_rebind() -> None:
    dns = _FakeDNS(["93.184.216.34"], ["127.0.0.1"])

    async def scenario() -> tuple[list[str], list[str], list[str] | str]:
        resolver = GuardedResolver(allow_private=False, ttl=0.2, lookup=dns)
        first = await resolver.resolve("flip.example", 80)
        second = await resolver.resolve("flip.example", 80)  # cached: DNS is not asked again
        await asyncio.sleep(0.25)
        try:
            third: list[str] | str = await resolver.resolve("flip.example", 80)
        except RefusedTarget as exc:
            third = str(exc)
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert first == second == ["93.184.216.34"]
    assert isinstance(third, str) and third.startswith("refused callback target flip.example")
    assert dns.calls == 2


def test_guarded_resolver_reports_lookup_failures_as_retryable_and_does_not_keep_them() -> None:
    dns = _FakeDNS(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), ["93.184.216.34"])
    resolver = GuardedResolver(allow_private=False, lookup=dns)
    with pytest.raises(LookupFailed, match=r"^DNSError: cannot resolve nowhere.example: "):
        asyncio.run(resolver.resolve("nowhere.example", 80))
    assert asyncio.run(resolver.resolve("nowhere.example", 80)) == ["93.184.216.34"]


def test_guarded_resolver_times_out() -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return []

    resolver = GuardedResolver(allow_private=False, timeout=0.1, lookup=hang)
    with pytest.raises(LookupFailed, match=r"^DNSError: no answer for slow.example within 0.1 s"):
        asyncio.run(resolver.resolve("slow.example", 80))


def test_a_name_is_connected_to_by_its_vetted_address_and_sent_as_host() -> None:
    """The sender never hands the name to a connect call: what was vetted is what is reached."""
    _, headers = _headers()
    dns = _FakeDNS(["127.0.0.1"])

    async def scenario() -> tuple[SendResult, Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            sender._resolver = GuardedResolver(allow_private=True, lookup=dns)
            return await sender.send(rx.url("/hook?x=1", "hooks.invalid"), BODY.encode(), headers, NOW), rx

    result, rx = asyncio.run(scenario())
    assert (result.status_code, result.error) == (200, None)
    [seen] = rx.requests
    assert seen.path == "/hook?x=1"
    assert dict((n.lower(), v) for n, v in seen.headers)["host"] == f"hooks.invalid:{rx.port}"
    assert dns.calls == 1


def test_an_unresolvable_name_is_a_retryable_failure() -> None:
    _, headers = _headers()

    async def scenario() -> SendResult:
        async with WebhookSender(allow_private=False) as sender:
            sender._resolver = GuardedResolver(allow_private=False, lookup=_FakeDNS(socket.gaierror(-2, "no such")))
            return await sender.send("https://nowhere.invalid/hook", BODY.encode(), headers, NOW)

    result = asyncio.run(scenario())
    assert (result.status_code, result.refused) == (None, False)
    assert result.error is not None and result.error.startswith("DNSError: cannot resolve nowhere.invalid")


def test_user_info_in_the_url_becomes_basic_credentials() -> None:
    _, headers = _headers()

    async def scenario() -> Receiver:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            url = f"http://hook%40user:s3cr%3At@127.0.0.1:{rx.port}/hook"
            assert (await sender.send(url, BODY.encode(), headers, NOW)).status_code == 200
            return rx

    rx = asyncio.run(scenario())
    received = {name.lower(): value for name, value in rx.requests[0].headers}
    assert received["authorization"] == "Basic " + base64.b64encode(b"hook@user:s3cr:t").decode()
    assert received["host"] == f"127.0.0.1:{rx.port}"


def test_a_keep_alive_connection_closed_by_the_receiver_is_replaced_without_a_failure() -> None:
    _, headers = _headers()

    async def scenario() -> tuple[list[SendResult], Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            first = await sender.send(rx.url("/close-after"), BODY.encode(), headers, NOW)
            await asyncio.wait_for(rx.hung_up.wait(), 1.0)
            second = await sender.send(rx.url("/hook"), BODY.encode(), headers, NOW)
            return [first, second], rx

    results, rx = asyncio.run(scenario())
    assert [(r.status_code, r.error) for r in results] == [(200, None), (200, None)]
    assert (len(rx.requests), rx.connections) == (2, 2)


@pytest.mark.parametrize(("path", "status", "connections"), [("/until-close", 202, 2), ("/chunked", 201, 1)])
def test_answers_framed_by_close_or_chunks_and_interim_answers(path: str, status: int, connections: int) -> None:
    """A chunked answer read to its end leaves the connection reusable; one framed by close does not."""
    _, headers = _headers()

    async def scenario() -> tuple[list[SendResult], Receiver]:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            return [await sender.send(rx.url(p), BODY.encode(), headers, NOW) for p in (path, "/hook")], rx

    results, rx = asyncio.run(scenario())
    assert [(r.status_code, r.error) for r in results] == [(status, None), (200, None)]
    assert rx.connections == connections


def test_a_garbled_answer_is_a_retryable_failure() -> None:
    _, headers = _headers()

    async def scenario() -> SendResult:
        async with Receiver() as rx, WebhookSender(allow_private=True) as sender:
            return await sender.send(rx.url("/garbage"), BODY.encode(), headers, NOW)

    result = asyncio.run(scenario())
    assert (result.status_code, result.refused) == (None, False)
    assert result.error is not None and result.error.startswith("ProtocolError: malformed HTTP answer"), result.error


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_https_verifies_the_certificate_against_the_name_not_the_address(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    _, headers = _headers()

    async def scenario() -> tuple[SendResult, SendResult, Receiver]:
        async with Receiver(tls=server_tls) as rx:
            trusting = ssl.create_default_context(cafile=str(cert))
            async with WebhookSender(allow_private=True, ssl_context=trusting) as sender:
                good = await sender.send(rx.url("/hook", "localhost"), BODY.encode(), headers, NOW)
            async with WebhookSender(allow_private=True) as sender:  # the system's CAs don't know this certificate
                bad = await sender.send(rx.url("/hook", "localhost"), BODY.encode(), headers, NOW)
            return good, bad, rx

    good, bad, rx = asyncio.run(scenario())
    assert (good.status_code, good.error) == (200, None)
    assert bad.status_code is None and bad.error is not None and "CERTIFICATE_VERIFY_FAILED" in bad.error
    assert len(rx.requests) == 1


def test_idle_connections_are_closed_after_their_idle_time_whatever_the_origin() -> None:
    _, headers = _headers()

    async def scenario() -> tuple[list[SendResult], Receiver, Receiver, bool]:
        async with Receiver() as a, Receiver() as b, WebhookSender(allow_private=True) as sender:
            sender._pool._idle_seconds = 0.1
            first = await sender.send(a.url("/hook"), BODY.encode(), headers, NOW)
            await asyncio.sleep(0.15)
            second = await sender.send(b.url("/hook"), BODY.encode(), headers, NOW)  # sweeps a's idle connection
            try:
                await asyncio.wait_for(a.hung_up.wait(), 1.0)
            except TimeoutError:
                return [first, second], a, b, False
            return [first, second], a, b, True

    results, a, b, a_closed = asyncio.run(scenario())
    assert [r.status_code for r in results] == [200, 200]
    assert a_closed
