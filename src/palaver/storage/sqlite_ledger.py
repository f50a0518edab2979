"""The webhook delivery ledger in SQLite: a database file of its own, next to the main one.

Why a second file: the main database has one writer that matters, the API's
group commit on the event loop, and every millisecond another process holds
its write lock is a millisecond that ends wait. Delivery writes a row per
attempt at the rate webhooks go out (tens of thousands a second under load);
in a file of its own, those writes never meet the API's. The main database
keeps only what must commit with a state change: the outbox row.

Only the delivery worker writes here (the server and the CLI read), so its
connection needs no group commit: the worker already batches, one transaction
per ingest and one per batch of results.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from palaver.domain.events import split_event_id
from palaver.domain.lanes import LANES, Lane
from palaver.domain.shards import ALL, Shard
from palaver.storage.ledger import (
    AttemptRecord,
    AttemptResult,
    DeliveryRecord,
    LedgerTotals,
    NewDelivery,
    attempt_totals,
)
from palaver.storage.migrations import apply_sqlite_migrations
from palaver.storage.sqlite_connection import connect

_COLUMNS = (
    "delivery_id, event_id, conversation_id, account_id, event_type, url, body, status, attempts, "
    "created_epoch, next_attempt_epoch, last_status_code, last_error"
)


# A conversation's deliveries: those with its number (migration 0005 says why they are numbered).
_OF_CONVERSATION = "conversation_no = (SELECT conversation_no FROM ledger_conversations WHERE conversation_id = ?)"


# Bytes per page of a new ledger file. Storing a delivery dirties a few index pages, and a dirty
# page costs about the same to write to the WAL and checkpoint whatever its size: measured
# (docs/performance.md) with 140,000 random-keyed rows, 8 KiB pages stored a delivery in 15 %
# less time (10 % less CPU) than 4 KiB ones.
PAGE_SIZE = 8192


def ledger_path(database_path: str) -> str:
    """`data/palaver.db` -> `data/palaver.webhooks.db` (a name without a suffix gets `.webhooks.db`)."""
    p = Path(database_path)
    if p.suffix:
        return str(p.with_name(f"{p.stem}.webhooks{p.suffix}"))
    return str(p.with_name(f"{p.name}.webhooks.db"))


def _connect(path: str) -> sqlite3.Connection:
    return connect(path, "NORMAL", checkpoint_on_commit=True, page_size=PAGE_SIZE)


class SQLiteDeliveryLedger:
    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = _connect(path)

    async def migrate(self) -> list[str]:
        return apply_sqlite_migrations(self._conn, "sqlite_ledger")

    async def close(self) -> None:
        self._conn.close()

    async def cursor(self, shard: Shard | None = None, lane: Lane = Lane.SYSTEM) -> int:
        if shard is None:
            row = self._conn.execute("SELECT MIN(outbox_seq) FROM ingest_lane_cursors").fetchone()
            return int(row[0] or 0)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT shard, lane, shards, outbox_seq FROM ingest_lane_cursors").fetchall()
            wanted = sorted((i, str(each), shard.count) for i in range(shard.count) for each in LANES)
            if sorted((r[0], r[1], r[2]) for r in rows) != wanted:
                # Another number of workers than last time: every shard and lane starts again
                # from the lowest cursor, so no change is missed by a conversation moving shards.
                base = min((r[3] for r in rows), default=0)
                conn.execute("DELETE FROM ingest_lane_cursors")
                conn.executemany(
                    "INSERT INTO ingest_lane_cursors (shard, lane, shards, outbox_seq) VALUES (?, ?, ?, ?)",
                    [(*w, base) for w in wanted],
                )
            (seq,) = conn.execute(
                "SELECT outbox_seq FROM ingest_lane_cursors WHERE shard = ? AND lane = ?", (shard.index, str(lane))
            ).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(seq)

    async def ingest(
        self,
        deliveries: list[NewDelivery],
        cursor: int,
        *,
        purge: list[str],
        replay: list[str],
        shard: Shard = ALL,
        lane: Lane = Lane.SYSTEM,
    ) -> list[DeliveryRecord]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for conversation_id in purge:
                conn.execute(
                    "DELETE FROM attempts WHERE delivery_id IN "
                    f"(SELECT delivery_id FROM deliveries WHERE {_OF_CONVERSATION})",
                    (conversation_id,),
                )
                conn.execute(f"DELETE FROM deliveries WHERE {_OF_CONVERSATION}", (conversation_id,))
                conn.execute("DELETE FROM ledger_conversations WHERE conversation_id = ?", (conversation_id,))
            rows: list[Any] = []
            numbers: dict[str, int] = {}
            # A statement per row, not one INSERT ... SELECT FROM json_each(batch): measured,
            # 8 us a row against 14, because `value ->> n` parses the row's JSON again for
            # every column. `rowcount` is 0 where the event was already stored.
            insert = conn.cursor()
            for d in deliveries:
                number = numbers.get(d.conversation_id)
                if number is None:
                    number = numbers[d.conversation_id] = self._number(d.conversation_id)
                insert.execute(
                    "INSERT INTO deliveries (conversation_no, event_id, conversation_id, account_id, event_type, "
                    "url, body, created_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(conversation_no, event_type) DO NOTHING",
                    (number, d.event_id, d.conversation_id, d.account_id, d.event_type, d.url, d.body, d.created_epoch),
                )
                if insert.rowcount:
                    rows.append(
                        (insert.lastrowid, d.event_id, d.conversation_id, d.account_id, d.event_type, d.url, d.body)
                        + ("pending", 0, d.created_epoch, 0.0, None, None)
                    )
            replayed_at = time.time()
            replayed: list[Any] = []
            for parts in filter(None, map(split_event_id, replay)):
                replayed.extend(
                    conn.execute(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_epoch = 0, "
                        f"finished_epoch = NULL, created_epoch = ? WHERE {_OF_CONVERSATION} AND event_type = ? "
                        f"AND status != 'pending' RETURNING {_COLUMNS}",
                        (replayed_at, *parts),
                    ).fetchall()
                )
            rows.extend(sorted(replayed, key=lambda r: r[0]))
            conn.execute(
                "UPDATE ingest_lane_cursors SET outbox_seq = ? WHERE shard = ? AND lane = ? AND outbox_seq < ?",
                (cursor, shard.index, str(lane), cursor),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [DeliveryRecord(*r) for r in rows]

    def _number(self, conversation_id: str) -> int:
        """The conversation's number, given the first time the ledger sees it (inside the caller's transaction)."""
        conn = self._conn
        row = conn.execute(
            "SELECT conversation_no FROM ledger_conversations WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = conn.execute("INSERT INTO ledger_conversations (conversation_id) VALUES (?)", (conversation_id,))
        return int(cursor.lastrowid or 0)

    async def pending(self, shard: Shard = ALL) -> list[DeliveryRecord]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM deliveries WHERE status = 'pending' ORDER BY delivery_id"
        ).fetchall()
        return [DeliveryRecord(*r) for r in rows if shard.owns(r[2])]

    async def record(self, results: list[AttemptResult]) -> None:
        if not results:
            return
        totals = attempt_totals(results)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Attempts of a purged delivery (purged while in flight) are dropped with it.
            conn.executemany(
                "INSERT INTO attempts (delivery_id, attempt, at_epoch, status_code, latency_ms, error) "
                "SELECT ?1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts WHERE delivery_id = ?1), "
                "?2, ?3, ?4, ?5 "
                "WHERE EXISTS (SELECT 1 FROM deliveries WHERE delivery_id = ?1)",
                [
                    (a.delivery_id, a.at_epoch, a.status_code, a.latency_ms, a.error)
                    for a in (r.attempt for r in results)
                ],
            )
            conn.executemany(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_epoch = ?, "
                "last_status_code = ?, last_error = ?, finished_epoch = ? WHERE delivery_id = ?",
                [
                    (
                        r.status,
                        r.next_attempt_epoch or 0,
                        r.attempt.status_code,
                        r.attempt.error,
                        None if r.status == "pending" else r.attempt.at_epoch,
                        r.attempt.delivery_id,
                    )
                    for r in results
                ],
            )
            conn.executemany(
                "INSERT INTO attempt_totals (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                list(totals.items()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def list_deliveries(
        self, *, conversation_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        where: list[str] = ["1 = 1"]
        args: list[object] = []
        if conversation_id is not None:
            where.append(_OF_CONVERSATION)
            args.append(conversation_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM deliveries WHERE {' AND '.join(where)} ORDER BY delivery_id LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [DeliveryRecord(*r) for r in rows]

    async def find_delivery(self, event_id: str) -> DeliveryRecord | None:
        parts = split_event_id(event_id)
        if parts is None:
            return None
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM deliveries WHERE {_OF_CONVERSATION} AND event_type = ?", parts
        ).fetchone()
        return DeliveryRecord(*row) if row else None

    async def list_attempts(self, delivery_id: int) -> list[AttemptRecord]:
        rows = self._conn.execute(
            "SELECT delivery_id, attempt, at_epoch, status_code, latency_ms, error FROM attempts "
            "WHERE delivery_id = ? ORDER BY attempt",
            (delivery_id,),
        ).fetchall()
        return [AttemptRecord(*r) for r in rows]

    async def totals(self) -> LedgerTotals:
        # Counting deliveries by status scans the table: in a thread, on a connection
        # of its own, as the main database's metrics are (storage/sqlite.py).
        return await asyncio.to_thread(self._totals)

    def _totals(self) -> LedgerTotals:
        conn = _connect(self.path)
        try:
            conn.execute("BEGIN")
            by_status = dict(conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall())
            totals = dict(conn.execute("SELECT name, value FROM attempt_totals").fetchall())
            conn.execute("COMMIT")
        finally:
            conn.close()
        return LedgerTotals.from_named(by_status, totals)
