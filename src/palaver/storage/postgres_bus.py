"""The room bus on PostgreSQL (service/rooms/bus.py): LISTEN/NOTIFY on one channel of the database already there.

Every process LISTENs on `palaver_rooms` with a connection of its own and hears
every room's messages, its own included; it hands a message to its handlers
only if it has a subscriber in that room, and drops the others after reading
the room's id from the front of the payload (no JSON parsed, no body fetched).
PostgreSQL delivers notifications in the order their transactions commit, the
same order to every listener, so every process sees a room's messages in one
order; messages one process publishes one after another keep that order
(publishes are group-committed one batch at a time, in call order).

A payload is `{"c": conversation_id, "m": message}`, compact JSON. NOTIFY takes
under 8,000 bytes, so a payload over 7,900 bytes goes into `room_messages`, in
the same transaction as a notification `{"c": conversation_id, "r": id}`; a
process with subscribers in that room reads the body by id, and the message
keeps its place in the order (later notifications wait for the read).
Publishers delete rows older than a minute every half minute or so.

What is lost: when the listening connection drops (a database restart, a
network cut, `pg_terminate_backend`), the bus logs it and reconnects with a
backoff (0.1 s doubling to 5 s); the messages published while it was not
listening never reach this process. An idle connection is probed every 15 s,
so a silently dead one is noticed within about 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import asyncpg

from palaver.service.rooms.bus import Subscriptions
from palaver.storage.postgres_batches import Batcher
from palaver.storage.postgres_pool import SERVER_SETTINGS, LazyPool
from palaver.storage.rooms import json_text

log = logging.getLogger("palaver.rooms.bus")


CHANNEL = "palaver_rooms"
MAX_NOTIFY_BYTES = 7900  # PostgreSQL refuses a payload of 8,000 bytes or more
KEEP_LARGE_S = 60.0  # how long a large message's body stays readable
PRUNE_EVERY_S = 30.0
PROBE_EVERY_S = 15.0  # an idle listening connection is asked `SELECT 1` this often ...
PROBE_TIMEOUT_S = 5.0  # ... and given this long to answer
CONNECT_TIMEOUT_S = 10.0
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0
_PREFIX = '{"c":"'
# One row per payload, in the array's order: the order the notifications are queued in (and delivered).
_NOTIFY = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"
_LISTENER_SETTINGS = {**SERVER_SETTINGS, "application_name": "palaver-rooms"}


@dataclass(slots=True)
class _Outgoing:
    conversation_id: str
    payload: str | None  # the notification, or None: too large, `body` goes into room_messages
    body: str | None


def _room_of(payload: str) -> str:
    """The room a notification is for, read from the front of the payload when it is plainly there."""
    if payload.startswith(_PREFIX):
        end = payload.find('"', len(_PREFIX))
        room = payload[len(_PREFIX) : end]
        if end > 0 and "\\" not in room:
            return room
    return str(json.loads(payload)["c"])


class PostgresRoomBus(Subscriptions):
    def __init__(self, dsn: str, *, pool_size: int = 2) -> None:
        """`pool_size` connections publish and read large bodies; one more listens (from `start`)."""
        super().__init__()
        self._dsn = dsn
        self._pool = LazyPool(dsn, max_size=pool_size)
        # One batch at a time: a batch commits before the next starts, so publishes keep their call order.
        self._batcher: Batcher[_Outgoing, None] = Batcher(self._pool, self._send, max_in_flight=1)
        # Notifications of subscribed rooms waiting behind a large body being read, in order.
        self._waiting: deque[tuple[str, dict[str, Any]]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closed = False
        self._pruned_at = 0.0

    # -- RoomBus ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; raises if the database cannot be reached (later losses are reconnected)."""
        if self._supervisor is not None:
            return
        await self._listen()
        self._supervisor = asyncio.create_task(self._supervise(), name="palaver-room-bus")

    async def close(self) -> None:
        """Stop listening, let the publishes under way finish, and close every connection."""
        if self._closed:
            return
        self._closed = True
        for task in (self._supervisor, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._drop_listener()
        await self._batcher.drain()
        await self._pool.close()
        self._handlers.clear()
        self._waiting.clear()

    async def publish(self, conversation_id: str, message: dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("the room bus is closed")
        payload = json_text({"c": conversation_id, "m": message})
        if len(payload.encode()) <= MAX_NOTIFY_BYTES:
            outgoing = _Outgoing(conversation_id, payload, None)
        else:
            outgoing = _Outgoing(conversation_id, None, json_text(message))
        await self._batcher.submit(outgoing)

    # -- publishing ---------------------------------------------------------------------------------

    async def _send(self, conn: asyncpg.Connection, batch: list[_Outgoing]) -> list[None | BaseException]:
        """Notify a batch in order: one transaction per run of distinct payloads (within one transaction
        PostgreSQL delivers identical notifications once), the first failure failing the rest."""
        outcomes: list[None | BaseException] = []
        for run in _runs(batch):
            try:
                await self._notify(conn, run)
            except Exception as exc:  # noqa: BLE001 - handed to the publishers of this run and the rest
                return outcomes + [exc] * (len(batch) - len(outcomes))
            outcomes += [None] * len(run)
        return outcomes

    async def _notify(self, conn: asyncpg.Connection, run: list[_Outgoing]) -> None:
        if all(o.body is None for o in run):
            await conn.execute(_NOTIFY, CHANNEL, [o.payload for o in run])  # one statement: its own transaction
            return
        async with conn.transaction():
            payloads = []
            for o in run:
                if o.body is None:
                    payloads.append(o.payload)
                    continue
                row_id = await conn.fetchval(
                    "INSERT INTO room_messages (conversation_id, body, created_epoch) "
                    "VALUES ($1, $2, extract(epoch FROM clock_timestamp())) RETURNING id",
                    o.conversation_id,
                    o.body,
                )
                payloads.append(json_text({"c": o.conversation_id, "r": row_id}))
            if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                # The database's clock, the one the rows were stamped with, whichever host publishes.
                await conn.execute(
                    "DELETE FROM room_messages WHERE created_epoch < extract(epoch FROM clock_timestamp()) - $1",
                    KEEP_LARGE_S,
                )
                self._pruned_at = time.monotonic()
            await conn.execute(_NOTIFY, CHANNEL, payloads)

    # -- listening ----------------------------------------------------------------------------------

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings=_LISTENER_SETTINGS, timeout=CONNECT_TIMEOUT_S)
        try:
            await conn.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn
        conn.add_termination_listener(self._on_terminated)
        if conn.is_closed():  # lost before the listener was there to hear it
            self._lost.set()

    async def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            conn.terminate()  # no goodbyes: it may be half dead, and LISTEN ends with the session

    def _on_terminated(self, conn: asyncpg.Connection) -> None:
        if conn is self._listener:
            self._lost.set()

    async def _supervise(self) -> None:
        """Probe the listening connection while idle; reconnect it when it is lost."""
        while not self._closed:
            try:
                await asyncio.wait_for(self._lost.wait(), PROBE_EVERY_S)
            except TimeoutError:
                if await self._answers():
                    continue
            self._lost.clear()
            await self._drop_listener()
            log.warning("room bus: lost the LISTEN connection; reconnecting (messages published meanwhile are lost)")
            await self._reconnect()

    async def _answers(self) -> bool:
        conn = self._listener
        if conn is None:
            return False
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), PROBE_TIMEOUT_S)
            return True
        except Exception:  # noqa: BLE001 - whatever the reason, the connection is replaced
            log.warning("room bus: the LISTEN connection did not answer", exc_info=True)
            return False

    async def _reconnect(self) -> None:
        pause = RECONNECT_FIRST_S
        lost_at = time.monotonic()
        while not self._closed:
            try:
                await self._listen()
            except Exception as exc:  # noqa: BLE001 - down, refused, timed out: try again later
                log.warning("room bus: cannot listen (%s); trying again in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX_S)
                continue
            log.warning("room bus: listening again after %.1f s", time.monotonic() - lost_at)
            return

    def _on_notification(self, conn: asyncpg.Connection, pid: int, channel: str, payload: str) -> None:
        """Called on the loop for each notification, in order."""
        try:
            room = _room_of(payload)
            if not self.subscribed(room):
                return
            envelope = json.loads(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("room bus: a notification that is not Palaver's: %.200r", payload)
            return
        if not self._waiting and "m" in envelope:
            self._dispatch(room, envelope["m"])
            return
        self._waiting.append((room, envelope))
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_waiting())

    async def _read_waiting(self) -> None:
        """Hand out waiting notifications in order, reading large bodies as they come up."""
        try:
            while self._waiting:
                room, envelope = self._waiting[0]
                message = envelope["m"] if "m" in envelope else await self._body(room, envelope.get("r"))
                self._waiting.popleft()
                if message is not None:
                    self._dispatch(room, message)
        finally:
            self._reader = None

    async def _body(self, room: str, row_id: Any) -> dict[str, Any] | None:
        if not self.subscribed(room):  # unsubscribed meanwhile: nothing to read
            return None
        try:
            pool = await self._pool.get()
            body = await pool.fetchval("SELECT body FROM room_messages WHERE id = $1", row_id)
        except Exception:  # noqa: BLE001 - one message lost, not the bus
            log.warning("room bus: could not read large message %s of room %s", row_id, room, exc_info=True)
            return None
        if body is None:
            log.warning("room bus: large message %s of room %s is gone (read after %.0f s)", row_id, room, KEEP_LARGE_S)
            return None
        message: dict[str, Any] = json.loads(body)
        return message

    def _dispatch(self, room: str, message: dict[str, Any]) -> None:
        for handler in self.handlers_of(room):
            try:
                handler(message)
            except Exception:  # noqa: BLE001 - one handler's failure is not the others'
                log.exception("room bus: a handler of room %s failed", room)


def _runs(batch: list[_Outgoing]) -> list[list[_Outgoing]]:
    """The batch cut, in order, so that no run holds the same payload twice."""
    runs: list[list[_Outgoing]] = [[]]
    seen: set[str] = set()
    for outgoing in batch:
        if outgoing.payload is not None:
            if outgoing.payload in seen:
                runs.append([])
                seen.clear()
            seen.add(outgoing.payload)
        runs[-1].append(outgoing)
    return runs
