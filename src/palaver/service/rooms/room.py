"""One room as one process sees it: its participants here, the roster, and the replica if hosted here.

A process holds a `LocalRoom` while any of the room's participants has a socket
on it. All that happens in the room arrives through the bus (`on_bus`), in one
order for every process; this class turns it into messages for the local
sockets and, in the process that holds the host lease, into work for the
replica. Bus messages are small JSON objects keyed by `k`:

- `out`  the replica's messages (`l`: `[addressee or null, message]` pairs, in order)
- `in`   a participant's checked message (`p` who, `m` the message as sent)
- `join` / `leave` / `present`  the roster
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palaver.domain import interactions as ip
from palaver.service.rooms.bus import RoomBus
from palaver.service.rooms.replica import ReplicaHost, RoomClosed

log = logging.getLogger("palaver.rooms")

OUTBOX_LIMIT = 2_000  # messages waiting for one socket; a reader this far behind is disconnected
CLOSE = object()  # the sentinel that ends a participant's socket
RECENT_WORK = 200  # work items kept for a handover
Work = tuple[str, str, str, dict[str, Any]]  # (id, participant id, event type or "join", properties)


def _addressees(message: dict[str, Any]) -> set[str] | None:
    """Whom an app message is for: the participant ids in its `properties.to`, or everyone (None)."""
    if message.get("e") != ip.ROOM_APP_MESSAGE:
        return None
    to = (message["m"].get("properties") or {}).get("to")
    if isinstance(to, str) and to != "*":
        return {to}
    if isinstance(to, list):
        return {t for t in to if isinstance(t, str)}
    return None


@dataclass(eq=False)
class Participant:
    participant_id: str
    user_name: str
    joined_at: float
    outbox: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT + 1))
    close_code: int = 1000
    close_reason: str = ""

    def info(self) -> dict[str, Any]:
        return {"participant_id": self.participant_id, "user_name": self.user_name, "joined_at": self.joined_at}

    def deliver(self, message: dict[str, Any]) -> None:
        if self.outbox.qsize() >= OUTBOX_LIMIT:
            self.close(1008, "too many messages waiting: the connection is too slow")
            return
        self.outbox.put_nowait(message)

    def close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(CLOSE)


class LocalRoom:
    def __init__(self, conversation_id: str, bus: RoomBus) -> None:
        self.conversation_id = conversation_id
        self._bus = bus
        self.local: dict[str, Participant] = {}
        self.roster: dict[str, dict[str, Any]] = {}
        self.host: ReplicaHost | None = None
        self.max_seq = 0
        self._inbox: asyncio.Queue[Work] = asyncio.Queue()
        # What the replica was asked lately, in the room's order, whichever process hosted it: a process
        # that takes the replica over from a host that left replays what that host had not reached.
        self._recent: deque[Work] = deque(maxlen=RECENT_WORK)
        self.last_done: str | None = None  # the id of the last work item this process's replica finished
        self._replay_after: str | None | bool = False  # False: no handover pending
        self._worker: asyncio.Task[None] | None = None
        self.closed = False
        self.on_host_released: Callable[[LocalRoom], None] | None = None
        bus.subscribe(conversation_id, self.on_bus)

    async def publish(self, message: dict[str, Any]) -> None:
        await self._bus.publish(self.conversation_id, message)

    # -- the bus ---------------------------------------------------------------------------

    def on_bus(self, message: dict[str, Any]) -> None:
        kind = message.get("k")
        if kind == "out":  # the replica's messages, in order: [[addressee or None, message], ...]
            for target, body in message["l"]:
                seq = body.get("seq")
                if isinstance(seq, int) and seq > self.max_seq:
                    self.max_seq = seq
                if target is None:
                    for participant in self.local.values():
                        participant.deliver(body)
                elif target in self.local:
                    self.local[target].deliver(body)
        elif kind == "in":
            sender = message["p"]
            relayed = ip.room_message(self.conversation_id, ip.ROOM_APP_MESSAGE, {"from": sender, "data": message["m"]})
            to = _addressees(message)
            for pid, participant in self.local.items():
                if pid != sender and (to is None or pid in to):
                    participant.deliver(relayed)
            event_type = message.get("e")
            if event_type != ip.ROOM_APP_MESSAGE:  # work for the replica, wherever it is hosted
                self._work_item((message.get("i") or "", sender, event_type, message["m"].get("properties") or {}))
        elif kind in ("join", "present"):
            for info in message["p"]:
                pid = info["participant_id"]
                if pid in self.roster:
                    continue
                self.roster[pid] = info
                joined = ip.room_message(self.conversation_id, ip.ROOM_PARTICIPANT_JOINED, {"participant": info})
                for local_id, participant in self.local.items():
                    if local_id != pid:
                        participant.deliver(joined)
            if kind == "join":
                pid = message["p"][0]["participant_id"]
                if pid not in self.local and self.local:
                    # Tell the joiner's process who is here already.
                    asyncio.get_running_loop().create_task(
                        self.publish({"k": "present", "p": [p.info() for p in self.local.values()]})
                    )
                self._work_item((f"join:{pid}", pid, "join", {}))
        elif kind == "released" and self.on_host_released is not None and self.local:
            self._replay_after = message.get("last")
            self.on_host_released(self)  # the host left: take the replica over now, not at the next tick
        elif kind == "leave":
            pid = message["p"]
            info = self.roster.pop(pid, None)
            if info is not None:
                left = ip.room_message(self.conversation_id, ip.ROOM_PARTICIPANT_LEFT, {"participant": info})
                for participant in self.local.values():
                    participant.deliver(left)

    # -- the replica, where this process hosts it ------------------------------------------

    def _work_item(self, item: Work) -> None:
        self._recent.append(item)
        if self.host is not None:
            self._inbox.put_nowait(item)

    def start_hosting(self, host: ReplicaHost) -> None:
        self.host = host
        if self._replay_after is not False:  # handed over: do what the previous host had not done
            ids = [item[0] for item in self._recent]
            start = ids.index(self._replay_after) + 1 if self._replay_after in ids else 0
            for item in list(self._recent)[start:]:
                self._inbox.put_nowait(item)
            self._replay_after = False
        self._worker = asyncio.get_running_loop().create_task(
            self._work(host), name=f"palaver-room-{host.conversation_id}"
        )

    async def stop_hosting(self) -> None:
        host, worker = self.host, self._worker
        self.host, self._worker = None, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if host is not None:
            await host.close()

    async def _work(self, host: ReplicaHost) -> None:
        """The host's inbox, one message at a time, so the replica sees them in the room's order."""
        while True:
            work_id, sender, event_type, properties = await self._inbox.get()
            self.last_done = work_id
            try:
                if event_type == "join":
                    await host.joined(sender)
                else:
                    await host.handle(sender, event_type, properties)
            except asyncio.CancelledError:
                raise
            except RoomClosed:
                return  # the conversation ended: the hub closes the room
            except Exception:
                log.exception("room %s: handling %s failed", self.conversation_id, event_type)
                host.error("the replica could not handle that message", to=sender)

    # -- closing ---------------------------------------------------------------------------

    async def close(self, message: dict[str, Any], code: int = 1000) -> None:
        """The conversation ended: say so to every local socket and close them."""
        if self.closed:
            return
        self.closed = True
        self._bus.unsubscribe(self.conversation_id, self.on_bus)
        await self.stop_hosting()
        for participant in self.local.values():
            participant.deliver(message)
            participant.close(code, "the conversation has ended")
