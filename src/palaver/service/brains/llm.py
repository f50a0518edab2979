"""The LLM brain: an OpenAI-compatible chat-completions endpoint, streamed token by token.

Tavus runs a persona's `layers.llm` against any OpenAI-compatible server that
streams `/chat/completions` over SSE (reference 6; docs "Custom LLMs"), sending
the persona's `headers` and `extra_body` with each request and the
conversation's id as a `conversation_id` request header. This brain does the
same through the maintained `openai` client:

* every content delta is yielded as a `TextDelta` the moment it arrives;
* streamed tool-call fragments (index, id, name, argument pieces) are put back
  together and yielded as `ToolCall`s once complete (when the next call starts,
  or at the end of the choice);
* cancelling the iteration (an interrupt) closes the HTTP response and the
  client in the generator's `finally`, so the server sees the disconnect at
  once and stops generating;
* a server that does not start answering within `first_token` seconds, or that
  goes quiet for `idle` seconds mid-reply, raises `BrainError`; so does every
  HTTP, connection or protocol failure, with a sentence that names the
  endpoint's host and the cause. There are no retries inside a turn
  (`max_retries=0`): the room shows the failure and the next turn tries again.

A persona-named endpoint is an address chosen by an API client, so it is
reached through the private-address guard (`guarded_client`), like webhooks
and document downloads; the operator's own default endpoint is trusted. Each
reply opens its own HTTP client and closes it: nothing is left to clean up if
the room drops the brain, at the price of one connection setup per turn.

The `openai` client fills some headers from the process environment
(`OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`, `OPENAI_CUSTOM_HEADERS`) and adds its own
platform headers. Requests to an endpoint carry exactly the headers Palaver
means to send (see `_pin_headers`): the operator's OpenAI settings never leak to
an endpoint a persona names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from palaver.delivery.fetch import guarded_client
from palaver.service.brains.base import BrainError, Output, Prompt, TextDelta, ToolCall
from palaver.service.brains.knowledge import Passage, retrieve
from palaver.service.documents import DocumentService

if TYPE_CHECKING:
    import openai


def _openai() -> Any:
    """The `openai` package, imported on first use: it takes most of a second to import, and every
    server process would pay that at start, whether or not a persona ever names an LLM."""
    import openai

    return openai


T = TypeVar("T")
log = logging.getLogger("palaver.brains")

# Members of the request body Palaver sets itself; an `extra_body` cannot replace them.
RESERVED_BODY_KEYS = frozenset({"model", "messages", "stream", "tools"})
# Headers of the HTTP exchange itself, kept as the client sets them; every other header is one
# Palaver chose (authorization, the persona's headers, conversation_id) or is dropped.
_PROTOCOL_HEADERS = frozenset(
    {"host", "accept", "accept-encoding", "content-type", "content-length", "connection", "user-agent"}
)
MAX_ERROR_TEXT = 300  # characters of a server's error message shown in the room
KNOWLEDGE_PASSAGES = 3


@dataclass(frozen=True, slots=True)
class LlmEndpoint:
    """Where and how to ask: the persona's `layers.llm` or the operator's default."""

    base_url: str
    model: str
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    default_query: dict[str, Any] = field(default_factory=dict)
    # Connect through the private-address guard (a persona-named endpoint); False for the operator's.
    guarded: bool = True

    @property
    def host(self) -> str:
        """`host[:port]` as the room shows it (never the user info of the URL)."""
        try:
            parts = urlsplit(self.base_url)
            host, port = parts.hostname, parts.port
        except ValueError:  # not a URL one could connect to: shown as given, less any user info
            return _clip(self.base_url.rsplit("@", 1)[-1])
        if not host:
            return _clip(self.base_url.rsplit("@", 1)[-1])
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{port}" if port else shown


@dataclass(frozen=True, slots=True)
class LlmTimeouts:
    """Seconds. `first_token`: from sending the request to the first streamed chunk (connecting
    included); `idle`: the longest silence allowed between two chunks."""

    first_token: float = 30.0
    idle: float = 30.0


class LlmBrain:
    """Answers with an OpenAI-compatible chat-completions endpoint (see the module docstring)."""

    name = "llm"

    def __init__(
        self,
        endpoint: LlmEndpoint,
        *,
        allow_private: bool = False,
        timeouts: LlmTimeouts | None = None,
        knowledge: DocumentService | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.allow_private = allow_private
        self.timeouts = timeouts or LlmTimeouts()
        # With a document service, the passages most relevant to the participant's last message
        # are added to the system message of each request (retrieval, as Tavus's knowledge base does).
        self.knowledge = knowledge

    async def reply(self, prompt: Prompt) -> AsyncIterator[Output]:
        messages = await self._messages(prompt)
        http = self._http_client(prompt)
        try:
            client = _openai().AsyncOpenAI(
                base_url=self.endpoint.base_url,
                # Never None: the client would read OPENAI_API_KEY from the environment. Without a key,
                # `_pin_headers` sends no Authorization header at all.
                api_key=self.endpoint.api_key or "unused",
                default_query=self.endpoint.default_query or None,
                http_client=http,
                max_retries=0,
                timeout=self.timeouts.first_token + self.timeouts.idle,  # a backstop: the deadlines come first
            )
        except Exception as exc:  # a base_url httpx cannot parse, say
            await http.aclose()
            raise BrainError(self._says(f"cannot be used: {_clip(str(exc) or type(exc).__name__)}")) from None
        body = {k: v for k, v in self.endpoint.extra_body.items() if k not in RESERVED_BODY_KEYS}
        request: dict[str, Any] = {"model": self.endpoint.model, "messages": messages, "stream": True}
        if prompt.tools:
            request["tools"] = prompt.tools
        if body:
            request["extra_body"] = body
        stream: Any = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.first_token
        started = False
        calls = _ToolCalls()
        try:
            stream = await self._within(deadline, client.chat.completions.create(**request), streaming=False)
            chunks = stream.__aiter__()
            while True:
                try:
                    chunk = await self._within(deadline, chunks.__anext__(), streaming=True, started=started)
                except StopAsyncIteration:
                    break
                started = True
                deadline = loop.time() + self.timeouts.idle
                for choice in chunk.choices or ():
                    if choice.index not in (0, None):
                        continue  # n > 1 was not asked for; a server that sends more is read for one
                    delta = choice.delta
                    if delta is not None and delta.content:
                        yield TextDelta(delta.content)
                    for fragment in (delta.tool_calls if delta is not None else None) or ():
                        for done in calls.add(fragment):
                            yield done
                    if choice.finish_reason:
                        for done in calls.flush():
                            yield done
            for done in calls.flush():
                yield done
        finally:
            await _close(stream, client)

    # request ------------------------------------------------------------------------------------

    async def _messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The prompt's messages, with the relevant knowledge-base passages added to the system message."""
        messages = list(prompt.messages)
        if self.knowledge is None:
            return messages
        try:
            passages = await retrieve(self.knowledge, prompt, prompt.last_user_text, limit=KNOWLEDGE_PASSAGES)
        except Exception:  # the model can still answer without them: the turn goes on, the log says why
            log.exception("knowledge retrieval failed for conversation %s", prompt.conversation_id)
            passages = []
        if not passages:
            return messages
        addition = knowledge_text(passages)
        if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
            messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{addition}".strip()}
        else:
            # Some chat templates refuse a system message anywhere but first: it goes first.
            messages.insert(0, {"role": "system", "content": addition})
        return messages

    def _http_client(self, prompt: Prompt) -> httpx.AsyncClient:
        wanted = {**self.endpoint.headers, "conversation_id": prompt.conversation_id}
        if self.endpoint.api_key:
            wanted["authorization"] = f"Bearer {self.endpoint.api_key}"
        hooks = {"request": [_pin_headers(wanted)]}
        timeout = httpx.Timeout(self.timeouts.first_token + self.timeouts.idle, connect=self.timeouts.first_token)
        if self.endpoint.guarded:
            return guarded_client(allow_private=self.allow_private, timeout=timeout, event_hooks=hooks)
        return httpx.AsyncClient(timeout=timeout, event_hooks=hooks)

    async def _within(self, deadline: float, step: Awaitable[T], *, streaming: bool, started: bool = False) -> T:
        """Await `step` by `deadline` (loop time), turning every failure into a BrainError for the room.

        `streaming`: the response has begun (a failure now breaks off an answer rather than
        preventing one); `started`: a chunk has come (the idle timeout applies, not the first-token one).
        """
        try:
            async with asyncio.timeout_at(deadline):
                return await step
        except TimeoutError:
            if started:
                raise BrainError(self._says(f"stopped answering: nothing for {self.timeouts.idle:g} s")) from None
            raise BrainError(self._says(f"did not answer within {self.timeouts.first_token:g} s")) from None
        except StopAsyncIteration:
            raise
        except _openai().APIStatusError as exc:
            raise BrainError(self._says(f"answered {exc.status_code}: {_status_text(exc)}")) from None
        except _openai().APITimeoutError:
            raise BrainError(self._says(f"did not answer within {self.timeouts.first_token:g} s")) from None
        except _openai().APIConnectionError as exc:
            raise BrainError(self._connection_failure(exc, streaming)) from None
        except _openai().APIError as exc:  # an error event inside the stream
            raise BrainError(self._says(f"reported an error: {_clip(exc.message)}")) from None
        except (httpx.HTTPError, ValueError, TypeError) as exc:  # a broken stream, a malformed chunk
            raise BrainError(self._says(f"broke off its answer: {_clip(str(exc) or type(exc).__name__)}")) from None

    def _says(self, what: str) -> str:
        return f"The language model at {self.endpoint.host} {what}"

    def _connection_failure(self, exc: openai.APIConnectionError, streaming: bool) -> str:
        cause = _root_cause(exc)
        text = str(cause) or type(cause).__name__
        if streaming:
            return self._says(f"broke off its answer: {_clip(text)}")
        if "non-public" in text or "not an http(s) URL" in text or "not a canonical IP" in text:
            return (
                f"The language model at {self.endpoint.host} is not allowed: a persona's base_url must be a "
                "public address, and this one is private or loopback (start the server with "
                "--allow-private-callbacks to allow private addresses)"
            )
        return self._says(f"could not be reached: {_clip(text)}")


