"""SQLite backend (WAL): the Storage interface over one file.

Writes go through the group committer of `sqlite_writer.py` (one transaction per
loop iteration, ends as one UPDATE); connections and WAL checkpoints come from
`sqlite_connection.py`. Reads use a second connection, on the loop too: in WAL
mode they never wait for the writer, and a primary-key read costs microseconds.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from palaver.domain.conversation import ENDS_FROM, ENDS_IN, EndOutcome, Status
from palaver.domain.errors import ConcurrencyLimitReached, RoomFull
from palaver.domain.signing import new_secret
from palaver.domain.timers import Presence, TimerSettings, next_deadline
from palaver.storage.base import (
    AccountRecord,
    ApiKeyRecord,
    ConversationRecord,
    EndRequest,
    FiredTimers,
)
from palaver.storage.migrations import apply_sqlite_migrations
from palaver.storage.rows import (
    CONVERSATION_COLUMN_COUNT,
    CONVERSATION_COLUMNS,
    conversation_from_row,
    conversation_row,
)
from palaver.storage.sqlite_connection import Checkpointer, backfill_webhook_secrets, connect
from palaver.storage.sqlite_document_chunks import SQLiteDocumentChunks
from palaver.storage.sqlite_media import SQLiteMedia
from palaver.storage.sqlite_outbox import SQLiteWebhookOutbox
from palaver.storage.sqlite_resources import SQLiteResources
from palaver.storage.sqlite_rooms import SQLiteRooms, purge_room
from palaver.storage.sqlite_writer import (
    END_RESERVE_BYTES,
    ENDED_FACTS,
    GroupCommitter,
    QueuedEnd,
    end_many,
    enqueue_end_webhooks,
    free_slots,
)

# With the room its end will fill (migration 0011).
_INSERT_CONVERSATION = (
    f"INSERT INTO conversations ({CONVERSATION_COLUMNS}, end_reserve) "
    f"VALUES ({', '.join('?' * CONVERSATION_COLUMN_COUNT)}, zeroblob({END_RESERVE_BYTES}))"
)
# The create's large text lives in conversation_texts (migration 0010), out of the row every end
# rewrites; the row keeps '' and '{}' there. Rows made before 0010 keep theirs, hence COALESCE.
_COLUMN_NAMES = [column.strip() for column in CONVERSATION_COLUMNS.split(",")]
_PROMPT, _REQUEST = _COLUMN_NAMES.index("system_prompt"), _COLUMN_NAMES.index("request")
_READ_COLUMNS = ", ".join(
    f"COALESCE(t.{name}, c.{name})" if name in ("system_prompt", "request") else f"c.{name}" for name in _COLUMN_NAMES
)
_READ_FROM = "conversations c LEFT JOIN conversation_texts t ON t.conversation_seq = c.seq"


def _key(row: tuple[Any, ...]) -> ApiKeyRecord:
    return ApiKeyRecord(*row)


class SQLiteStorage(SQLiteWebhookOutbox):
    def __init__(self, path: str, *, synchronous: str = "NORMAL", checkpoints: bool = True) -> None:
        """`checkpoints=False` for a process that only reads (the delivery worker): WAL checkpoints
        are the business of the process that writes."""
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"invalid SQLite synchronous setting {synchronous!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._synchronous = synchronous.upper()
        write_conn = connect(path, self._synchronous)
        self._read = connect(path, self._synchronous)
        self._writer = GroupCommitter(write_conn)
        self.resources = SQLiteResources(self._writer, self._read)
        self.document_chunks = SQLiteDocumentChunks(self._writer, self._read)
        self.media = SQLiteMedia(self._writer, self._read)
        self.rooms = SQLiteRooms(self._writer, self._read)
        self._checkpointer = Checkpointer(path, self._synchronous) if checkpoints else None
        self._closed = False

    async def migrate(self) -> list[str]:
        def run() -> list[str]:
            conn = connect(self.path, self._synchronous)
            try:
                applied = apply_sqlite_migrations(conn)
                backfill_webhook_secrets(conn)
                return applied
            finally:
                conn.close()

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
            self._read.close()
            if self._checkpointer is not None:
                self._checkpointer.close()

    async def ping(self) -> None:
        self._read.execute("SELECT 1").fetchone()

    # accounts and keys -----------------------------------------------------------

    async def create_account(self, account: AccountRecord) -> None:
        # The signing secret is made with the account: the delivery worker only reads this database.
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT INTO accounts (account_id, name, max_concurrent, created_at, webhook_secret) "
                "VALUES (?, ?, ?, ?, ?)",
                (account.account_id, account.name, account.max_concurrent, account.created_at, new_secret()),
            )
        )

    async def get_account(self, account_id: str) -> AccountRecord | None:
        row = self._read.execute(
            "SELECT account_id, name, max_concurrent, created_at FROM accounts WHERE account_id = ?", (account_id,)
        ).fetchone()
        return AccountRecord(*row) if row else None

    async def set_max_concurrent(self, account_id: str, max_concurrent: int | None) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "UPDATE accounts SET max_concurrent = ? WHERE account_id = ?", (max_concurrent, account_id)
            )
        )

    async def add_key(self, key: ApiKeyRecord) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT INTO api_keys (key_id, account_id, name, lookup, key_hash, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.key_id, key.account_id, key.name, key.lookup, key.key_hash, key.created_at, key.revoked_at),
            )
        )

    async def list_keys(self) -> list[ApiKeyRecord]:
        rows = self._read.execute(
            "SELECT key_id, account_id, name, lookup, key_hash, created_at, revoked_at FROM api_keys "
            "ORDER BY created_at, key_id"
        ).fetchall()
        return [_key(r) for r in rows]

    async def revoke_key(self, key_id: str, at: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id))
            return cur.rowcount == 1

        return await self._writer.submit(op)

    async def find_keys(self, lookup: str) -> list[ApiKeyRecord]:
        rows = self._read.execute(
            "SELECT key_id, account_id, name, lookup, key_hash, created_at, revoked_at FROM api_keys "
            "WHERE lookup = ? AND revoked_at IS NULL",
            (lookup,),
        ).fetchall()
        return [_key(r) for r in rows]

    async def count_keys(self) -> int:
        return self._read.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0]

    # conversations ---------------------------------------------------------------

    async def insert_conversation(self, conversation: ConversationRecord) -> None:
        c = conversation

        def op(conn: sqlite3.Connection) -> None:
            if not c.test_mode:
                # The counter is kept in the same transactions as every
                # transition, so the limit check is one row read, however many
                # conversations are active.
                row = conn.execute(
                    "SELECT max_concurrent, active_conversations FROM accounts WHERE account_id = ?",
                    (c.account_id,),
                ).fetchone()
                if row is not None and row[0] is not None and row[1] >= row[0]:
                    raise ConcurrencyLimitReached()
                conn.execute(
                    "UPDATE accounts SET active_conversations = active_conversations + 1 WHERE account_id = ?",
                    (c.account_id,),
                )
            values = list(conversation_row(c))
            texts = (values[_PROMPT], values[_REQUEST])
            values[_PROMPT], values[_REQUEST] = "", "{}"
            conn.execute(_INSERT_CONVERSATION, values)
            conn.execute(
                "INSERT INTO conversation_texts (conversation_seq, system_prompt, request) "
                "VALUES (last_insert_rowid(), ?, ?)",
                texts,
            )
            if c.callback_url and not c.test_mode:
                conn.execute(
                    "INSERT INTO webhook_outbox (conversation_id, change, at_epoch) VALUES (?, 'created', ?)",
                    (c.conversation_id, c.created_epoch),
                )

        await self._writer.submit(op)

    async def get_conversation(self, account_id: str, conversation_id: str) -> ConversationRecord | None:
        row = self._read.execute(
            f"SELECT {_READ_COLUMNS} FROM {_READ_FROM} "
            "WHERE c.conversation_id = ? AND c.account_id = ? AND c.deleted_at IS NULL",
            (conversation_id, account_id),
        ).fetchone()
        return conversation_from_row(row) if row else None

    async def find_conversation(self, conversation_id: str) -> ConversationRecord | None:
        row = self._read.execute(
            f"SELECT {_READ_COLUMNS} FROM {_READ_FROM} WHERE c.conversation_id = ? AND c.deleted_at IS NULL",
            (conversation_id,),
        ).fetchone()
        return conversation_from_row(row) if row else None

    async def list_conversations(
        self, account_id: str, *, status: str | None, limit: int, offset: int
    ) -> tuple[list[ConversationRecord], int]:
        where = "account_id = ? AND deleted_at IS NULL"
        args: list[Any] = [account_id]
        if status is not None:
            where += " AND status = ?"
            args.append(status)
        # One read transaction so the page and the total agree.
        cur = self._read.cursor()
        cur.execute("BEGIN")
        try:
            if status == Status.ACTIVE:
                # No index of active conversations (migration 0009): the account's counter is
                # their exact number (test-mode ones are never active, deleted ones are ended
                # first), and the walk of conversations_visible stops at the last one of the page,
                # so it goes back only as far as the oldest active conversation it returns.
                row = cur.execute(
                    "SELECT active_conversations FROM accounts WHERE account_id = ?", (account_id,)
                ).fetchone()
                total = row[0] if row else 0
                limit = max(0, min(limit, total - offset))
            else:
                total = cur.execute(f"SELECT COUNT(*) FROM conversations WHERE {where}", args).fetchone()[0]
            rows = (
                cur.execute(
                    f"SELECT {_READ_COLUMNS} FROM {_READ_FROM} WHERE {where} ORDER BY c.seq DESC LIMIT ? OFFSET ?",
                    [*args, limit, offset],
                ).fetchall()
                if limit
                else []
            )
        finally:
            cur.execute("COMMIT")
        return [conversation_from_row(r) for r in rows], total

    def end_conversation(
        self, account_id: str, conversation_id: str, reason: str, at: str, at_epoch: float | None = None
    ) -> Awaitable[EndOutcome]:
        epoch = time.time() if at_epoch is None else at_epoch
        return self._writer.end(QueuedEnd(account_id, conversation_id, reason, at, epoch))

    async def record_presence(self, conversation_id: str, *, joined: bool, at: float, limit: int | None = None) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT created_epoch, max_call_duration, participant_absent_timeout, participant_left_timeout, "
                f"participants, ever_joined, last_left_epoch FROM conversations "
                f"WHERE conversation_id = ? AND status = '{ENDS_FROM}'",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return False
            if joined and limit is not None and row[4] >= limit:
                raise RoomFull(conversation_id)
            presence = Presence(row[4], bool(row[5]), row[6])
            presence = presence.joined() if joined else presence.left(at)
            deadline = next_deadline(row[0], TimerSettings(row[1], row[2], row[3]), presence)
            conn.execute(
                "UPDATE conversations SET participants = ?, ever_joined = ?, last_left_epoch = ?, "
                "deadline = ?, deadline_reason = ? WHERE conversation_id = ?",
                (
                    presence.participants,
                    int(presence.ever_joined),
                    presence.last_left,
                    deadline.at,
                    deadline.reason,
                    conversation_id,
                ),
            )
            return True

        return await self._writer.submit(op)

    async def fire_due(self, now: float, at: str, limit: int = 500) -> FiredTimers:
        def op(conn: sqlite3.Connection) -> FiredTimers:
            # The first `limit` due deadlines, whatever their conversation's state. Ends do not
            # clear deadlines (one index page less to write per end, on the hot path), so some
            # of these belong to conversations that ended another way: they are cleared here,
            # in the same window, and the next call starts after them. A window that skipped
            # them instead would read every stale entry again on every call (measured with a
            # million of them, as after a long downtime: ~330 ms per call).
            due = conn.execute(
                f"SELECT seq, status = '{ENDS_FROM}' FROM conversations WHERE deadline <= ? ORDER BY deadline LIMIT ?",
                (now, limit),
            ).fetchall()
            if not due:
                return FiredTimers([], more=False)
            active = json.dumps([seq for seq, is_active in due if is_active])
            fired = conn.execute(
                f"UPDATE conversations SET status = '{ENDS_IN}', shutdown_reason = deadline_reason, "
                "updated_at = ?, ended_at = ?, end_reserve = NULL "
                f"WHERE seq IN (SELECT value FROM json_each(?)) AND status = '{ENDS_FROM}' AND deadline <= ? "
                f"RETURNING {ENDED_FACTS}, shutdown_reason",
                (at, at, active, now),
            ).fetchall()
            free_slots(conn, [r[1] for r in fired])
            enqueue_end_webhooks(conn, fired, now)
            conn.execute(
                "UPDATE conversations SET deadline = NULL WHERE seq IN (SELECT value FROM json_each(?))",
                (json.dumps([seq for seq, _ in due]),),
            )
            return FiredTimers([(r[0], r[1], r[3]) for r in fired], more=len(due) == limit)

        return await self._writer.submit(op)

    async def delete_conversation(
        self, account_id: str, conversation_id: str, *, hard: bool, reason: str, at: str, at_epoch: float | None = None
    ) -> bool:
        epoch = time.time() if at_epoch is None else at_epoch

        def op(conn: sqlite3.Connection) -> bool:
            request = EndRequest(account_id, conversation_id, reason, at, epoch)
            if end_many(conn, [request])[0] is EndOutcome.NOT_FOUND:
                return False
            if hard:
                # Purged means purged: the delivery worker drops the conversation's
                # webhooks and their attempts when it reaches this outbox row.
                conn.execute(
                    "DELETE FROM conversation_texts WHERE conversation_seq = "
                    "(SELECT seq FROM conversations WHERE conversation_id = ?)",
                    (conversation_id,),
                )
                conn.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))
                purge_room(conn, conversation_id)  # its transcript and room host too
                conn.execute(
                    "INSERT INTO webhook_outbox (conversation_id, change, at_epoch) VALUES (?, 'purged', ?)",
                    (conversation_id, epoch),
                )
            else:
                # Never before the end (ended_at is set by now): an end stamped later than this
                # delete may have been written first, both stamps taken before the writer ran them.
                conn.execute(
                    "UPDATE conversations SET deleted_at = MAX(?1, IFNULL(ended_at, ?1)), "
                    "updated_at = MAX(?1, IFNULL(ended_at, ?1)) WHERE conversation_id = ?2",
                    (at, conversation_id),
                )
            return True

        return await self._writer.submit(op)

    # metrics -----------------------------------------------------------------------

    async def metrics_snapshot(self) -> dict[str, dict[str, int]]:
        # The counts scan whole tables: measured ~20 ms at 60,000 conversations and
        # ~400 ms at a million, far too long to hold the event loop. So unlike every
        # other read they run in a thread, on a connection of their own (SQLite
        # releases the GIL while it scans); the hot end path gains no write or index.
        return await asyncio.to_thread(self._metrics_snapshot)

    def _metrics_snapshot(self) -> dict[str, dict[str, int]]:
        conn = connect(self.path, self._synchronous)
        try:
            conn.execute("BEGIN")  # one read transaction: the figures agree with each other
            conversations = conn.execute(
                "SELECT status, shutdown_reason, COUNT(*) FROM conversations GROUP BY status, shutdown_reason"
            ).fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
        by_status: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for status, reason, count in conversations:
            by_status[status] = by_status.get(status, 0) + count
            if reason is not None:
                by_reason[reason] = by_reason.get(reason, 0) + count
        return {"conversations_by_status": by_status, "endings_by_reason": by_reason}
