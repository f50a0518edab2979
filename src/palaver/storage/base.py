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
from palaver.domain.lanes import Lane
from palaver.domain.shards import Shard
from palaver.domain.timers import Deadline, TimerSettings
from palaver.storage.document_chunks import DocumentChunks
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


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One webhook in the delivery ledger."""

    delivery_id: int
    event_id: str
    conversation_id: str
    account_id: str
    event_type: str
    url: str
    body: str
    status: str
    attempts: int
    created_epoch: float
    next_attempt_epoch: float
    last_status_code: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """An event rendered from an outbox change, to be stored in the ledger."""

    event_id: str
    conversation_id: str
    account_id: str
    event_type: str
    url: str
    body: str
    created_epoch: float


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: int
    attempt: int
    at_epoch: float
    status_code: int | None
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """An attempt and the state it leaves its delivery in, as the worker hands it to the ledger."""

    attempt: AttemptRecord
    status: str  # pending | delivered | failed
    next_attempt_epoch: float | None
    outcome: str  # for the totals: delivered | retry | failed


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


# Upper bounds of the delivery latency histogram, in seconds (prometheus_client's defaults).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf"))


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    by_status: dict[str, int]  # deliveries stored, by status
    attempts: dict[str, int]  # attempts ever recorded, by outcome (delivered | retry | failed)
    latency_buckets: dict[float, int]  # attempts by latency bucket (its upper bound in seconds), not cumulative
    latency_sum: float  # seconds, over every attempt that made a request

    @classmethod
    def from_named(cls, by_status: dict[str, int], named: dict[str, float]) -> LedgerTotals:
        """From the running totals a ledger keeps by name (see `attempt_totals`)."""
        return cls(
            by_status=by_status,
            attempts={k.removeprefix("outcome:"): int(v) for k, v in named.items() if k.startswith("outcome:")},
            latency_buckets={float(k.removeprefix("le:")): int(v) for k, v in named.items() if k.startswith("le:")},
            latency_sum=named.get("latency_sum", 0.0),
        )


def attempt_totals(results: list[AttemptResult]) -> dict[str, float]:
    """What a batch of attempts adds to a ledger's running totals, by name, in the order to write them:
    `outcome:<outcome>` and `le:<bucket>` counts, and `latency_sum` in seconds. Sorted, so that two
    writers adding to the same rows take their locks in one order."""
    totals: dict[str, float] = {}
    for r in results:
        names = [f"outcome:{r.outcome}"]
        if r.attempt.latency_ms is not None:
            seconds = r.attempt.latency_ms / 1000
            names.append(f"le:{next(bound for bound in LATENCY_BUCKETS if seconds <= bound)}")
            totals["latency_sum"] = totals.get("latency_sum", 0.0) + seconds
        for name in names:
            totals[name] = totals.get(name, 0.0) + 1
    return dict(sorted(totals.items()))


class DeliveryLedger(Protocol):
    """What became of each webhook: written by the delivery workers, read by the server and the CLI.

    Both backends implement this; how a worker takes and claims work differs
    (`ShardLedger` for SQLite's one worker per shard, `PostgresDeliveryLedger.take_outbox`
    and `claim` for PostgreSQL's many workers, docs/decisions.md #63).
    """

    async def migrate(self) -> list[str]: ...

    async def close(self) -> None: ...

    async def cursor(self, shard: Shard | None = None, lane: Lane = ...) -> int:
        """The last outbox seq whose events of this lane this shard's worker took into the ledger (set
        up for the shard count given, resetting every cursor to the lowest if the count changed);
        without a shard, the lowest of all shards and lanes: every change at or below it is in the
        ledger, whole. (PostgreSQL: 0, its workers delete the changes they take.)"""
        ...

    async def record(self, results: list[AttemptResult]) -> None:
        """Store a batch of attempts and their deliveries' states in one transaction."""
        ...

    async def list_deliveries(
        self, *, conversation_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        """Deliveries in their delivery order (a conversation's in the order its events go out)."""
        ...

    async def find_delivery(self, event_id: str) -> DeliveryRecord | None: ...

    async def list_attempts(self, delivery_id: int) -> list[AttemptRecord]: ...

    async def totals(self) -> LedgerTotals:
        """For GET /metrics, in one consistent read."""
        ...


class ShardLedger(DeliveryLedger, Protocol):
    """SQLite's ledger as its delivery worker uses it: one worker per shard, a cursor into the outbox."""

    async def ingest(
        self,
        deliveries: list[NewDelivery],
        cursor: int,
        *,
        purge: list[str],
        replay: list[str],
        shard: Shard = ...,
        lane: Lane = ...,
    ) -> list[DeliveryRecord]:
        """In one transaction: store new deliveries (an event_id already stored is skipped), delete the
        deliveries of purged conversations, queue replayed events again, and advance the shard's
        cursor of the lane. Returns the deliveries that became pending, in delivery order."""
        ...

    async def pending(self, shard: Shard = ...) -> list[DeliveryRecord]:
        """The shard's pending deliveries, in delivery order (its worker's queue after a restart)."""
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