class _ToolCalls:
    """Streamed tool-call fragments put back together, by their `index`.

    The first fragment of a call carries its id and function name, the next ones
    pieces of its JSON arguments. Servers differ at the edges: some send the
    whole call in one fragment, some repeat the name or the id in every one,
    some leave `index` out; a repeated name or id is kept once, a missing index
    means the call in progress, and a call without an id gets one so that its
    result can be paired with it.
    """

    def __init__(self) -> None:
        self._open: dict[int, dict[str, str]] = {}
        self._order: list[int] = []

    def add(self, fragment: Any) -> list[ToolCall]:
        """Take one fragment; returns the calls it shows complete (those before a newly started one)."""
        index = fragment.index if fragment.index is not None else (self._order[-1] if self._order else 0)
        done: list[ToolCall] = []
        if index not in self._open:
            done = self._finish([i for i in self._order if i < index])
            self._open[index] = {"id": "", "name": "", "arguments": ""}
            self._order.append(index)
        call = self._open[index]
        if fragment.id and not call["id"]:
            call["id"] = fragment.id
        function = fragment.function
        if function is not None:
            if function.name and not call["name"]:
                call["name"] = function.name
            if function.arguments:
                call["arguments"] += function.arguments
        return done

    def flush(self) -> list[ToolCall]:
        return self._finish(list(self._order))

    def _finish(self, indices: list[int]) -> list[ToolCall]:
        done = []
        for index in indices:
            call = self._open.pop(index)
            self._order.remove(index)
            if call["name"]:  # a fragment without a name is nothing the room could run
                call_id = call["id"] or "call_" + secrets.token_hex(12)
                done.append(ToolCall(call_id, call["name"], call["arguments"] or "{}"))
        return done


