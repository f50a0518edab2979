"""The webhook delivery ledger on PostgreSQL: deliveries claimed by any number of workers.

Simpler than SQLite's (storage/sqlite_ledger.py), because PostgreSQL has row
locks and many writers: the ledger lives in the main database, and there are no
shards, lanes, cursors or outbox trimming.

- Taking the outbox: one worker at a time (a transaction-level advisory lock)
  deletes the oldest outbox rows and stores the deliveries they imply, in one
  transaction. One taker at a time is what keeps a conversation's events in
  order: its `created` change commits before its `ended` change is even written,
  so a taker never sees the second without the first having been taken.
- Claiming: a worker claims due deliveries with `FOR UPDATE SKIP LOCKED` and a
  lease (`claimed_until`). Only a conversation's earliest pending event can be
  claimed, so its events go out one at a time, in order, whichever worker sends
  them. A worker that dies holds its claims until their lease runs out; then
  another takes them and sends them again with the same `webhook-id`.
- Recording an attempt releases the claim.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from palaver.domain.events import rank_of, split_event_id
from palaver.storage.base import OutboxChange
from palaver.storage.ledger import (
    AttemptRecord,
    AttemptResult,
    DeliveryRecord,
    LedgerTotals,
    NewDelivery,
    attempt_totals,
)
from palaver.storage.migrations import apply_postgres_migrations
from palaver.storage.postgres import outbox_change
from palaver.storage.postgres_pool import LazyPool
from palaver.storage.postgres_rooms import transcript_of_ended

# Held (for one transaction) by the worker taking outbox changes into the ledger.
OUTBOX_TAKER_LOCK = 0x70616C6176657202

_COLUMNS = (
    "delivery_id, event_id, conversation_id, account_id, event_type, url, body, status, attempts, "
    "created_epoch, next_attempt_epoch, last_status_code, last_error"
)

Render = Callable[[list[OutboxChange]], tuple[list[NewDelivery], list[str], list[str]]]

_TAKE = (
    "WITH taken AS ("
    "  DELETE FROM webhook_outbox WHERE seq IN (SELECT seq FROM webhook_outbox ORDER BY seq LIMIT $1) "
    "  RETURNING seq, conversation_id, change, detail, at_epoch"
    ") SELECT t.seq, t.conversation_id, t.change, t.detail, t.at_epoch, c.account_id, c.test_mode, "
    "c.replica_id, c.callback_url, c.system_prompt, c.created_at, c.ended_at, c.shutdown_reason, "
    f"{transcript_of_ended('t')} "
    "FROM taken t LEFT JOIN conversations c ON c.conversation_id = t.conversation_id ORDER BY t.seq"
)

# A delivery that can be claimed now: pending, due, not held by a live claim, and the earliest
# pending event of its conversation ($1 is the time now). Earliest by rank, then by arrival: a
# conversation's lifecycle events have ranks of their own, a resource's callbacks (all of one rank)
# go in the order they were queued, and while one is pending the next cannot become a second head.
_CLAIMABLE = (
    "d.status = 'pending' AND d.next_attempt_epoch <= $1 "
    "AND (d.claimed_until IS NULL OR d.claimed_until < $1) "
    "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.conversation_id = d.conversation_id "
    "                AND e.status = 'pending' AND (e.event_rank < d.event_rank "
    "                     OR (e.event_rank = d.event_rank AND e.delivery_id < d.delivery_id)))"
)

# Claim due conversations: each one's earliest pending event (the head) and the pending events
# behind it that are due too, to be sent one after the other by the claiming worker. The events
# behind a head cannot be claimed by anyone else while the head is pending, so taking them along
# is safe, and it spares them a claim of their own each (measured: a burst's shutdown and
# transcript in one claim instead of two cycles, docs/performance.md).
_CLAIM = (
    "WITH heads AS ("
    f"  SELECT d.delivery_id, d.conversation_id FROM webhook_deliveries d WHERE {_CLAIMABLE} "
    "  ORDER BY d.next_attempt_epoch, d.delivery_id LIMIT $2 "
    "  FOR UPDATE SKIP LOCKED"
    "), chain AS ("
    "  SELECT f.delivery_id FROM heads h JOIN webhook_deliveries f ON f.conversation_id = h.conversation_id "
    "  WHERE f.status = 'pending' AND f.next_attempt_epoch <= $1 "
    "  FOR UPDATE OF f SKIP LOCKED"
    ") UPDATE webhook_deliveries w SET claimed_by = $3, claimed_until = $4 "
    "FROM chain WHERE w.delivery_id = chain.delivery_id "
    f"RETURNING {', '.join('w.' + c for c in _COLUMNS.split(', '))}, w.event_rank"
)


def _delivery(row: asyncpg.Record) -> DeliveryRecord:
    return DeliveryRecord(*row)


class PostgresDeliveryLedger:
    def __init__(self, url: str, *, pool_size: int = 2) -> None:
        self.url = url
        self._pool = LazyPool(url, max_size=pool_size)

    async def migrate(self) -> list[str]:
        """The ledger's tables are part of the main database's migrations: applied here too (it is
        idempotent), so a command that opens only the ledger works on a new database."""
        conn = await self._pool.one_off()
        try:
            return await apply_postgres_migrations(conn)
        finally:
            await conn.close()

    async def close(self) -> None:
        await self._pool.close()

    async def cursor(self, shard: object = None, lane: object = None) -> int:
        """Nothing to trim: taking an outbox change deletes it (see `take_outbox`)."""
        return 0

    # -- the delivery workers' side ------------------------------------------------------

    async def take_outbox(self, limit: int, render: Render) -> int:
        """Take up to `limit` of the oldest outbox changes and store the deliveries `render` makes of them,
        in one transaction; returns how many changes were taken (0 if another worker is taking)."""
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", OUTBOX_TAKER_LOCK):
                return 0
            changes = [outbox_change(r) for r in await conn.fetch(_TAKE, limit)]
            if not changes:
                return 0
            new, purge, replay = render(changes)
            if purge:
                await conn.execute("DELETE FROM webhook_deliveries WHERE conversation_id = ANY($1::text[])", purge)
            if new:
                # One statement for the whole batch: measured, `executemany` of 2,000 rows took
                # hundreds of milliseconds, during which nothing was claimed (docs/performance.md).
                await conn.execute(
                    "INSERT INTO webhook_deliveries (event_id, conversation_id, account_id, event_type, event_rank, "
                    "url, body, created_epoch) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::text[], "
                    "$7::text[], $8::float8[]) "
                    "ON CONFLICT (event_id) DO NOTHING",
                    [d.event_id for d in new],
                    [d.conversation_id for d in new],
                    [d.account_id for d in new],
                    [d.event_type for d in new],
                    [rank_of(d.event_type) for d in new],
                    [d.url for d in new],
                    [d.body for d in new],
                    [d.created_epoch for d in new],
                )
            if replay:
                await conn.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_epoch = 0, "
                    "finished_epoch = NULL, created_epoch = extract(epoch FROM clock_timestamp()), "
                    "claimed_by = NULL, claimed_until = NULL "
                    "WHERE event_id = ANY($1::text[]) AND status <> 'pending'",
                    replay,
                )
            return len(changes)

    async def claim(self, owner: str, now: float, lease: float, limit: int) -> list[list[DeliveryRecord]]:
        """Claim up to `limit` due conversations for `lease` seconds: for each, its earliest pending event and
        the due events behind it, in the order they must go out. Oldest conversations first."""
        if limit <= 0:
            return []
        pool = await self._pool.get()
        rows = await pool.fetch(_CLAIM, now, limit, owner, now + lease)
        chains: dict[str, list[tuple[int, DeliveryRecord]]] = {}
        for row in rows:
            delivery = DeliveryRecord(*row[:-1])
            chains.setdefault(delivery.conversation_id, []).append((row[-1], delivery))
        ordered = [[d for _, d in sorted(chain, key=lambda x: (x[0], x[1].delivery_id))] for chain in chains.values()]
        return sorted(ordered, key=lambda chain: (chain[0].next_attempt_epoch, chain[0].delivery_id))

    async def record(self, results: list[AttemptResult]) -> None:
        """Store attempts and the states they leave their deliveries in; releases their claims."""
        if not results:
            return
        totals = attempt_totals(results)
        attempts = [r.attempt for r in results]
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction():
            # Attempts of a delivery purged while in flight are dropped with it.
            await conn.executemany(
                "INSERT INTO webhook_attempts (delivery_id, attempt, at_epoch, status_code, latency_ms, error) "
                "SELECT $1, (SELECT COALESCE(max(attempt), 0) + 1 FROM webhook_attempts WHERE delivery_id = $1), "
                "$2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE delivery_id = $1)",
                [(a.delivery_id, a.at_epoch, a.status_code, a.latency_ms, a.error) for a in attempts],
            )
            await conn.executemany(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_epoch = $2, "
                "last_status_code = $3, last_error = $4, finished_epoch = $5, claimed_by = NULL, claimed_until = NULL "
                "WHERE delivery_id = $6",
                [
                    (
                        r.status,
                        r.next_attempt_epoch or 0.0,
                        r.attempt.status_code,
                        r.attempt.error,
                        None if r.status == "pending" else r.attempt.at_epoch,
                        r.attempt.delivery_id,
                    )
                    for r in results
                ],
            )
            # attempt_totals are sorted: two workers adding to the same rows lock them in one order.
            await conn.executemany(
                "INSERT INTO webhook_attempt_totals (name, value) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET value = webhook_attempt_totals.value + excluded.value",
                list(totals.items()),
            )

    async def has_due_work(self, now: float) -> bool:
        """Whether outbox changes wait to be taken, or a delivery could be claimed now."""
        pool = await self._pool.get()
        return bool(
            await pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM webhook_outbox) "
                f"OR EXISTS (SELECT 1 FROM webhook_deliveries d WHERE {_CLAIMABLE})",
                now,
            )
        )

    async def release(self, delivery_ids: list[int]) -> None:
        """Give claims back unsent (a stopping worker), so another worker need not wait for the lease."""
        if delivery_ids:
            pool = await self._pool.get()
            await pool.execute(
                "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL "
                "WHERE delivery_id = ANY($1::bigint[]) AND status = 'pending'",
                delivery_ids,
            )

    # -- reads for the server and the CLI ------------------------------------------------

    async def list_deliveries(
        self, *, conversation_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        where: list[str] = ["true"]
        args: list[Any] = []
        if conversation_id is not None:
            args.append(conversation_id)
            where.append(f"conversation_id = ${len(args)}")
        if status is not None:
            args.append(status)
            where.append(f"status = ${len(args)}")
        args.append(limit)
        # A conversation's deliveries in their delivery order; across conversations, as stored.
        order = "event_rank, delivery_id" if conversation_id is not None else "delivery_id"
        query = f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(where)} ORDER BY {order}"
        pool = await self._pool.get()
        rows = await pool.fetch(f"{query} LIMIT ${len(args)}", *args)
        return [_delivery(r) for r in rows]

    async def find_delivery(self, event_id: str) -> DeliveryRecord | None:
        if split_event_id(event_id) is None:
            return None
        pool = await self._pool.get()
        row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE event_id = $1", event_id)
        return _delivery(row) if row else None

    async def list_attempts(self, delivery_id: int) -> list[AttemptRecord]:
        pool = await self._pool.get()
        rows = await pool.fetch(
            "SELECT delivery_id, attempt, at_epoch, status_code, latency_ms, error FROM webhook_attempts "
            "WHERE delivery_id = $1 ORDER BY attempt",
            delivery_id,
        )
        return [AttemptRecord(*r) for r in rows]

    async def totals(self) -> LedgerTotals:
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            statuses = await conn.fetch("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1")
            named = await conn.fetch("SELECT name, value FROM webhook_attempt_totals")
        by_status = {r[0]: r[1] for r in statuses}
        totals = {r[0]: r[1] for r in named}
        return LedgerTotals.from_named(by_status, totals)
