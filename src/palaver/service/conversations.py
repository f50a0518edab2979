"""The Conversations use cases: create, read, list, end, delete.

The service owns the rules that need storage (replica resolution, concurrency,
visibility) and leaves each state change to one storage call, so the change and
the events it records commit together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from palaver.domain import conversation as lifecycle
from palaver.domain.catalog import DEFAULT_PERSONA_ID
from palaver.domain.clock import Clock, iso_timestamp
from palaver.domain.conversation import EndOutcome, ShutdownReason
from palaver.domain.errors import InvalidId, ValidationFailed
from palaver.domain.ids import is_conversation_id, is_resource_id, new_conversation_id
from palaver.domain.personas import PERSONA
from palaver.domain.timers import Presence, TimerSettings, next_deadline
from palaver.service.memories import MemoryService
from palaver.service.personas import PersonaService
from palaver.service.replicas import ReplicaService
from palaver.storage.base import ConversationRecord, Storage
from palaver.storage.ledger import DeliveryLedger


class TokenMinter(Protocol):
    async def mint(self, conversation_id: str, issued_at: float, expires_at: float) -> str: ...


@dataclass(frozen=True, slots=True)
class CreateConversation:
    """A validated create request; `request` keeps every accepted field for storage."""

    replica_id: str | None = None
    persona_id: str | None = None
    conversation_name: str | None = None
    callback_url: str = ""
    conversational_context: str | None = None
    test_mode: bool = False
    require_auth: bool = False
    timers: TimerSettings = TimerSettings()
    request: dict[str, Any] = field(default_factory=dict)
    # Chosen by a caller that must name the conversation before it exists (a deployment counts a
    # conversation against its limits first, then creates it); otherwise a new id.
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationView:
    record: ConversationRecord
    events: list[dict[str, Any]] | None = None
    webhook_deliveries: list[dict[str, Any]] | None = None


class ConversationService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        public_url: str,
        *,
        ledger: DeliveryLedger | None = None,
        personas: PersonaService | None = None,
        memories: MemoryService | None = None,
        tokens: TokenMinter | None = None,
    ) -> None:
        self._storage = storage
        self._ledger = ledger
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        self._personas = personas or PersonaService(storage.resources, clock, ReplicaService(storage.resources, clock))
        self._memories = memories
        self._tokens = tokens
        # Called with the id of every conversation this process ends (the rooms close its sockets at once).
        self.on_ended: Callable[[str], None] | None = None

    def conversation_url(self, conversation_id: str) -> str:
        return f"{self._public_url}/rooms/{conversation_id}"

    async def create(self, account_id: str, spec: CreateConversation) -> ConversationRecord:
        persona, replica_id = await self._resolve(account_id, spec)
        persona_id = persona["persona_id"]
        system_prompt = "\n\n".join(p for p in (persona["system_prompt"], persona["context"]) if p)
        now = self._clock.now()
        stamp = iso_timestamp(now)
        conversation_id = spec.conversation_id or new_conversation_id()
        token = None
        if spec.require_auth:
            if self._tokens is None:
                raise ValidationFailed("require_auth rooms are not available on this server")
            token = await self._tokens.mint(conversation_id, now, now + spec.timers.participant_absent_timeout)
        if spec.conversational_context:
            system_prompt = f"{system_prompt}\n\n{spec.conversational_context}".strip()
        record = ConversationRecord(
            conversation_id=conversation_id,
            account_id=account_id,
            conversation_name=spec.conversation_name or f"New Conversation {int(now * 1000)}",
            status=lifecycle.initial_status(spec.test_mode),
            test_mode=spec.test_mode,
            replica_id=replica_id,
            persona_id=persona_id,
            callback_url=spec.callback_url,
            system_prompt=system_prompt,
            meeting_token=token,
            request=spec.request,
            shutdown_reason=None,
            created_at=stamp,
            updated_at=stamp,
            ended_at=stamp if spec.test_mode else None,
            created_epoch=now,
            timers=spec.timers,
            deadline=None if spec.test_mode else next_deadline(now, spec.timers, Presence()),
        )
        await self._storage.insert_conversation(record)
        stores = spec.request.get("memory_stores")
        if stores and self._memories is not None:
            # The conversation's memory stores start with the PAL's seed lines (reference 11).
            await self._memories.remember(
                account_id, stores, persona["memories"], persona_id=persona_id, conversation_id=conversation_id
            )
        return record

    async def _resolve(self, account_id: str, spec: CreateConversation) -> tuple[dict[str, Any], str]:
        """Persona and replica as Tavus resolves them: the request's replica wins, else the persona's default.

        Either may be a stock object or one of the account's own; another account's is an invalid id.
        """
        if spec.persona_id is None and spec.replica_id is None:
            raise ValidationFailed(
                "replica_id is required: pass replica_id (or face_id), "
                "or a persona_id whose persona has a default replica"
            )
        persona_id = spec.persona_id or DEFAULT_PERSONA_ID
        if not is_resource_id(persona_id):
            raise InvalidId("persona_id")
        persona = await self._personas.document(account_id, persona_id, PERSONA)
        replica_id = spec.replica_id or persona["default_replica_id"]
        if replica_id is None:
            raise ValidationFailed(f"replica_id is required: persona {persona_id} has no default replica")
        if not is_resource_id(replica_id) or not await self._personas.replicas.usable(account_id, replica_id):
            raise InvalidId("replica_id")
        return persona, replica_id

    def _visible_id(self, conversation_id: str) -> str:
        if not is_conversation_id(conversation_id):
            raise InvalidId("conversation_id")
        return conversation_id

    async def get(self, account_id: str, conversation_id: str, *, verbose: bool = False) -> ConversationView:
        record = await self._storage.get_conversation(account_id, self._visible_id(conversation_id))
        if record is None:
            raise InvalidId("conversation_id")
        if not verbose:
            return ConversationView(record)
        history = record.history
        if history.ended_at is not None and not history.test_mode:
            history = replace(history, turns=tuple(await self._storage.rooms.turns(conversation_id)))
        events = [e.envelope() for e in lifecycle.lifecycle_events(history)]
        return ConversationView(record, events, await self._deliveries(conversation_id))

    async def _deliveries(self, conversation_id: str) -> list[dict[str, Any]]:
        """Palaver's addition to the verbose view: what became of each webhook, attempt by attempt."""
        if self._ledger is None:
            return []
        out = []
        for d in await self._ledger.list_deliveries(conversation_id=conversation_id):
            attempts = [
                {
                    "at": iso_timestamp(a.at_epoch),
                    "status_code": a.status_code,
                    "latency_ms": None if a.latency_ms is None else round(a.latency_ms, 3),
                    "error": a.error,
                }
                for a in await self._ledger.list_attempts(d.delivery_id)
            ]
            out.append(
                {
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "url": d.url,
                    "status": d.status,
                    "attempts": attempts,
                }
            )
        return out

    async def list(
        self, account_id: str, *, status: str | None, limit: int, page: int
    ) -> tuple[list[ConversationRecord], int]:
        return await self._storage.list_conversations(account_id, status=status, limit=limit, offset=(page - 1) * limit)

    async def end(
        self, account_id: str, conversation_id: str, reason: ShutdownReason = ShutdownReason.END_ENDPOINT
    ) -> EndOutcome:
        """End once; a second end is a quiet success. Unknown or foreign ids raise InvalidId."""
        outcome = await self.start_end(account_id, conversation_id, reason)
        return self.finish_end(conversation_id, outcome)

    def start_end(
        self, account_id: str, conversation_id: str, reason: ShutdownReason = ShutdownReason.END_ENDPOINT
    ) -> Awaitable[EndOutcome]:
        """The first half of `end`, for callers that wait without a coroutine (api/end_protocol.py).

        Raises InvalidId for a malformed id; the storage's outcome goes to `finish_end`.
        """
        now = self._clock.now()
        return self._storage.end_conversation(
            account_id, self._visible_id(conversation_id), reason, iso_timestamp(now), now
        )

    def finish_end(self, conversation_id: str, outcome: EndOutcome) -> EndOutcome:
        """The second half of `end`: an unknown or foreign id is InvalidId; a real end tells the rooms."""
        if outcome is EndOutcome.NOT_FOUND:
            raise InvalidId("conversation_id")
        if outcome is EndOutcome.ENDED and self.on_ended is not None:
            self.on_ended(conversation_id)
        return outcome

    async def participant_joined(self, conversation_id: str) -> bool:
        """A participant entered the room (called by the room): the absent timer stops applying.

        False if the conversation is not active (the room is closed).
        """
        return await self._storage.record_presence(conversation_id, joined=True, at=self._clock.now())

    async def participant_left(self, conversation_id: str) -> bool:
        """A participant left: when nobody is left, `participant_left_timeout` starts counting."""
        return await self._storage.record_presence(conversation_id, joined=False, at=self._clock.now())

    async def delete(self, account_id: str, conversation_id: str, *, hard: bool = False) -> None:
        """Delete; an active conversation is ended first, as its room goes away."""
        now = self._clock.now()
        found = await self._storage.delete_conversation(
            account_id,
            self._visible_id(conversation_id),
            hard=hard,
            reason=ShutdownReason.ROOM_DELETED,
            at=iso_timestamp(now),
            at_epoch=now,
        )
        if not found:
            raise InvalidId("conversation_id")
        if self.on_ended is not None:
            self.on_ended(conversation_id)