def knowledge_text(passages: list[Passage]) -> str:
    """The system-message section that hands retrieved passages to the model."""
    lines = [
        "Knowledge base: passages from this replica's documents that may help answer the participant's last "
        "message. Use them when they are relevant, and say which document an answer comes from if asked."
    ]
    for passage in passages:
        lines.append(f'From "{passage.document_name}":\n{passage.text.strip()}')
    return "\n\n".join(lines)


def _pin_headers(wanted: dict[str, str]) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook leaving exactly the protocol headers and `wanted` on each request."""
    pinned = {name.lower(): value for name, value in wanted.items()}

    async def hook(request: httpx.Request) -> None:
        for name in list(request.headers.keys()):
            if name.lower() not in _PROTOCOL_HEADERS:
                del request.headers[name]
        for name, value in pinned.items():
            request.headers[name] = value

    return hook


async def _close(stream: Any, client: openai.AsyncOpenAI) -> None:
    """Close the streamed response, then the client and its connections; never raises."""
    for closing in (stream.close if stream is not None else None, client.close):
        if closing is None:
            continue
        try:
            await closing()
        except Exception:  # noqa: BLE001 - cleanup of a connection that may already be broken
            pass


def _status_text(exc: openai.APIStatusError) -> str:
    """The server's own error message, from the usual JSON shapes, else its body or the reason phrase."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message.strip():
            return _clip(message)
        if body:
            return _clip(json.dumps(body))
    if isinstance(body, str) and body.strip():
        return _clip(body)
    return exc.response.reason_phrase or "an error"


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of the chain (the guard's refusal inside httpx's and openai's wrappers)."""
    seen = exc
    for _ in range(20):  # a bound: exception chains can loop
        inner = seen.__cause__ or seen.__context__
        if inner is None:
            break
        seen = inner
    return seen


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"
