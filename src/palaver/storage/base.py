"""The storage interface every backend implements, and the records it speaks in.

Backends must make each mutating method one atomic transaction (and later the
outbox rows a change causes commit with it). The end transition is a
conditional write (`status = 'active'`) so that, however many callers race,
exactly one changes the row and so records the shutdown.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from palaver.domain.conversation import EndOutcome, History
from palaver.domain.timers import Deadline, TimerSettings
from palaver.storage.document_chunks import DocumentChunks
from palaver.storage.ledger import DeliveryLedger
from palaver.storage.resources import ResourceStore
from palaver.storage.rooms import RoomStore


@dataclass(frozen=True, slots=True)
class AccountRecord:
    account_id: str
    name: str
    max_concurrent: int | None
    created_at: str


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    account_id: str
    name: str
    lookup: str
    key_hash: str
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    conversation_id: str
    account_id: str
    conversation_name: str
    status: str
    test_mode: bool
    replica_id: str
    persona_id: str
    callback_url: str
    system_prompt: str
    meeting_token: str | None
    request: dict[str, Any]
    shutdown_reason: str | None
    created_at: str
    updated_at: str
    ended_at: str | None
    created_epoch: float = 0.0
    timers: TimerSettings = TimerSettings()
    deadline: Deadline | None = None  # None for test-mode and ended conversations

    @property
    def history(self) -> History:
        return History(
            self.conversation_id,
            self.test_mode,
            self.replica_id,
            self.callback_url,
            self.system_prompt,
            self.created_at,
            self.ended_at,
            self.shutdown_reason,
        )


@dataclass(frozen=True, slots=True)
class OutboxChange:
    """One row of the main database's outbox, with the facts its events are rendered from.

    `history` and `account_id` are None when the conversation is gone (hard-deleted).
    """

    seq: int
    conversation_id: str
    change: str  # created | ended | purged | replay
    detail: str | None  # replay: the event_id
    at_epoch: float
    account_id: str | None
    history: History | None


class Storage(Protocol):
    resources: ResourceStore  # personas, replicas, tools, ... and their jobs (storage/resources.py)
    document_chunks: DocumentChunks  # documents' text, full-text searched (storage/document_chunks.py)
    rooms: RoomStore  # live rooms' transcripts, hosts and shared secrets (storage/rooms.py)

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """One cheap query: raises if the database does not answer (GET /health)."""
        ...

    # accounts and keys -----------------------------------------------------------
    async def create_account(self, account: AccountRecord) -> None: ...

    async def get_account(self, account_id: str) -> AccountRecord | None: ...

    async def set_max_concurrent(self, account_id: str, max_concurrent: int | None) -> None: ...

    async def add_key(self, key: ApiKeyRecord) -> None: ...

    async def list_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_key(self, key_id: str, at: str) -> bool:
        """Mark a key revoked; False if no such active key."""
        ...

    async def find_keys(self, lookup: str) -> list[ApiKeyRecord]:
        """Active keys whose lookup prefix matches (usually zero or one)."""
        ...

    async def count_keys(self) -> int: ...

    # conversations ---------------------------------------------------------------
    def insert_conversation(self, conversation: ConversationRecord) -> Awaitable[None]:
        """Insert the conversation (an awaitable, like `end_conversation`: backends group-commit it).

        Raises ConcurrencyLimitReached when the account has a `max_concurrent` and
        already that many active non-test conversations: the limit is read and
        checked in the same transaction as the insert, so racing creates cannot
        overshoot it and a limit changed by the CLI applies at once.
        """
        ...

    async def get_conversation(self, account_id: str, conversation_id: str) -> ConversationRecord | None:
        """A visible (not deleted) conversation of this account, else None."""
        ...

    async def find_conversation(self, conversation_id: str) -> ConversationRecord | None:
        """A visible conversation by id alone, for the room page (which has no API key)."""
        ...

    async def list_conversations(
        self, account_id: str, *, status: str | None, limit: int, offset: int
    ) -> tuple[list[ConversationRecord], int]:
        """One page, newest first, and the total under the same filter."""
        ...

    def end_conversation(
        self, account_id: str, conversation_id: str, reason: str, at: str, at_epoch: float | None = None
    ) -> Awaitable[EndOutcome]:
        """The single active -> ended transition: status, reason and end time in one conditional write.

        Declared as returning an awaitable rather than `async def` so a backend
        can hand back its group-commit future directly (the end path is hot).
        """
        ...

    async def record_presence(self, conversation_id: str, *, joined: bool, at: float, limit: int | None = None) -> bool:
        """A participant joined (or left) an active conversation; its deadline is recomputed
        in the same transaction. False if the conversation is not active. A join raises RoomFull
        (and changes nothing) when `limit` participants are in already: checked in the same
        write, so joins racing through several processes cannot overshoot."""
        ...

    async def fire_due(self, now: float, at: str, limit: int = 500) -> FiredTimers:
        """End active conversations whose deadline is at or before `now`, with that deadline's
        reason, as one conditional write: at most `limit` due deadlines per call, so that one
        transaction stays small however many are due; `more` says whether to call again.

        The condition is checked in the write itself, so a join that moved the
        deadline, or an end that got there first, wins over a stale timer.
        """
        ...

    # webhooks ----------------------------------------------------------------------
    async def webhook_secret(self, account_id: str) -> str:
        """The account's signing secret (KeyError if no such account)."""
        ...

    async def webhook_secrets(self) -> dict[str, str]:
        """Every account's signing secret, for the delivery worker (a read: `migrate` gives accounts from
        before secrets were made with the account theirs)."""
        ...

    async def rotate_webhook_secret(self, account_id: str) -> str | None:
        """A new secret for the account (None if no such account)."""
        ...

    async def read_outbox(
        self, after_seq: int, limit: int, through_seq: int | None = None, *, transcripts: bool = True
    ) -> list[OutboxChange]:
        """Outbox changes after `after_seq` (and up to `through_seq`), in order, each with its
        conversation's current facts; an ended one's transcript turns only if `transcripts`."""
        ...

    async def trim_outbox(self, through_seq: int, limit: int) -> int:
        """Forget the oldest outbox changes the delivery ledger has taken (seq <= through_seq), at most
        about `limit` of them; returns how many."""
        ...

    async def request_replay(self, event_id: str, conversation_id: str) -> None:
        """Ask the delivery worker, through the outbox, to send an event again."""
        ...

    async def delete_conversation(
        self, account_id: str, conversation_id: str, *, hard: bool, reason: str, at: str, at_epoch: float | None = None
    ) -> bool:
        """End (if active) then soft- or hard-delete; False if not visible to this account."""
        ...

    # metrics -----------------------------------------------------------------------
    async def metrics_snapshot(self) -> dict[str, dict[str, int]]:
        """Counts for `GET /metrics`, read at scrape time from every row stored (soft-deleted
        included, hard-deleted gone), in one consistent read:
        `{"conversations_by_status": {status: n}, "endings_by_reason": {shutdown_reason: n}}`.
        Only values present in the database appear."""
        ...


