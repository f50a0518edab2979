"""The HTTP/1.1 client the delivery worker sends webhooks with: POST, read the status, keep the connection.

Why not aiohttp or httpx: a webhook is one small POST whose answer only matters
for its status line and Retry-After, and the worker sends tens of thousands a
second on the same cores as the API. Measured on this project's machine, an
httpx POST cost ~450 µs of CPU, an aiohttp one ~56–64 µs, a whole send with
this client ~20 µs (docs/performance.md): with either library, the delivery
worker alone used more CPU per webhook than the API spends on an end. Parsing responses, the
part worth a library, is httptools (llhttp, the parser uvicorn serves with);
what is left here is writing one request, a keep-alive pool and timeouts.

It connects to an address it is given, never to a name: the caller resolves
and vets the name first (delivery/guard.py), so what was checked is what is
connected to. It never follows redirects and reads at most `max_response_bytes`
of a body; a connection with an unread rest is closed, not reused.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools


class HTTPError(Exception):
    """No usable HTTP answer: a failed connect, a timeout, a dropped or garbled response."""


class ConnectError(HTTPError):
    pass


class ReadTimeout(HTTPError):
    pass


class ProtocolError(HTTPError):
    pass


@dataclass(frozen=True, slots=True)
class Origin:
    """Where to connect: a vetted address, plus the name TLS verifies and `Host` carries."""

    scheme: str  # "http" or "https"
    address: str  # an IP address, never a name
    port: int
    server_name: str  # for TLS: SNI and certificate check


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None


class _Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_response_bytes: int) -> None:
        self._loop = loop
        self._max_body = max_response_bytes
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._status = 0
        self._retry_after: str | None = None
        self._body_bytes = 0
        self._received_any = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0

    # -- the request -------------------------------------------------------------------

    async def request(self, payload: bytes, read_timeout: float) -> Answer:
        assert self.transport is not None
        self._waiter = self._loop.create_future()
        self._status, self._retry_after, self._body_bytes, self._received_any = 0, None, 0, False
        self._read_timeout = read_timeout
        self._last_read = self._loop.time()
        self._timer = self._loop.call_at(self._last_read + read_timeout, self._check_timeout)
        self.transport.write(payload)
        try:
            return await self._waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    @property
    def received_any(self) -> bool:
        """Whether any byte of an answer arrived (if not, a dead keep-alive connection may be why)."""
        return self._received_any

    def _finish(self, answer: Answer | None = None, error: HTTPError | None = None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if error is not None:
            waiter.set_exception(error)
        else:
            assert answer is not None
            waiter.set_result(answer)

    def _check_timeout(self) -> None:
        """One timer per request, moved on rather than re-armed per read: reads are often many, timeouts rare."""
        self._timer = None
        quiet_until = self._last_read + self._read_timeout
        if self._loop.time() < quiet_until:
            self._timer = self._loop.call_at(quiet_until, self._check_timeout)
            return
        self.close()
        self._finish(error=ReadTimeout(f"ReadTimeout: no answer within {self._read_timeout:g} s"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self.closed:
            self.close()  # bytes nobody asked for: the connection's framing can't be trusted any more
            return
        self._received_any = True
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.close()
            self._finish(error=ProtocolError("ProtocolError: the receiver switched protocols"))
        except httptools.HttpParserError as exc:
            self.close()
            self._finish(error=ProtocolError(f"ProtocolError: malformed HTTP answer ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._status >= 200:
            # Headers arrived and the body ended with the connection (no length given): the status stands.
            self._finish(Answer(self._status, self._retry_after))
        else:
            self._finish(error=ProtocolError("ServerDisconnected: the connection closed before an answer"))

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry_after = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            # Enough: the status is known, the rest is not worth reading. The connection
            # can't be reused with a body half read, so it goes.
            self._finish(Answer(self._status, self._retry_after))
            self.close()

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            self._status, self._retry_after = 0, None  # an interim answer (100 Continue): the real one follows
            return
        if not self._parser.should_keep_alive():
            self.close()
        self._finish(Answer(self._status, self._retry_after))


class Http1Pool:
    """Keep-alive connections per origin, at most `max_connections` open in all.

    Idle connections are reused newest first and dropped after `idle_seconds`,
    under the keep-alive timeouts of common servers (uvicorn 5 s, nginx 75 s),
    so a request rarely meets a connection the receiver has just closed. When
    one does (the connection dies before a byte of the answer), the request is
    sent again once on a new connection: webhooks are at-least-once anyway.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        max_response_bytes: int,
        idle_seconds: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_response_bytes = max_response_bytes
        self._idle_seconds = idle_seconds
        self._ssl_context = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._swept_at = 0.0

    async def post(self, origin: Origin, payload: bytes) -> Answer:
        """Send one complete request (`payload`: head and body) and return its status.

        Raises ConnectError, ReadTimeout or ProtocolError.
        """
        async with self._slots:
            connection = self._take_idle(origin)
            if connection is not None:
                try:
                    return await self._use(origin, connection, payload)
                except ProtocolError:
                    if connection.received_any:
                        raise
                    # A keep-alive connection the receiver had closed: try once on a fresh one.
            return await self._use(origin, await self._connect(origin), payload)

    async def _use(self, origin: Origin, connection: _Connection, payload: bytes) -> Answer:
        try:
            answer = await connection.request(payload, self._read_timeout)
        except BaseException:
            connection.close()
            raise
        if not connection.closed:
            loop = asyncio.get_running_loop()
            connection.idle_since = loop.time()
            self._idle.setdefault(origin, deque()).append(connection)
        return answer

    def _take_idle(self, origin: Origin) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        oldest_usable = now - self._idle_seconds
        if now - self._swept_at > self._idle_seconds:
            self._sweep(oldest_usable)
            self._swept_at = now
        idle = self._idle.get(origin)
        while idle:  # newest last: once one is too old, so are all before it
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= oldest_usable:
                return connection
            connection.close()
        return None

    def _sweep(self, oldest_usable: float) -> None:
        """Close what other origins left idle too long: with many receivers, sockets would pile up."""
        for origin, idle in list(self._idle.items()):
            self._close_stale(idle, oldest_usable)
            if not idle:
                del self._idle[origin]

    @staticmethod
    def _close_stale(idle: deque[_Connection], oldest_usable: float) -> None:
        while idle and (idle[0].closed or idle[0].idle_since < oldest_usable):
            idle.popleft().close()

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = origin.scheme == "https"
        if tls and self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self._max_response_bytes),
                    origin.address,
                    origin.port,
                    ssl=self._ssl_context if tls else None,
                    server_hostname=origin.server_name if tls else None,
                )
        except TimeoutError as exc:
            raise ConnectError(f"ConnectTimeout: no connection within {self._connect_timeout:g} s") from exc
        except OSError as exc:  # ssl.SSLError included
            raise ConnectError(f"ConnectError: {exc}") from exc
        return connection

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
