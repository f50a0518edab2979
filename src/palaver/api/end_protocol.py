"""`POST /v2/conversations/{conversation_id}/end` answered by the HTTP protocol itself.

An end waits for a group commit, so under load each one is a request that
arrives, suspends and wakes up later. Through ASGI that costs uvicorn's
per-request machinery (the scope, a request-response cycle with its event, a
task, and the task's steps before and after the commit) on top of the end
itself. Measured under sustained load, that machinery was the largest part of
the end's cost still above a minimal app's (docs/performance.md). So the
protocol answers the common shape of an end on its own: the request is
recognised when its headers are complete, the end is handed to the service
without a task, and the answer is written from the commit's callback.

It takes only what it can answer exactly as the ASGI path would (same status,
headers and body bytes); anything else goes through uvicorn's own path
unchanged to `EndConversationFastPath` and FastAPI: other methods or paths,
percent-encoded or odd ids, bodies that are not plainly sized, upgrades,
`Expect: 100-continue`, a request pipelined behind one still being answered,
a key not in the authenticator's cache (the ASGI path asks storage and fills
it), or a server whose lifespan has not started the services yet.

It also keeps a connection's keep-alive timer differently (one timer per
connection, re-armed when due, rather than one per answer); the idle time
after which a connection is closed is uvicorn's `timeout_keep_alive` as before.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from palaver.api.fastpath import INTERNAL_ERROR, PREFIX, ROUTE, SUFFIX
from palaver.api.middleware import MAX_BODY_BYTES, UNAUTHORIZED
from palaver.domain.conversation import EndOutcome
from palaver.domain.errors import InvalidId
from palaver.metrics import HTTP_REQUESTS
from palaver.service.auth import NOT_CACHED, Authenticator
from palaver.service.conversations import ConversationService

log = logging.getLogger("palaver.api")

_PREFIX = PREFIX.encode()
_SUFFIX = SUFFIX.encode()
_INVALID_ID = json.dumps({"error": InvalidId("conversation_id").message}, separators=(",", ":")).encode()


_rendered: tuple[object, bytes] = (None, b"")


def _default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (date, server) as bytes, rendered again only when uvicorn
    replaces the list (once a second, for the date)."""
    global _rendered
    if _rendered[0] is not headers:
        _rendered = (headers, b"".join(name + b": " + value + b"\r\n" for name, value in headers))
    return _rendered[1]


class _Ignored:
    """Stands in for the request-response cycle's event: nothing waits on an end's body."""

    def set(self) -> None:
        pass


_IGNORED = _Ignored()


class EndExchange:
    """One end request answered by the protocol, in the place of uvicorn's cycle.

    The protocol's own code reads `response_complete`, `disconnected`,
    `keep_alive`, `message_event`, `body` and `more_body` of whatever cycle is
    current (on connection loss, shutdown and pipelining), so these are here
    with the same meaning.
    """

    __slots__ = ("account_id", "conversation_id", "keep_alive", "disconnected", "response_complete", "started")

    message_event = _IGNORED
    more_body = False
    body = b""  # never appended to: `on_body` skips an exchange

    def __init__(self, account_id: str | None, conversation_id: str, keep_alive: bool) -> None:
        self.account_id = account_id
        self.conversation_id = conversation_id
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.started = False


class EndProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering plain end requests itself (see the module's docstring)."""

    def __init__(self, *args: Any, services: object, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._services = services  # the FastAPI app's state: services exist once the lifespan has run
        self._idle_since: float | None = None

    def on_headers_complete(self) -> None:
        exchange = self._end_exchange()
        if exchange is None:
            super().on_headers_complete()
        else:
            self.cycle = exchange  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if type(self.cycle) is not EndExchange:
            super().on_body(body)

    def on_message_complete(self) -> None:
        exchange = self.cycle
        if type(exchange) is EndExchange and not exchange.started:
            exchange.started = True
            self._start(exchange)
        else:
            super().on_message_complete()

    # Keep-alive: uvicorn arms a timer after every answer and cancels it when the next request
    # arrives (1.8-3.5 us per request with uvloop, measured). Here one timer per connection
    # checks, when due, how long the connection has been idle, and closes it after the same
    # `timeout_keep_alive` of idleness as uvicorn's.

    def on_response_complete(self) -> None:
        if not self.pipeline and not self.transport.is_closing():
            self._idle_since = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)
            self.server_state.total_requests += 1
            self.flow.resume_reading()
            return
        super().on_response_complete()

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # busy: the timer, when due, finds it so and leaves the connection open

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None or self.transport.is_closing():
            return  # a request is being answered: its answer arms the timer again
        remaining = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self.timeout_keep_alive_task = self.loop.call_later(remaining, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def _end_exchange(self) -> EndExchange | None:
        """An exchange if this request is an end the protocol can answer itself, else None."""
        url = self.url
        if not url.startswith(_PREFIX) or self.parser.get_method() != b"POST":
            return None
        path = url.split(b"?", 1)[0]
        if not path.endswith(_SUFFIX):
            return None
        segment = path[len(_PREFIX) : -len(_SUFFIX)]
        if not segment or b"/" in segment or b"%" in segment or self.root_path:
            return None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            return None  # pipelined behind a request still being answered: uvicorn queues it
        if self.expect_100_continue or self.limit_concurrency is not None:
            return None
        if self.parser.get_http_version() != "1.1" or self.parser.should_upgrade():
            return None
        key = None
        for name, value in self.headers:
            if name == b"x-api-key":
                if key is None:  # the first, as the ASGI path reads it
                    key = value
            elif name == b"content-length":
                if not value.isdigit() or int(value) > MAX_BODY_BYTES:
                    return None
            elif name == b"transfer-encoding":
                return None
        authenticator: Authenticator | None = getattr(self._services, "authenticator", None)
        if authenticator is None:
            return None
        account = authenticator.account_if_cached(None if key is None else key.decode("latin-1"))
        if account is NOT_CACHED:
            return None
        return EndExchange(account, segment.decode("ascii"), self.parser.should_keep_alive())  # type: ignore[arg-type]

    def _start(self, exchange: EndExchange) -> None:
        if exchange.account_id is None:
            self._answer(exchange, 401, UNAUTHORIZED)
            return
        service: ConversationService = self._services.conversations  # type: ignore[attr-defined]
        try:
            pending = service.start_end(exchange.account_id, exchange.conversation_id)
        except Exception as exc:
            self._failed(exchange, exc)
            return
        asyncio.ensure_future(pending).add_done_callback(functools.partial(self._finish, exchange))

    def _finish(self, exchange: EndExchange, done: asyncio.Future[EndOutcome]) -> None:
        service: ConversationService = self._services.conversations  # type: ignore[attr-defined]
        try:
            service.finish_end(exchange.conversation_id, done.result())
        except BaseException as exc:  # CancelledError too: the client gets an answer whatever happened
            self._failed(exchange, exc)
            return
        self._answer(exchange, 200, b"")

    def _failed(self, exchange: EndExchange, exc: BaseException) -> None:
        if isinstance(exc, InvalidId):
            self._answer(exchange, 400, _INVALID_ID)
        else:
            log.error("end of %s failed", exchange.conversation_id, exc_info=exc)
            self._answer(exchange, 500, INTERNAL_ERROR)

    def _answer(self, exchange: EndExchange, status: int, body: bytes) -> None:
        """The bytes uvicorn would write for the ASGI path's answer, in one write."""
        HTTP_REQUESTS.add(ROUTE, "POST", status)
        if exchange.disconnected:
            return
        content = [STATUS_LINE[status], _default_headers(self.server_state.default_headers)]
        if body:
            content += (b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(), b"\r\n")
        else:
            content.append(b"content-length: 0\r\n")
        if not exchange.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self.transport.write(b"".join(content))
        exchange.response_complete = True
        if not exchange.keep_alive:
            self.transport.close()
        self.on_response_complete()