@dataclass(slots=True)
class EndRequest:
    """One request to end a conversation, as both backends' batched ends take it."""

    account_id: str
    conversation_id: str
    reason: str
    at: str
    at_epoch: float


@dataclass(frozen=True, slots=True)
class FiredTimers:
    """What one `fire_due` call did: the conversations it ended, as (conversation_id,
    account_id, shutdown_reason), and whether due deadlines may remain beyond its bound."""

    fired: list[tuple[str, str, str]]
    more: bool


def backend_of(database_url: str) -> str:
    """ "sqlite" or "postgres", from the URL scheme (ValueError for anything else)."""
    if database_url.startswith("sqlite:"):
        return "sqlite"
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    raise ValueError(
        f"unsupported database URL {database_url!r}: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"
    )


def open_storage(database_url: str, *, synchronous: str = "NORMAL", pool_size: int | None = None) -> Storage:
    """Pick a backend from the URL scheme."""
    if backend_of(database_url) == "sqlite":
        from palaver.storage.sqlite import SQLiteStorage
        from palaver.storage.sqlite_connection import sqlite_path

        return SQLiteStorage(sqlite_path(database_url), synchronous=synchronous)
    from palaver.storage.postgres import PostgresStorage
    from palaver.storage.postgres_pool import DEFAULT_POOL_SIZE

    return PostgresStorage(database_url, pool_size=pool_size or DEFAULT_POOL_SIZE)


def open_ledger(database_url: str) -> DeliveryLedger:
    """The delivery ledger that goes with a database URL (for SQLite, a file next to the database;
    for PostgreSQL, tables in the same database)."""
    if backend_of(database_url) == "sqlite":
        from palaver.storage.sqlite_connection import sqlite_path
        from palaver.storage.sqlite_ledger import SQLiteDeliveryLedger, ledger_path

        return SQLiteDeliveryLedger(ledger_path(sqlite_path(database_url)))
    from palaver.storage.postgres_ledger import PostgresDeliveryLedger

    return PostgresDeliveryLedger(database_url)
