"""The end transition on PostgreSQL, group-committed: many requests, one statement, one commit.

Every end request joins the next batch. A batch starts at once while fewer
than `max_in_flight` batches are running, so a lone request waits for nothing;
under load the requests that arrive while batches run gather into the next one,
and one round trip and one WAL flush serve them all (the same idea as SQLite's
group commit, storage/sqlite.py, except that batches overlap: PostgreSQL
commits several at a time).

Exactly once, across any number of processes: the statement locks the rows it
names in conversation-id order (so two overlapping batches cannot deadlock) and
updates only rows still `active`. A row another transaction is ending or
deleting is waited for and then re-read by PostgreSQL itself, so it ends in one
of them only, and the answer reflects what that other transaction did.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from palaver.domain.conversation import ENDS_FROM, ENDS_IN, EndOutcome
from palaver.storage.postgres_pool import LazyPool

log = logging.getLogger("palaver.storage")

MAX_BATCH = 1000
# Batches running at once per process. More than the cores PostgreSQL has brings no
# throughput, only more lock waits; fewer serialises round trips (docs/performance.md).
DEFAULT_IN_FLIGHT = 4

# One statement: lock the visible rows in id order, end those still active, queue their webhooks,
# and say for every request whether it ended the conversation, found it ended, or found nothing.
# The rows are found one by one through the primary key alone (LATERAL, and nothing but the id in
# its condition), in the order of the arrays, which the caller sorts by id: that order is the lock
# order, and no plan can turn it into a scan of an index or the table, however stale the
# statistics (measured on a new 20,000-row table: a hash join over the whole table, 6 ms a
# batch; with the account in the condition, a scan of the account's index, 300 ms).
# Locking every visible row, not only active ones, is what makes the answer current: FOR UPDATE
# waits for a transaction ending or deleting the row and then sees the row as it left it, while
# the rest of the statement sees the database as it was when the statement began.
END_MANY = f"""
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[])
        AS r(cid, acc, reason, at, epoch)
),
target AS (
    SELECT c.conversation_id, c.account_id, c.status
    FROM r CROSS JOIN LATERAL (
        SELECT conversation_id, account_id, status, deleted_at FROM conversations
        WHERE conversation_id = r.cid
        FOR UPDATE
    ) AS c
    WHERE c.account_id = r.acc AND c.deleted_at IS NULL
),
ended AS (
    UPDATE conversations c
    SET status = '{ENDS_IN}', shutdown_reason = r.reason, updated_at = r.at, ended_at = r.at,
        deadline = NULL, deadline_reason = NULL
    FROM target t JOIN r ON r.cid = t.conversation_id AND r.acc = t.account_id
    WHERE c.conversation_id = t.conversation_id AND t.status = '{ENDS_FROM}' AND c.status = '{ENDS_FROM}'
    RETURNING c.conversation_id, c.account_id, c.callback_url, r.epoch
),
queued AS (
    INSERT INTO webhook_outbox (conversation_id, change, at_epoch)
    SELECT conversation_id, 'ended', epoch FROM ended WHERE callback_url <> ''
)
SELECT r.cid, r.acc, e.conversation_id IS NOT NULL AS ended, t.conversation_id IS NOT NULL AS visible
FROM r
LEFT JOIN ended e ON e.conversation_id = r.cid AND e.account_id = r.acc
LEFT JOIN target t ON t.conversation_id = r.cid AND t.account_id = r.acc
"""


@dataclass(slots=True)
class EndRequest:
    account_id: str
    conversation_id: str
    reason: str
    at: str
    at_epoch: float
    future: asyncio.Future[EndOutcome] | None = None


async def end_many(conn: asyncpg.Connection, ends: list[EndRequest]) -> list[EndOutcome]:
    """Run the end statement for these requests on `conn` (inside the caller's transaction, if any).

    Several requests for one conversation: the first makes the transition (its reason
    and time are stored), the others find it ended.
    """
    first: dict[tuple[str, str], EndRequest] = {}
    for e in ends:
        first.setdefault((e.conversation_id, e.account_id), e)
    unique = sorted(first.values(), key=lambda e: (e.conversation_id, e.account_id))
    rows = await conn.fetch(
        END_MANY,
        [e.conversation_id for e in unique],
        [e.account_id for e in unique],
        [e.reason for e in unique],
        [e.at for e in unique],
        [e.at_epoch for e in unique],
    )
    found = {(row[0], row[1]): (row[2], row[3]) for row in rows}
    outcomes: list[EndOutcome] = []
    for e in ends:
        key = (e.conversation_id, e.account_id)
        ended, visible = found.get(key, (False, False))
        if ended and first[key] is e:
            outcomes.append(EndOutcome.ENDED)
        elif ended or visible:
            outcomes.append(EndOutcome.ALREADY_ENDED)
        else:
            outcomes.append(EndOutcome.NOT_FOUND)
    return outcomes


class EndBatcher:
    """Gathers end requests into batches of one statement each, up to `max_in_flight` at once."""

    def __init__(self, pool: LazyPool, max_in_flight: int = DEFAULT_IN_FLIGHT) -> None:
        self._pool = pool
        self._max_in_flight = max_in_flight
        self._waiting: list[EndRequest] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def end(self, request: EndRequest) -> asyncio.Future[EndOutcome]:
        loop = asyncio.get_running_loop()
        request.future = future = loop.create_future()
        self._waiting.append(request)
        self._schedule(loop)
        return future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # After the callbacks already ready: requests read in the same poll join this batch.
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._launch)

    def _launch(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._waiting and self._in_flight < self._max_in_flight:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            self._in_flight += 1
            task = loop.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[EndRequest]) -> None:
        try:
            pool = await self._pool.get()
            async with pool.acquire() as conn:
                outcomes = await end_many(conn, batch)  # one statement: its own transaction
        except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
            for request in batch:
                if request.future is not None and not request.future.done():
                    request.future.set_exception(exc)
        else:
            for request, outcome in zip(batch, outcomes, strict=True):
                if request.future is not None and not request.future.done():
                    request.future.set_result(outcome)
        finally:
            self._in_flight -= 1
            if self._waiting:
                self._schedule(asyncio.get_running_loop())

    async def drain(self) -> None:
        """Wait for every batch started or waiting (before the pool closes)."""
        while self._tasks or self._waiting:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
