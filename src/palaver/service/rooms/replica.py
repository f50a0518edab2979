"""The replica of one room: turns, streaming answers, interrupts, tool calls, and the transcript.

Exactly one process hosts a room's replica at a time (the host lease in
storage/rooms.py), so `seq` and `turn_idx` grow in one place and two
participants on two processes never get two answers at once. Everything the
replica says goes out through `publish` (the room bus), so every participant,
whichever process holds their socket, sees the same messages in the same
order. Every finished turn is appended to the stored transcript, which is what
`application.transcription_ready` carries at the end; an append refused
because the conversation ended meanwhile stops the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from palaver.domain import interactions as ip
from palaver.domain.clock import Clock
from palaver.service.brains.base import BrainError, Prompt, TextDelta, ToolCall
from palaver.service.brains.select import ReplicaMind, system_message
from palaver.storage.rooms import RoomStore

log = logging.getLogger("palaver.rooms")

Publish = Callable[[dict[str, Any]], Awaitable[None]]
MAX_TOOL_ROUNDS = 5  # model calls per answer: a model that keeps calling tools is stopped


class RoomClosed(Exception):
    """The conversation ended while the replica was speaking: the turn was not stored."""


class ReplicaHost:
    def __init__(
        self,
        conversation_id: str,
        account_id: str,
        replica_id: str,
        created_epoch: float,
        mind: ReplicaMind,
        *,
        context: str | None,
        document_ids: list[str],
        document_tags: list[str],
        greeting: str | None,
        turns: list[dict[str, Any]],
        seq: int,
        publish: Publish,
        rooms: RoomStore,
        clock: Clock,
    ) -> None:
        self.conversation_id = conversation_id
        self._account_id = account_id
        self._replica_id = replica_id
        self._created = created_epoch
        self._mind = mind
        self._context = context
        self._document_ids = [*mind.document_ids, *document_ids]
        self._document_tags = [*mind.document_tags, *document_tags]
        self._greeting = greeting
        self._turns = list(turns)  # the transcript so far (also the model's history)
        self.seq = seq
        self._turn_idx = sum(1 for t in turns if t.get("role") == "user")
        self._publish_raw = publish
        self._outgoing: list[list[Any]] = []  # [addressee or None, message], waiting for _flush
        self._flush_scheduled = False
        self._publishing: set[asyncio.Task[None]] = set()
        self._rooms = rooms
        self._clock = clock
        self._speaking: asyncio.Task[None] | None = None
        self._tool_results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._echo: dict[str, Any] | None = None  # an echo utterance still being received
        self.sensitivity: dict[str, str] = {}
        self.closed = False

    # -- sending ---------------------------------------------------------------------------

    def send(
        self, event_type: str, properties: dict[str, Any] | None = None, *, inference_id: str | None = None,
        turn: bool = True, to: str | None = None,
    ) -> None:  # fmt: skip
        """Number the message and queue it (see `_queue`): nothing here waits for the bus."""
        self.seq += 1
        message = ip.outbound(
            self.conversation_id,
            event_type,
            properties,
            seq=self.seq,
            timestamp=round(self._clock.now(), 3),
            turn_idx=self._turn_idx if turn and self._turn_idx else None,
            inference_id=inference_id,
        )
        self._queue(message, to)

    def error(self, text: str, *, to: str | None = None, inference_id: str | None = None) -> None:
        props: dict[str, Any] = {"message": text}
        if inference_id:
            props["inference_id"] = inference_id
        self._queue(ip.room_message(self.conversation_id, ip.ROOM_ERROR, props), to)

    def _queue(self, message: dict[str, Any], to: str | None) -> None:
        """Queue a message for the room; what is queued in one turn of the event loop goes out as one.

        On PostgreSQL every bus publish is a NOTIFY that every process parses: an echo's four
        messages (started, streaming, utterance, stopped) as one notification cost a quarter
        of four (docs/rooms.md, figures). Order is kept: batches are published in the order
        they were made, and the bus keeps the order of publishes.
        """
        self._outgoing.append([to, message])
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._outgoing = self._outgoing, []
        self._flush_scheduled = False
        if batch:
            task = asyncio.get_running_loop().create_task(self._publish_raw({"k": "out", "l": batch}))
            self._publishing.add(task)
            task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("room %s: publishing failed: %r", self.conversation_id, task.exception())

    async def _store(self, entry: dict[str, Any]) -> None:
        if not await self._rooms.append_turn(self.conversation_id, entry):
            self.closed = True  # the conversation ended: the room is closing
            raise RoomClosed(self.conversation_id)
        self._turns.append(entry)

    def _entry(self, role: str, content: str, started: float, **extra: Any) -> dict[str, Any]:
        now = self._clock.now()
        return {
            "role": role,
            "content": content,
            "timestamp": round(started, 3),
            "seconds_from_start": round(max(started - self._created, 0.0), 3),
            "duration": round(max(now - started, 0.0), 3),
            **extra,
        }

    # -- what participants do -------------------------------------------------------------

    async def joined(self, participant_id: str) -> None:
        """Tell the newcomer the replica is here; the first one also hears the `custom_greeting`."""
        self.send(ip.REPLICA_JOINED, {"replica_id": self._replica_id}, turn=False, to=participant_id)
        if self._greeting and not self._turns:
            greeting, self._greeting = self._greeting, None
            await self._say(greeting, uuid.uuid4().hex)  # not interruptible (reference 3.1)

    async def handle(self, participant_id: str, event_type: str, p: dict[str, Any]) -> None:
        if event_type == ip.RESPOND:
            await self._respond(p["text"])
        elif event_type == ip.ECHO:
            await self._echo_piece(p)
        elif event_type == ip.INTERRUPT:
            await self.interrupt()
        elif event_type == ip.OVERWRITE_CONTEXT:
            self._context = p["context"]
        elif event_type == ip.APPEND_CONTEXT:
            self._context = f"{self._context}\n\n{p['context']}" if self._context else p["context"]
        elif event_type == ip.SENSITIVITY:
            self.sensitivity.update(p)
        elif event_type == ip.TOOL_RESULT:
            future = self._tool_results.get(p["tool_call_id"])
            if future is None or future.done():
                self.error(f"no tool call {p['tool_call_id']!r} is waiting for a result", to=participant_id)
            else:
                future.set_result(p)

    async def interrupt(self) -> None:
        task, self._speaking = self._speaking, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        self.closed = True
        await self.interrupt()

    async def _start(self, work: Awaitable[None]) -> None:
        await self.interrupt()  # a new utterance cuts the current one, as in a call
        self._speaking = asyncio.create_task(work, name=f"palaver-replica-{self.conversation_id}")

    async def _respond(self, text: str) -> None:
        await self.interrupt()
        self._turn_idx += 1
        inference_id = uuid.uuid4().hex
        started = self._clock.now()
        self.send(ip.USER_STARTED, None, inference_id=inference_id)
        self.send(ip.USER_STOPPED, None, inference_id=inference_id)
        self.send(ip.UTTERANCE, {"role": "user", "speech": text}, inference_id=inference_id)
        await self._store(self._entry("user", text, started))
        await self._start(self._answer(inference_id))

    # -- speaking --------------------------------------------------------------------------

    async def _say(self, text: str, inference_id: str) -> None:
        """Speak a fixed text (the greeting, an echo): one utterance, not interruptible by the model."""
        started = self._clock.now()
        self.send(ip.REPLICA_STARTED, None, inference_id=inference_id)
        self.send(ip.UTTERANCE_STREAMING, {"role": "replica", "speech": text, "content_index": 0,
                                                 "final": True}, inference_id=inference_id)  # fmt: skip
        self.send(ip.UTTERANCE, {"role": "replica", "speech": text}, inference_id=inference_id)
        duration = round(self._clock.now() - started, 3)
        self.send(ip.REPLICA_STOPPED, {"duration": duration, "interrupted": False}, inference_id=inference_id)
        await self._store(self._entry("assistant", text, started, inference_id=inference_id))

    async def _echo_piece(self, p: dict[str, Any]) -> None:
        """`conversation.echo`: the replica says exactly this; pieces with `done: false` make one utterance."""
        done = p.get("done", True)
        if self._echo is None:
            await self.interrupt()
            inference_id = p.get("inference_id") or uuid.uuid4().hex
            self._echo = {"id": inference_id, "text": "", "started": self._clock.now(), "index": 0}
            self.send(ip.REPLICA_STARTED, None, inference_id=inference_id)
        echo = self._echo
        echo["text"] += p["text"]
        final = bool(done)
        self.send(ip.UTTERANCE_STREAMING, {"role": "replica", "speech": echo["text"],
                                                 "content_index": echo["index"], "final": final},
                        inference_id=echo["id"])  # fmt: skip
        echo["index"] += 1
        if not final:
            return
        self._echo = None
        self.send(ip.UTTERANCE, {"role": "replica", "speech": echo["text"]}, inference_id=echo["id"])
        duration = round(self._clock.now() - echo["started"], 3)
        self.send(ip.REPLICA_STOPPED, {"duration": duration, "interrupted": False}, inference_id=echo["id"])
        await self._store(self._entry("assistant", echo["text"], echo["started"], inference_id=echo["id"]))

    def _prompt(self) -> Prompt:
        system = system_message(self._mind, self._context, [])
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for turn in self._turns:
            message = {k: turn[k] for k in ("role", "content", "tool_calls", "tool_call_id") if k in turn}
            messages.append(message)
        return Prompt(
            self._account_id,
            self.conversation_id,
            messages,
            tools=self._mind.tools,
            document_ids=self._document_ids,
            document_tags=self._document_tags,
        )

    async def _answer(self, inference_id: str) -> None:
        """Stream the brain's answer; on an interrupt (cancellation) close the utterance as interrupted."""
        speech, index, started = "", 0, None
        stored = 0  # how much of `speech` is already in the transcript (with a tool call)
        self._tool_results.clear()  # calls of an interrupted answer wait no more
        try:
            for _ in range(MAX_TOOL_ROUNDS):
                calls: list[ToolCall] = []
                async for out in self._mind.brain.reply(self._prompt()):
                    if isinstance(out, TextDelta):
                        if not out.text:
                            continue
                        if started is None:
                            started = self._clock.now()
                            self.send(ip.REPLICA_STARTED, None, inference_id=inference_id)
                        speech += out.text
                        self.send(ip.UTTERANCE_STREAMING, {"role": "replica", "speech": speech,
                                                                 "content_index": index, "final": False},
                                        inference_id=inference_id)  # fmt: skip
                        index += 1
                    else:
                        calls.append(out)
                        # Ready for the result before the app can see the call.
                        self._tool_results[out.tool_call_id] = asyncio.get_running_loop().create_future()
                        self.send(ip.TOOL_CALL, {"name": out.name, "arguments": out.arguments,
                                                       "tool_call_id": out.tool_call_id},
                                        inference_id=inference_id)  # fmt: skip
                if not calls:
                    break
                await self._run_tools(calls, speech[stored:], inference_id)
                stored = len(speech)  # the utterance goes on; the transcript has the text so far
        except RoomClosed:
            return
        except BrainError as exc:
            self.error(str(exc), inference_id=inference_id)
            if started is None:
                return
        except asyncio.CancelledError:
            if started is not None and not self.closed:
                await asyncio.shield(self._finish(speech, stored, index, started, inference_id, interrupted=True))
            raise
        if started is not None:
            await self._finish(speech, stored, index, started, inference_id, interrupted=False)

    async def _run_tools(self, calls: list[ToolCall], speech: str, inference_id: str) -> None:
        """Wait for the app's `conversation.tool_result` of every call (Tavus never runs tools itself)."""
        tool_calls = [{"id": c.tool_call_id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}} for c in calls]  # fmt: skip
        await self._store(self._entry("assistant", speech, self._clock.now(), inference_id=inference_id,
                                      tool_calls=tool_calls))  # fmt: skip
        futures = {c.tool_call_id: self._tool_results[c.tool_call_id] for c in calls}
        try:
            for call_id, future in futures.items():
                waited_from = self._clock.now()
                result = await future
                output = result["output"]
                content = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
                await self._store(self._entry("tool", content, waited_from, tool_call_id=call_id))
        finally:
            for call_id in futures:
                self._tool_results.pop(call_id, None)

    async def _finish(
        self, speech: str, stored: int, index: int, started: float, inference_id: str, *, interrupted: bool
    ) -> None:
        """Close the utterance (the whole text of this inference) and store what the transcript lacks."""
        final = {"role": "replica", "speech": speech, "content_index": index, "final": True}
        if interrupted:
            final["is_interrupted"] = True
        self.send(ip.UTTERANCE_STREAMING, final, inference_id=inference_id)
        utterance: dict[str, Any] = {"role": "replica", "speech": speech}
        if interrupted:
            utterance["interrupted"] = True
        self.send(ip.UTTERANCE, utterance, inference_id=inference_id)
        duration = round(self._clock.now() - started, 3)
        self.send(ip.REPLICA_STOPPED, {"duration": duration, "interrupted": interrupted},
                        inference_id=inference_id)  # fmt: skip
        with contextlib.suppress(RoomClosed):
            await self._store(self._entry("assistant", speech[stored:], started, inference_id=inference_id))
