"""The rooms of one process: admitting participants, routing their messages, closing ended rooms.

The WebSocket handler (api/rooms.py) only moves frames: it asks `admit` to let a
participant in, hands every frame to `receive`, and calls `leave` when the
socket goes. What this module adds to `LocalRoom`:

- the admission rules: the room must be active; `require_auth` rooms need a
  meeting token signed by this service; `max_participants` counts the replica
  as one and is checked in the same write that records the join, so joins
  racing through several processes cannot overshoot;
- the host lease: a process with participants in a room renews it, or takes it
  when it lapses, and then runs the replica (service/rooms/replica.py);
- closing: every tick it asks storage which of its rooms can no longer be
  joined, whichever process or timer ended them, and closes those with a final
  message. An end made by this process closes its rooms at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from palaver.domain import interactions as ip
from palaver.domain.clock import Clock
from palaver.domain.errors import InvalidId, RoomFull
from palaver.domain.ids import is_conversation_id
from palaver.domain.personas import PERSONA
from palaver.domain.replicas import REPLICA
from palaver.domain.tokens import meeting_token, token_admits
from palaver.service.brains.select import BrainFactory
from palaver.service.personas import PersonaService
from palaver.service.rooms.bus import RoomBus
from palaver.service.rooms.replica import ReplicaHost
from palaver.service.rooms.room import LocalRoom, Participant
from palaver.storage.base import ConversationRecord, Storage

log = logging.getLogger("palaver.rooms")

TOKEN_SECRET = "meeting_tokens"
NOT_ALLOWED = "You are not allowed to join this meeting."


@dataclass(frozen=True, slots=True)
class Refused(Exception):
    """A participant the room does not let in: the socket gets `message` and closes with `code`."""

    code: int
    message: str


class MeetingTokens:
    """Mints and checks `require_auth` tokens with the secret every process shares."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._secret: bytes | None = None

    async def secret(self) -> bytes:
        if self._secret is None:
            self._secret = await self._storage.rooms.shared_secret(TOKEN_SECRET)
        return self._secret

    async def mint(self, conversation_id: str, issued_at: float, expires_at: float) -> str:
        return meeting_token(await self.secret(), conversation_id, issued_at, expires_at)

    async def admits(self, token: str, conversation_id: str, now: float) -> bool:
        return token_admits(await self.secret(), token, conversation_id, now)


