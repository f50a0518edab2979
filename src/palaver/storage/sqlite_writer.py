"""The SQLite writer: every write of one loop iteration in one transaction, ends as one UPDATE.

One connection writes, on the event loop's thread. Requests hand it small
operations; at the end of each loop iteration it runs every operation that is
waiting as one transaction (each in its own savepoint, so one failure cannot
spoil its neighbours) and commits once. Under load that turns hundreds of
commits into a handful without delaying a lone request, and the conditional
UPDATE of the end transition stays race-free because there is one writer per
process (and SQLite's lock serialises writers across processes).

Why on the loop and not in a writer thread: a WAL commit with
`synchronous=NORMAL` is a write() without fsync, tens of microseconds, while a
thread hop costs GIL hand-offs that, measured, cut throughput by half or more
(docs/performance.md; tried again in issue 11, no better).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from palaver.domain.clock import iso_timestamp
from palaver.domain.conversation import ENDS_FROM, ENDS_IN, EndOutcome, ShutdownReason
from palaver.storage.base import EndRequest
from palaver.storage.running_loop import RunningLoop
from palaver.storage.sqlite_connection import BUSY_TIMEOUT_S

T = TypeVar("T")

MAX_BATCH = 512
# Loop iterations a flush waits before committing. Each lets one more round of
# socket reads add its requests to the batch; measured at 64 connections, two
# raised end throughput by about a fifth and lowered p50 (bigger batches, fewer
# commits), while a lone request waits only two empty iterations (microseconds).
FLUSH_DEFERRALS = 2
# When another connection holds the write lock (the checkpointer's RESTART, a
# CLI command, another process), the batch waits on the loop, retried this
# often, instead of in SQLite's busy handler: that one sleeps the whole thread
# (1, 2, 5, 10 ms ...), so a 10 ms hold stalled every request for 18 ms.
BUSY_RETRY_S = 0.001


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class QueuedEnd(EndRequest):
    future: asyncio.Future[EndOutcome] | None = None  # set when queued for a group commit


class GroupCommitter:
    """Runs all writes waiting at the end of a loop iteration as one transaction.

    The first write schedules a flush with `call_soon`, which re-schedules itself
    FLUSH_DEFERRALS times; every request that runs meanwhile (those already
    ready, and those whose data arrives in the next polls) adds its write to the
    same batch. A lone request is delayed by a few empty loop iterations only,
    and under load a single commit serves many requests.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.execute("PRAGMA busy_timeout = 0")  # a locked database is waited for on the loop (_flush)
        # Each operation runs in a savepoint, so SQLite keeps the original of every page a batch
        # changes in a sub-journal, which it spills to a temporary file past 64 KiB: a batch of 64
        # ends changes ~120 pages, so every batch opened, wrote (~80 pwrite calls) and unlinked a
        # file on the loop's thread. In memory (under 1 MB for 64 ends, freed at commit): ~5 us less
        # per end at 1.3 million conversations (docs/performance.md). This connection only: a big
        # read's sort (the metrics' GROUP BY) should still spill to disk.
        conn.execute("PRAGMA temp_store = MEMORY")
        self._pending: list[_Op] = []
        self._pending_ends: list[QueuedEnd] = []
        self._scheduled = False
        self._deferrals = 0
        self._locked_since: float | None = None
        self._running_loop = RunningLoop()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = self._running_loop()
        op = _Op(fn, loop.create_future())
        self._pending.append(op)
        self._schedule(loop)
        return await op.future

    def end(self, request: QueuedEnd) -> asyncio.Future[EndOutcome]:
        """Ends are the hot path: all of a batch's ends run as one UPDATE (see `end_many`).

        Returns the future itself rather than a coroutine: one frame less to
        create and resume on every end.
        """
        loop = self._running_loop()
        request.future = future = loop.create_future()
        self._pending_ends.append(request)
        self._schedule(loop)
        return future

    def close(self) -> None:
        # No loop to wait on any more: SQLite's own wait, and a lock still held after it fails the batch.
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self._locked_since = time.monotonic() - BUSY_TIMEOUT_S
        self._deferrals = FLUSH_DEFERRALS
        self._flush()
        self._conn.close()

    def _flush(self) -> None:
        if self._deferrals < FLUSH_DEFERRALS:
            self._deferrals += 1
            self._running_loop().call_soon(self._flush)
            return
        self._deferrals = 0
        self._scheduled = False
        while self._pending or self._pending_ends:
            ops, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            ends, self._pending_ends = self._pending_ends[:MAX_BATCH], self._pending_ends[MAX_BATCH:]
            if not self._execute(ops, ends):
                # Locked by another connection: back to the front of the queue, tried again
                # shortly, and whatever arrives meanwhile joins the batch.
                self._pending[:0], self._pending_ends[:0] = ops, ends
                self._scheduled = True
                self._deferrals = FLUSH_DEFERRALS
                self._running_loop().call_later(BUSY_RETRY_S, self._flush)
                return

    def _begin(self) -> bool:
        """BEGIN IMMEDIATE; False if another connection holds the write lock and the wait is not over."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            now = time.monotonic()
            if self._locked_since is None:
                self._locked_since = now
            if now - self._locked_since < BUSY_TIMEOUT_S:
                return False
            self._locked_since = None
            raise
        self._locked_since = None
        return True

    def _execute(self, ops: list[_Op], ends: list[QueuedEnd]) -> bool:
        """Run one batch as one transaction and hand each waiter its result; False if it could not start yet."""
        conn = self._conn
        results: list[tuple[bool, Any]] = []
        end_results: list[tuple[bool, Any]] = []
        try:
            if not self._begin():
                return False
            for op in ops:
                results.append(_in_savepoint(conn, op.fn))
            if ends:
                # In a savepoint of its own: besides the UPDATE, the ends write slot
                # counters and outbox rows, and they stand or fall together.
                ok, value = _in_savepoint(conn, lambda c: end_many(c, ends))
                end_results = [(True, o) for o in value] if ok else [(False, value)] * len(ends)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the batch did not commit: nobody succeeded
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(False, exc)] * len(ops)
            end_results = [(False, exc)] * len(ends)
        waiting: list[_Op | QueuedEnd] = [*ops, *ends]
        for waiter, (ok, value) in zip(waiting, [*results, *end_results], strict=True):
            future = waiter.future
            if future is None or future.done():  # the request was cancelled (client went away)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        return True


def _in_savepoint(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> tuple[bool, Any]:
    """Run `work` so that its failure undoes only its own writes."""
    conn.execute("SAVEPOINT op")
    try:
        result: tuple[bool, Any] = (True, work(conn))
    except Exception as exc:  # noqa: BLE001 - handed to the awaiting request
        conn.execute("ROLLBACK TO op")
        result = (False, exc)
    conn.execute("RELEASE op")
    return result


# -- operations run inside the writer's transaction -----------------------------------


# What an end transition returns: who it was, and whether it has webhooks to send.
ENDED_FACTS = "conversation_id, account_id, callback_url != ''"


def enqueue_end_webhooks(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], at_epoch: float) -> None:
    """One outbox row per just-ended conversation with a callback_url, in one statement.

    Written by the caller's transaction, the one that made the transition: a
    crash can neither lose these webhooks nor send them for an end that did not
    commit. The row names the change, not the bytes: the delivery worker renders
    the shutdown and transcript from the conversation's facts (docs/webhooks.md),
    which keeps this insert narrow on the hot path.
    """
    ended = [row[0] for row in rows if row[2]]
    if ended:
        conn.execute(
            "INSERT INTO webhook_outbox (conversation_id, change, at_epoch) SELECT value, 'ended', ? FROM json_each(?)",
            (at_epoch, json.dumps(ended)),
        )


# Bytes an active row carries for its end (migration 0011): the end writes `shutdown_reason` and
# `ended_at` into a row that had neither, and sets this NULL, so the row does not outgrow its page
# (tests/storage/test_sqlite_row_layout.py ends rows with the longest reason and compares sizes).
END_RESERVE_BYTES = max(len(reason) for reason in ShutdownReason) + len(iso_timestamp(0.0))


@functools.cache
def _end_many_sql(rows: int) -> str:
    """The bulk end for `rows` (conversation_id, account_id, reason, at) source rows, bound as parameters.

    A VALUES list rather than one JSON array: with `json_each`, SQLite 3.40
    parses a row's JSON again for each `->>`, four times per end; measured at a
    million stored conversations, 22.3 -> 19.0 us per end (docs/performance.md).
    """
    return (
        f"UPDATE conversations SET status = '{ENDS_IN}', shutdown_reason = r.column3, updated_at = r.column4, "
        "ended_at = r.column4, end_reserve = NULL "
        f"FROM (VALUES {', '.join(['(?, ?, ?, ?)'] * rows)}) AS r "
        "WHERE conversations.conversation_id = r.column1 AND conversations.account_id = r.column2 "
        f"AND conversations.status = '{ENDS_FROM}' AND conversations.deleted_at IS NULL "
        f"RETURNING {ENDED_FACTS}"
    )


def free_slots(conn: sqlite3.Connection, account_ids: list[str]) -> None:
    """Every transition out of `active` frees one concurrency slot of its account, in the same transaction."""
    if account_ids:
        conn.executemany(
            "UPDATE accounts SET active_conversations = active_conversations - ? WHERE account_id = ?",
            [(n, account_id) for account_id, n in Counter(account_ids).items()],
        )


def end_many(conn: sqlite3.Connection, ends: Sequence[EndRequest]) -> list[EndOutcome]:
    """The active -> ended transition for every request given, as one conditional UPDATE.

    The condition `status = 'active'` is what makes racing ends safe: only the
    request whose UPDATE changes the row records the shutdown. Batching the
    requests of one group commit into a single statement, rather than a few per
    request, is what lets ends keep up with a bare ASGI app. If several requests
    name the same conversation, the first makes the transition and the rest see
    it already ended.
    """
    # One source row per conversation: with duplicates SQLite would update from
    # any of them, and the stored reason and time must be those of the caller
    # told ENDED (the first).
    first = {(e.conversation_id, e.account_id): e for e in reversed(ends)}
    # Batch sizes rounded up to a power of two, padded with rows that match
    # nothing: a handful of statement texts, all in the connection's cache.
    size = 1 << (len(first) - 1).bit_length()
    params: list[str | None] = [v for e in first.values() for v in (e.conversation_id, e.account_id, e.reason, e.at)]
    params += [None] * (4 * (size - len(first)))
    rows = conn.execute(_end_many_sql(size), params).fetchall()
    ended = {(row[0], row[1]) for row in rows}
    free_slots(conn, [account_id for _, account_id in ended])
    enqueue_end_webhooks(conn, rows, ends[0].at_epoch)
    outcomes: list[EndOutcome] = []
    for e in ends:
        key = (e.conversation_id, e.account_id)
        if key in ended:
            ended.discard(key)
            outcomes.append(EndOutcome.ENDED)
        elif conn.execute(
            "SELECT 1 FROM conversations WHERE conversation_id = ? AND account_id = ? AND deleted_at IS NULL",
            (e.conversation_id, e.account_id),
        ).fetchone():
            outcomes.append(EndOutcome.ALREADY_ENDED)
        else:
            outcomes.append(EndOutcome.NOT_FOUND)
    return outcomes
