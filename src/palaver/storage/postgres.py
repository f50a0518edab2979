"""PostgreSQL backend: the same `Storage` as SQLite, for any number of processes on one database.

What differs from SQLite, and why:
- Ends are group-committed in overlapping batches (storage/postgres_ends.py)
  rather than on one writer: PostgreSQL has many writers, and every process is one.
- Creates are group-committed too (storage/postgres_creates.py).
- The concurrency limit is not a counter on the account row. Every end of an
  account would update that one row, and all ends of the account, in every
  process, would queue on its lock. Instead a batch of creates locks the rows
  of the accounts in it that have a limit (their creates take turns; ends never
  touch them) and counts their active conversations, at most `limit` of them,
  on the `conversations_active` index. Unlimited accounts take no lock at all.
- Transitions out of `active` clear the deadline in the same UPDATE, so the
  timers' index holds active conversations only and no later write is needed.
- Timers: `fire_due` skips rows another process is ending or firing
  (`FOR UPDATE SKIP LOCKED`), so every process can run the timer tick and each
  conversation still ends once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import asyncpg

from palaver.domain.conversation import ENDS_FROM, ENDS_IN, EndOutcome, History, parse_turns
from palaver.domain.errors import RoomFull
from palaver.domain.signing import new_secret
from palaver.domain.timers import Presence, TimerSettings, next_deadline
from palaver.storage.base import (
    AccountRecord,
    ApiKeyRecord,
    ConversationRecord,
    EndRequest,
    FiredTimers,
    OutboxChange,
)
from palaver.storage.migrations import apply_postgres_migrations
from palaver.storage.postgres_batches import Batcher
from palaver.storage.postgres_creates import insert_many
from palaver.storage.postgres_document_chunks import PostgresDocumentChunks
from palaver.storage.postgres_ends import end_many
from palaver.storage.postgres_media import PostgresMedia
from palaver.storage.postgres_pool import DEFAULT_POOL_SIZE, LazyPool
from palaver.storage.postgres_resources import PostgresResources
from palaver.storage.postgres_rooms import PostgresRooms, purge_room, transcript_of_ended
from palaver.storage.rows import CONVERSATION_COLUMNS, conversation_from_row

_KEY_COLUMNS = "key_id, account_id, name, lookup, key_hash, created_at, revoked_at"
# refresh_statistics: which tables, and how much change since their last ANALYZE is too much
# (autovacuum's own rule, 50 rows + 10 %, but checked every few seconds instead of every minute).
BUSY_TABLES = ("conversations", "webhook_outbox", "webhook_deliveries", "webhook_attempts")
ANALYZE_THRESHOLD = 1000
ANALYZE_SCALE_FACTOR = 0.1
STATISTICS_LOCK = 0x70616C6176657203
_MAX_SEQ = 2**63 - 1


def _key(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(*row)


class PostgresStorage:
    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self._pool = LazyPool(url, max_size=pool_size)
        self._ends: Batcher[EndRequest, EndOutcome] = Batcher(self._pool, end_many)
        self._creates: Batcher[ConversationRecord, None] = Batcher(self._pool, insert_many)
        self.resources = PostgresResources(self._pool)
        self.document_chunks = PostgresDocumentChunks(self._pool)
        self.media = PostgresMedia(self._pool)
        self.rooms = PostgresRooms(self._pool)

    async def migrate(self) -> list[str]:
        conn = await self._pool.one_off()
        try:
            applied = await apply_postgres_migrations(conn)
            # Parity with SQLite's migrate: every account has a signing secret.
            missing = await conn.fetch("SELECT account_id FROM accounts WHERE webhook_secret IS NULL")
            for (account_id,) in missing:
                await conn.execute(
                    "UPDATE accounts SET webhook_secret = $1 WHERE account_id = $2 AND webhook_secret IS NULL",
                    new_secret(),
                    account_id,
                )
            return applied
        finally:
            await conn.close()

    async def close(self) -> None:
        await self._creates.drain()
        await self._ends.drain()
        await self._pool.close()

    async def ping(self) -> None:
        """One round trip to the database (GET /health)."""
        pool = await self._pool.get()
        await pool.fetchval("SELECT 1")

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self._pool.get()
        return await pool.fetch(query, *args)

    async def _fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        pool = await self._pool.get()
        return await pool.fetchrow(query, *args)

    async def _execute(self, query: str, *args: Any) -> str:
        pool = await self._pool.get()
        return await pool.execute(query, *args)

    # accounts and keys -----------------------------------------------------------

    async def create_account(self, account: AccountRecord) -> None:
        await self._execute(
            "INSERT INTO accounts (account_id, name, max_concurrent, created_at, webhook_secret) "
            "VALUES ($1, $2, $3, $4, $5)",
            account.account_id,
            account.name,
            account.max_concurrent,
            account.created_at,
            new_secret(),
        )

    async def get_account(self, account_id: str) -> AccountRecord | None:
        row = await self._fetchrow(
            "SELECT account_id, name, max_concurrent, created_at FROM accounts WHERE account_id = $1", account_id
        )
        return AccountRecord(*row) if row else None

    async def set_max_concurrent(self, account_id: str, max_concurrent: int | None) -> None:
        await self._execute("UPDATE accounts SET max_concurrent = $1 WHERE account_id = $2", max_concurrent, account_id)

    async def add_key(self, key: ApiKeyRecord) -> None:
        await self._execute(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            key.key_id,
            key.account_id,
            key.name,
            key.lookup,
            key.key_hash,
            key.created_at,
            key.revoked_at,
        )

    async def list_keys(self) -> list[ApiKeyRecord]:
        return [_key(r) for r in await self._fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id")]

    async def revoke_key(self, key_id: str, at: str) -> bool:
        status = await self._execute(
            "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL", at, key_id
        )
        return status == "UPDATE 1"

    async def find_keys(self, lookup: str) -> list[ApiKeyRecord]:
        rows = await self._fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE lookup = $1 AND revoked_at IS NULL", lookup
        )
        return [_key(r) for r in rows]

    async def count_keys(self) -> int:
        pool = await self._pool.get()
        return int(await pool.fetchval("SELECT count(*) FROM api_keys"))

    # conversations ---------------------------------------------------------------

    def insert_conversation(self, conversation: ConversationRecord) -> Awaitable[None]:
        return self._creates.submit(conversation)

    async def get_conversation(self, account_id: str, conversation_id: str) -> ConversationRecord | None:
        row = await self._by_id(conversation_id)
        return conversation_from_row(row) if row is not None and row["account_id"] == account_id else None

    async def find_conversation(self, conversation_id: str) -> ConversationRecord | None:
        row = await self._by_id(conversation_id)
        return conversation_from_row(row) if row is not None else None

    async def _by_id(self, conversation_id: str) -> asyncpg.Record | None:
        """A visible conversation's row, found through the primary key alone.

        The account and the deleted mark are checked here, not in the query: with
        them in the WHERE clause, stale statistics (a table that just grew) can
        make the planner walk an account's whole index instead (measured: 300 ms
        for one lookup in a new 20,000-row table; postgres_ends.py).
        """
        row = await self._fetchrow(
            f"SELECT {CONVERSATION_COLUMNS}, deleted_at FROM conversations WHERE conversation_id = $1",
            conversation_id,
        )
        return row if row is not None and row["deleted_at"] is None else None

    async def list_conversations(
        self, account_id: str, *, status: str | None, limit: int, offset: int
    ) -> tuple[list[ConversationRecord], int]:
        where = "account_id = $1 AND deleted_at IS NULL"
        args: list[Any] = [account_id]
        if status is not None:
            where += " AND status = $2"
            args.append(status)
        n = len(args)
        pool = await self._pool.get()
        # One snapshot for both, so the page and the total agree.
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = await conn.fetchval(f"SELECT count(*) FROM conversations WHERE {where}", *args)
            rows = await conn.fetch(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {where} "
                f"ORDER BY seq DESC LIMIT ${n + 1} OFFSET ${n + 2}",
                *args,
                limit,
                offset,
            )
        return [conversation_from_row(r) for r in rows], int(total)

    def end_conversation(
        self, account_id: str, conversation_id: str, reason: str, at: str, at_epoch: float | None = None
    ) -> Awaitable[EndOutcome]:
        epoch = time.time() if at_epoch is None else at_epoch
        return self._ends.submit(EndRequest(account_id, conversation_id, reason, at, epoch))

    async def record_presence(self, conversation_id: str, *, joined: bool, at: float, limit: int | None = None) -> bool:
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT created_epoch, max_call_duration, participant_absent_timeout, participant_left_timeout, "
                "participants, ever_joined, last_left_epoch, status FROM conversations "
                "WHERE conversation_id = $1 FOR UPDATE",  # the primary key alone: see _by_id
                conversation_id,
            )
            if row is None or row["status"] != ENDS_FROM:
                return False
            if joined and limit is not None and row[4] >= limit:
                raise RoomFull(conversation_id)
            presence = Presence(row[4], row[5], row[6])
            presence = presence.joined() if joined else presence.left(at)
            deadline = next_deadline(row[0], TimerSettings(row[1], row[2], row[3]), presence)
            await conn.execute(
                "UPDATE conversations SET participants = $1, ever_joined = $2, last_left_epoch = $3, "
                "deadline = $4, deadline_reason = $5 WHERE conversation_id = $6",
                presence.participants,
                presence.ever_joined,
                presence.last_left,
                deadline.at,
                str(deadline.reason),
                conversation_id,
            )
            return True

    async def fire_due(self, now: float, at: str, limit: int = 500) -> FiredTimers:
        rows = await self._fetch(
            "WITH due AS ("
            f"  SELECT conversation_id FROM conversations WHERE status = '{ENDS_FROM}' AND deadline <= $1 "
            "   ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED"
            "), fired AS ("
            f"  UPDATE conversations c SET status = '{ENDS_IN}', shutdown_reason = c.deadline_reason, "
            "   updated_at = $3, ended_at = $3, deadline = NULL, deadline_reason = NULL "
            f"  FROM due WHERE c.conversation_id = due.conversation_id AND c.status = '{ENDS_FROM}' "
            "   RETURNING c.conversation_id, c.account_id, c.callback_url, c.shutdown_reason"
            "), queued AS ("
            "  INSERT INTO webhook_outbox (conversation_id, change, at_epoch) "
            "  SELECT conversation_id, 'ended', $1 FROM fired WHERE callback_url <> ''"
            ") SELECT conversation_id, account_id, shutdown_reason FROM fired",
            now,
            limit,
            at,
        )
        return FiredTimers([(r[0], r[1], r[2]) for r in rows], more=len(rows) == limit)

    # webhooks ----------------------------------------------------------------------

    async def webhook_secret(self, account_id: str) -> str:
        row = await self._fetchrow("SELECT webhook_secret FROM accounts WHERE account_id = $1", account_id)
        if row is None or not row[0]:
            raise KeyError(account_id)
        return str(row[0])

    async def webhook_secrets(self) -> dict[str, str]:
        rows = await self._fetch("SELECT account_id, webhook_secret FROM accounts WHERE webhook_secret IS NOT NULL")
        return {r[0]: r[1] for r in rows}

    async def rotate_webhook_secret(self, account_id: str) -> str | None:
        secret = new_secret()
        status = await self._execute(
            "UPDATE accounts SET webhook_secret = $1 WHERE account_id = $2", secret, account_id
        )
        return secret if status == "UPDATE 1" else None

    async def read_outbox(
        self, after_seq: int, limit: int, through_seq: int | None = None, *, transcripts: bool = True
    ) -> list[OutboxChange]:
        """The outbox as it stands (for inspection and tests: the delivery workers take changes
        with `PostgresDeliveryLedger.take_outbox`, which is safe against commit order)."""
        rows = await self._fetch(
            "SELECT o.seq, o.conversation_id, o.change, o.detail, o.at_epoch, c.account_id, c.test_mode, "
            "c.replica_id, c.callback_url, c.system_prompt, c.created_at, c.ended_at, c.shutdown_reason, "
            f"{transcript_of_ended('o') if transcripts else 'NULL'} "
            "FROM webhook_outbox o LEFT JOIN conversations c ON c.conversation_id = o.conversation_id "
            "WHERE o.seq > $1 AND o.seq <= $2 ORDER BY o.seq LIMIT $3",
            after_seq,
            _MAX_SEQ if through_seq is None else through_seq,
            limit,
        )
        return [outbox_change(r) for r in rows]

    async def trim_outbox(self, through_seq: int, limit: int) -> int:
        status = await self._execute(
            "DELETE FROM webhook_outbox WHERE seq IN "
            "(SELECT seq FROM webhook_outbox WHERE seq <= $1 ORDER BY seq LIMIT $2)",
            through_seq,
            limit,
        )
        return int(status.split()[-1])

    async def request_replay(self, event_id: str, conversation_id: str) -> None:
        await self._execute(
            "INSERT INTO webhook_outbox (conversation_id, change, detail, at_epoch) VALUES ($1, 'replay', $2, $3)",
            conversation_id,
            event_id,
            time.time(),
        )

    async def delete_conversation(
        self, account_id: str, conversation_id: str, *, hard: bool, reason: str, at: str, at_epoch: float | None = None
    ) -> bool:
        epoch = time.time() if at_epoch is None else at_epoch
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction():
            # Lock the row first, whatever its status: of racing deletes, the first one
            # deletes and the others, waiting here, find it deleted (READ COMMITTED re-reads
            # the row they waited for). Ending alone would lock only active rows.
            row = await conn.fetchrow(
                "SELECT account_id, deleted_at FROM conversations WHERE conversation_id = $1 FOR UPDATE",
                conversation_id,
            )
            if row is None or row["account_id"] != account_id or row["deleted_at"] is not None:
                return False
            await end_many(conn, [EndRequest(account_id, conversation_id, reason, at, epoch)])
            if hard:
                # Purged means purged: the delivery workers drop the conversation's webhooks
                # and their attempts when they take this outbox row.
                await conn.execute("DELETE FROM conversations WHERE conversation_id = $1", conversation_id)
                await purge_room(conn, conversation_id)  # its transcript and room host too
                await conn.execute(
                    "INSERT INTO webhook_outbox (conversation_id, change, at_epoch) VALUES ($1, 'purged', $2)",
                    conversation_id,
                    epoch,
                )
            else:
                # Never before the end (ended_at is set by now): a racing end may have committed
                # with a later stamp than this delete's, both taken before their transactions.
                await conn.execute(
                    "UPDATE conversations SET deleted_at = GREATEST($1, ended_at), updated_at = GREATEST($1, ended_at) "
                    "WHERE conversation_id = $2",
                    at,
                    conversation_id,
                )
            return True

    # housekeeping ------------------------------------------------------------------

    async def refresh_statistics(self) -> list[str]:
        """ANALYZE the busy tables that changed much since their last analyze; the names analyzed.

        One process at a time (an advisory lock; the others skip). Why Palaver does
        this itself: autovacuum looks at tables once a minute, and a table that just
        grew from nothing (a new deployment, a burst) keeps the statistics of its
        empty or all-ended self meanwhile; with them the planner chose scans that made
        an end batch take 300-800 ms and a webhook claim 300-600 ms (measured,
        docs/performance.md). Checked every few seconds, this keeps plans right
        within seconds, at the cost of one small query per check.
        """
        pool = await self._pool.get()
        async with pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", STATISTICS_LOCK):
                return []
            try:
                stale = await conn.fetch(
                    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                    "WHERE s.relname = ANY($1::text[]) AND s.schemaname = current_schema() "
                    "AND s.n_mod_since_analyze > $2 + $3 * greatest(c.reltuples, 0)",
                    list(BUSY_TABLES),
                    ANALYZE_THRESHOLD,
                    ANALYZE_SCALE_FACTOR,
                )
                for (name,) in stale:
                    await conn.execute(f'ANALYZE "{name}"')
                return [name for (name,) in stale]
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", STATISTICS_LOCK)

    # metrics -----------------------------------------------------------------------

    async def metrics_snapshot(self) -> dict[str, dict[str, int]]:
        rows = await self._fetch("SELECT status, shutdown_reason, count(*) FROM conversations GROUP BY 1, 2")
        by_status: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for status, reason, count in rows:
            by_status[status] = by_status.get(status, 0) + count
            if reason is not None:
                by_reason[reason] = by_reason.get(reason, 0) + count
        return {"conversations_by_status": by_status, "endings_by_reason": by_reason}


def outbox_change(r: asyncpg.Record) -> OutboxChange:
    """An outbox row joined with its conversation's facts (None where the conversation is gone)."""
    history = None if r[5] is None else History(r[1], r[6], r[7], r[8], r[9], r[10], r[11], r[12], parse_turns(r[13]))
    return OutboxChange(r[0], r[1], r[2], r[3], r[4], r[5], history)