class RoomHub:
    def __init__(
        self,
        storage: Storage,
        bus: RoomBus,
        brains: BrainFactory,
        personas: PersonaService,
        tokens: MeetingTokens,
        clock: Clock,
        *,
        poll_interval: float = 0.2,
        lease: float = 5.0,
    ) -> None:
        self._storage = storage
        self._rooms_store = storage.rooms
        self._bus = bus
        self._brains = brains
        self._personas = personas
        self._tokens = tokens
        self._clock = clock
        self._poll = poll_interval
        self._lease = lease
        self.host_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rooms: dict[str, LocalRoom] = {}
        self._records: dict[str, ConversationRecord] = {}
        self._renewed_at = 0.0  # when every room's host lease was last claimed or renewed

    # -- joining and leaving ---------------------------------------------------------------

    async def admit(self, conversation_id: str, token: str | None, user_name: str) -> tuple[LocalRoom, Participant]:
        record = await self._active(conversation_id)
        request = record.request
        props = request.get("properties") or {}
        now = self._clock.now()
        if request.get("require_auth") or props.get("require_auth"):
            if not token or not await self._tokens.admits(token, conversation_id, now):
                raise Refused(4401, NOT_ALLOWED)
        max_participants = request.get("max_participants")
        humans = None if max_participants is None else max(int(max_participants) - 1, 0)
        try:
            joined = await self._storage.record_presence(conversation_id, joined=True, at=now, limit=humans)
        except RoomFull:
            raise Refused(4409, "This meeting is full.") from None
        if not joined:
            raise Refused(4410, "This conversation has ended.")
        room = self.rooms.get(conversation_id)
        if room is None or room.closed:
            room = self.rooms[conversation_id] = LocalRoom(conversation_id, self._bus)
            room.on_host_released = self._take_over
        self._records[conversation_id] = record
        participant = Participant(uuid.uuid4().hex[:16], user_name[:100] or "Guest", round(now, 3))
        room.local[participant.participant_id] = participant
        participant.deliver(await self._welcome(record, room, participant))
        await self._ensure_host(room)
        await room.publish({"k": "join", "p": [participant.info()]})
        return room, participant

    async def _active(self, conversation_id: str) -> ConversationRecord:
        record = await self._storage.find_conversation(conversation_id) if is_conversation_id(conversation_id) else None
        if record is None:
            raise Refused(4404, "There is no such conversation.")
        if record.status != "active":
            raise Refused(4410, "This conversation has ended.")
        return record

    async def _welcome(self, record: ConversationRecord, room: LocalRoom, participant: Participant) -> dict[str, Any]:
        turns = await self._rooms_store.turns(record.conversation_id)
        transcript = [
            {"role": t["role"], "content": t["content"], "timestamp": t.get("timestamp")}
            for t in turns
            if t.get("role") in ("user", "assistant") and t.get("content")
        ]
        return ip.room_message(
            record.conversation_id,
            ip.ROOM_WELCOME,
            {
                "participant": participant.info(),
                "participants": [*room.roster.values()],
                "replica_id": record.replica_id,
                "replica_name": await self._replica_name(record),
                "persona_id": record.persona_id,
                "conversation_name": record.conversation_name,
                "status": record.status,
                "transcript": transcript,
            },
        )

    async def _replica_name(self, record: ConversationRecord) -> str:
        try:
            replica = await self._personas.replicas.document(record.account_id, record.replica_id, REPLICA)
        except InvalidId:  # deleted since the conversation began
            return record.replica_id
        return str(replica.get("replica_name") or record.replica_id)

    async def receive(self, room: LocalRoom, participant: Participant, text: str | bytes) -> None:
        """One frame from a participant: checked here, then published for the room (and its replica)."""
        try:
            message = ip.parse(text, room.conversation_id)
        except ip.ProtocolError as exc:
            participant.deliver(ip.room_message(room.conversation_id, ip.ROOM_ERROR, {"message": str(exc)}))
            return
        await room.publish(
            {"k": "in", "i": uuid.uuid4().hex[:12], "p": participant.participant_id, "e": message.event_type,
             "m": message.raw}
        )  # fmt: skip

    async def leave(self, room: LocalRoom, participant: Participant) -> None:
        if room.local.pop(participant.participant_id, None) is None:
            return
        with contextlib.suppress(Exception):
            await self._storage.record_presence(room.conversation_id, joined=False, at=self._clock.now())
        if not room.closed:
            await room.publish({"k": "leave", "p": participant.participant_id})
        if not room.local:
            await self._drop(room)

    async def _drop(self, room: LocalRoom) -> None:
        """No participant of this room is left here: give the replica up so another process can host it."""
        self.rooms.pop(room.conversation_id, None)
        self._records.pop(room.conversation_id, None)
        was_host = room.host is not None
        last = room.last_done
        await room.close(ip.room_message(room.conversation_id, ip.ROOM_ENDED, {}))
        if was_host:
            await self._rooms_store.release_host(room.conversation_id, self.host_id)
            await self._bus.publish(room.conversation_id, {"k": "released", "last": last})

    def _take_over(self, room: LocalRoom) -> None:
        if room.host is None and not room.closed:
            asyncio.get_running_loop().create_task(self._ensure_host(room))

    # -- hosting the replica ---------------------------------------------------------------

    async def _ensure_host(self, room: LocalRoom) -> None:
        await self._ensure_hosts([room])

    async def _ensure_hosts(self, rooms: list[LocalRoom]) -> None:
        """Claim (or renew) the replica of each room in one write; start or stop hosting to match."""
        if not rooms:
            return
        held = await self._rooms_store.claim_hosts(
            [room.conversation_id for room in rooms], self.host_id, self._clock.now(), self._lease
        )
        for room in rooms:
            cid = room.conversation_id
            if room.closed:
                continue
            if cid in held and room.host is None:
                room.start_hosting(await self._replica(self._records[cid], room))
            elif cid not in held and room.host is not None:
                await room.stop_hosting()

    async def _replica(self, record: ConversationRecord, room: LocalRoom) -> ReplicaHost:
        try:
            persona = await self._personas.document(record.account_id, record.persona_id, PERSONA)
        except InvalidId:  # deleted since: the conversation keeps the prompt it was created with
            persona = {"persona_id": record.persona_id, "pipeline_mode": "full",
                       "system_prompt": record.system_prompt, "layers": {}}  # fmt: skip
        request = record.request
        return ReplicaHost(
            record.conversation_id,
            record.account_id,
            record.replica_id,
            record.created_epoch,
            await self._brains.mind(record.account_id, persona),
            context=request.get("conversational_context"),
            document_ids=list(request.get("document_ids") or []),
            document_tags=list(request.get("document_tags") or []),
            greeting=request.get("custom_greeting"),
            turns=await self._rooms_store.turns(record.conversation_id),
            seq=room.max_seq,
            publish=room.publish,
            rooms=self._rooms_store,
            clock=self._clock,
        )

    # -- closing ---------------------------------------------------------------------------

    async def close_ended(self, conversation_ids: list[str] | None = None) -> int:
        """Close the local rooms whose conversation can no longer be joined; how many were closed."""
        ids = list(self.rooms) if conversation_ids is None else [c for c in conversation_ids if c in self.rooms]
        if not ids:
            return 0
        closed = await self._rooms_store.closed_among(ids)
        for cid in closed:
            room = self.rooms.pop(cid, None)
            if room is None:
                continue
            self._records.pop(cid, None)
            record = await self._storage.find_conversation(cid)
            reason = record.shutdown_reason if record is not None else "deleted"
            await room.close(
                ip.room_message(
                    cid,
                    ip.ROOM_ENDED,
                    {"status": "ended", "shutdown_reason": reason, "message": "This conversation has ended."},
                ),  # fmt: skip
                code=4410,
            )
        return len(closed)

    async def run(self) -> None:
        """Tick until cancelled: close ended rooms, renew (or take over) host leases."""
        while True:
            try:
                await self.close_ended()
                now = self._clock.now()
                if now - self._renewed_at >= self._lease / 3:  # every room's lease in one write
                    self._renewed_at = now
                    await self._ensure_hosts([room for room in self.rooms.values() if not room.closed])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room tick failed")
            await asyncio.sleep(self._poll)

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            if room.host is not None:
                await self._rooms_store.release_host(room.conversation_id, self.host_id)
            stopping = ip.room_message(room.conversation_id, ip.ROOM_ENDED, {"message": "The server is stopping."})
            await room.close(stopping, code=1001)
        self.rooms.clear()

    def ended_here(self, conversation_id: str) -> None:
        """This process ended (or deleted) the conversation: close its room now, not at the next tick."""
        if conversation_id in self.rooms:
            asyncio.get_running_loop().create_task(self.close_ended([conversation_id]))
