"""SQLite backend (WAL), with writes grouped into shared transactions.

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
(docs/performance.md). Reads use a second connection, also on the loop: in WAL
mode they never wait for the writer, and a primary-key read costs microseconds.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from palaver.domain.conversation import ENDS_FROM, ENDS_IN, EndOutcome, History
from palaver.domain.errors import ConcurrencyLimitReached
from palaver.domain.signing import new_secret
from palaver.domain.timers import Presence, TimerSettings, next_deadline
from palaver.storage.base import (
    AccountRecord,
    ApiKeyRecord,
    ConversationRecord,
    OutboxChange,
)
from palaver.storage.migrations import apply_sqlite_migrations
from palaver.storage.rows import (
    CONVERSATION_COLUMN_COUNT,
    CONVERSATION_COLUMNS,
    conversation_from_row,
    conversation_row,
)

T = TypeVar("T")
log = logging.getLogger("palaver.storage")

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
BUSY_TIMEOUT_S = 10.0  # then the batch fails with "database is locked", as with busy_timeout
MMAP_SIZE = 1 << 34  # as much as SQLite allows (its build caps it, at 2 GiB here): the whole file
_MAX_SEQ = 2**63 - 1  # SQLite's largest integer: "no upper bound" for an outbox read
_INSERT_CONVERSATION = (
    f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES ({', '.join('?' * CONVERSATION_COLUMN_COUNT)})"
)


def sqlite_path(database_url: str) -> str:
    """`sqlite:///relative.db` or `sqlite:////abs/path.db` -> a file path.

    In-memory databases are refused: the reader and the writer are separate
    connections and would each see a different empty database.
    """
    rest = database_url.removeprefix("sqlite:")
    if rest.startswith("///"):
        return rest[3:]
    if rest.startswith("//"):
        return rest[2:]
    path = rest
    if not path or path == ":memory:":
        raise ValueError("Palaver needs a database file: sqlite:///PATH")
    return path


def connect(
    path: str, synchronous: str, *, checkpoint_on_commit: bool = False, page_size: int | None = None
) -> sqlite3.Connection:
    """A connection with Palaver's settings (autocommit, WAL, busy timeout, bounded WAL file).

    `checkpoint_on_commit=False` for the API's database: checkpoints (which fsync)
    run in _Checkpointer's thread, never inside a commit on the event loop. The
    delivery ledger, which has no checkpointer thread, keeps SQLite's automatic one.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    if page_size is not None:
        conn.execute(f"PRAGMA page_size = {int(page_size)}")  # takes effect only in a new, empty file
    _enable_wal(conn)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA cache_size = -65536")
    # Read the file through a memory map (SQLite caps it at 2 GiB): a page SQLite's own cache has
    # lost is then a memory read from the OS page cache, not a pread() and a copy. Over 1.2 million
    # conversations the ends' id lookups missed the 64 MB cache often enough to cost ~5 us per end.
    conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
    if not checkpoint_on_commit:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    # After a checkpoint restarts the WAL, trim the file back to this size.
    conn.execute("PRAGMA journal_size_limit = 67108864")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """`PRAGMA journal_mode = WAL`, tried again while another connection holds the new file's write lock.

    On a new file the pragma writes the header under a read lock it already
    holds; when another connection has the write lock (another process making
    the same file WAL, or migrating it), SQLite answers SQLITE_BUSY at once and
    does not call the busy handler, since waiting with a read lock held could
    deadlock. Two `palaver serve` started together on a new file lost one of
    them this way. The failed statement has let its locks go; tried again, it
    finds the file in WAL mode already (nothing to write) or the lock free.
    Bounded like every other wait for the lock (BUSY_TIMEOUT_S).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class _Checkpointer:
    """Copies the WAL back into the database file, off the event loop, and keeps the WAL small.

    SQLite's automatic checkpoint would run inside whichever commit crosses the
    threshold, stalling the loop for a write-back and an fsync; measured, that
    made Palaver wait on I/O for a fifth of its time. So every `interval`
    seconds this thread runs a PASSIVE checkpoint, which never blocks the
    writer. Under continuous writes a PASSIVE checkpoint never lets the WAL
    start over (the writer is always ahead of it), and the WAL grew without
    bound: 1 GB after 180,000 ends, each commit slower than the last. Once the
    WAL passes `restart_frames`, a RESTART checkpoint makes the next commit
    reuse the file from the start; it holds the writer back only for the little
    the PASSIVE pass left to copy.
    """

    def __init__(self, path: str, synchronous: str, interval: float = 0.5, restart_frames: int = 4096) -> None:
        self._conn = connect(path, synchronous)
        self._interval = interval
        self._restart_frames = restart_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="palaver-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                _, wal_frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if wal_frames > self._restart_frames:
                    for _ in range(4):
                        _, latest, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        fresh, wal_frames = latest - wal_frames, latest
                        if fresh <= 64:
                            break
                    self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            except sqlite3.Error:
                log.warning("WAL checkpoint failed; will retry", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            log.warning("final WAL checkpoint failed", exc_info=True)
        self._conn.close()


def _key(row: tuple[Any, ...]) -> ApiKeyRecord:
    return ApiKeyRecord(*row)


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _EndRequest:
    account_id: str
    conversation_id: str
    reason: str
    at: str
    at_epoch: float
    future: asyncio.Future[EndOutcome] | None = None  # set when queued for a group commit


class _GroupCommitter:
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
        self._pending: list[_Op] = []
        self._pending_ends: list[_EndRequest] = []
        self._scheduled = False
        self._deferrals = 0
        self._locked_since: float | None = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        op = _Op(fn, loop.create_future())
        self._pending.append(op)
        self._schedule(loop)
        return await op.future

    def end(self, request: _EndRequest) -> asyncio.Future[EndOutcome]:
        """Ends are the hot path: all of a batch's ends run as one UPDATE (see `_end_many`).

        Returns the future itself rather than a coroutine: one frame less to
        create and resume on every end.
        """
        loop = asyncio.get_running_loop()
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
            asyncio.get_running_loop().call_soon(self._flush)
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
                asyncio.get_running_loop().call_later(BUSY_RETRY_S, self._flush)
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

    def _execute(self, ops: list[_Op], ends: list[_EndRequest]) -> bool:
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
                ok, value = _in_savepoint(conn, lambda c: _end_many(c, ends))
                end_results = [(True, o) for o in value] if ok else [(False, value)] * len(ends)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the batch did not commit: nobody succeeded
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(False, exc)] * len(ops)
            end_results = [(False, exc)] * len(ends)
        waiting: list[_Op | _EndRequest] = [*ops, *ends]
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
_ENDED_FACTS = "conversation_id, account_id, callback_url != ''"


def _enqueue_end_webhooks(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], at_epoch: float) -> None:
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


@functools.cache
def _end_many_sql(rows: int) -> str:
    """The bulk end for `rows` (conversation_id, account_id, reason, at) source rows, bound as parameters.

    A VALUES list rather than one JSON array: with `json_each`, SQLite 3.40
    parses a row's JSON again for each `->>`, four times per end; measured at a
    million stored conversations, 22.3 -> 19.0 us per end (docs/performance.md).
    """
    return (
        f"UPDATE conversations SET status = '{ENDS_IN}', shutdown_reason = r.column3, updated_at = r.column4, "
        "ended_at = r.column4 "
        f"FROM (VALUES {', '.join(['(?, ?, ?, ?)'] * rows)}) AS r "
        "WHERE conversations.conversation_id = r.column1 AND conversations.account_id = r.column2 "
        f"AND conversations.status = '{ENDS_FROM}' AND conversations.deleted_at IS NULL "
        f"RETURNING {_ENDED_FACTS}"
    )


def _free_slots(conn: sqlite3.Connection, account_ids: list[str]) -> None:
    """Every transition out of `active` frees one concurrency slot of its account, in the same transaction."""
    if account_ids:
        conn.executemany(
            "UPDATE accounts SET active_conversations = active_conversations - ? WHERE account_id = ?",
            [(n, account_id) for account_id, n in Counter(account_ids).items()],
        )


def _end_many(conn: sqlite3.Connection, ends: list[_EndRequest]) -> list[EndOutcome]:
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
    _free_slots(conn, [account_id for _, account_id in ended])
    _enqueue_end_webhooks(conn, rows, ends[0].at_epoch)
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


def _backfill_webhook_secrets(conn: sqlite3.Connection) -> None:
    """A signing secret for each account made before secrets were made with the account.

    Here, by whichever process migrates (the server, before it starts its delivery
    workers), so that the workers only ever read the main database.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        missing = conn.execute("SELECT account_id FROM accounts WHERE webhook_secret IS NULL").fetchall()
        conn.executemany(
            "UPDATE accounts SET webhook_secret = ? WHERE account_id = ?", [(new_secret(), a) for (a,) in missing]
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SQLiteStorage:
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
        self._writer = _GroupCommitter(write_conn)
        self._checkpointer = _Checkpointer(path, self._synchronous) if checkpoints else None
        self._closed = False

    async def migrate(self) -> list[str]:
        def run() -> list[str]:
            conn = connect(self.path, self._synchronous)
            try:
                applied = apply_sqlite_migrations(conn)
                _backfill_webhook_secrets(conn)
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
            conn.execute(_INSERT_CONVERSATION, conversation_row(c))
            if c.callback_url and not c.test_mode:
                conn.execute(
                    "INSERT INTO webhook_outbox (conversation_id, change, at_epoch) VALUES (?, 'created', ?)",
                    (c.conversation_id, c.created_epoch),
                )

        await self._writer.submit(op)

    async def get_conversation(self, account_id: str, conversation_id: str) -> ConversationRecord | None:
        row = self._read.execute(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
            "WHERE conversation_id = ? AND account_id = ? AND deleted_at IS NULL",
            (conversation_id, account_id),
        ).fetchone()
        return conversation_from_row(row) if row else None

    async def find_conversation(self, conversation_id: str) -> ConversationRecord | None:
        row = self._read.execute(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = ? AND deleted_at IS NULL",
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
            total = cur.execute(f"SELECT COUNT(*) FROM conversations WHERE {where}", args).fetchone()[0]
            rows = cur.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        finally:
            cur.execute("COMMIT")
        return [conversation_from_row(r) for r in rows], total

    def end_conversation(
        self, account_id: str, conversation_id: str, reason: str, at: str, at_epoch: float | None = None
    ) -> Awaitable[EndOutcome]:
        epoch = time.time() if at_epoch is None else at_epoch
        return self._writer.end(_EndRequest(account_id, conversation_id, reason, at, epoch))

    async def record_presence(self, conversation_id: str, *, joined: bool, at: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT created_epoch, max_call_duration, participant_absent_timeout, participant_left_timeout, "
                f"participants, ever_joined, last_left_epoch FROM conversations "
                f"WHERE conversation_id = ? AND status = '{ENDS_FROM}'",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return False
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

    async def fire_due(self, now: float, at: str, limit: int = 500) -> list[tuple[str, str, str]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            fired = conn.execute(
                f"UPDATE conversations SET status = '{ENDS_IN}', shutdown_reason = deadline_reason, "
                "updated_at = ?, ended_at = ? "
                "WHERE seq IN (SELECT seq FROM conversations "
                f"             WHERE status = '{ENDS_FROM}' AND deadline <= ? ORDER BY deadline LIMIT ?) "
                f"AND status = '{ENDS_FROM}' AND deadline <= ? "
                f"RETURNING {_ENDED_FACTS}, shutdown_reason",
                (at, at, now, limit, now),
            ).fetchall()
            _free_slots(conn, [r[1] for r in fired])
            _enqueue_end_webhooks(conn, fired, now)
            # Deadlines left behind by conversations that ended another way: cleared here,
            # once due, rather than by every end on the hot path.
            conn.execute(
                f"UPDATE conversations SET deadline = NULL WHERE deadline <= ? AND status != '{ENDS_FROM}'", (now,)
            )
            return [(r[0], r[1], r[3]) for r in fired]

        return await self._writer.submit(op)

    # webhooks ----------------------------------------------------------------------

    async def webhook_secret(self, account_id: str) -> str:
        row = self._read.execute("SELECT webhook_secret FROM accounts WHERE account_id = ?", (account_id,)).fetchone()
        if row is None or not row[0]:
            raise KeyError(account_id)
        return str(row[0])

    async def rotate_webhook_secret(self, account_id: str) -> str | None:
        secret = new_secret()

        def op(conn: sqlite3.Connection) -> str | None:
            cur = conn.execute("UPDATE accounts SET webhook_secret = ? WHERE account_id = ?", (secret, account_id))
            return secret if cur.rowcount == 1 else None

        return await self._writer.submit(op)

    async def webhook_secrets(self) -> dict[str, str]:
        rows = self._read.execute("SELECT account_id, webhook_secret FROM accounts WHERE webhook_secret IS NOT NULL")
        return dict(rows.fetchall())

    async def read_outbox(self, after_seq: int, limit: int, through_seq: int | None = None) -> list[OutboxChange]:
        rows = self._read.execute(
            "SELECT o.seq, o.conversation_id, o.change, o.detail, o.at_epoch, c.account_id, c.test_mode, "
            "c.replica_id, c.callback_url, c.system_prompt, c.created_at, c.ended_at, c.shutdown_reason "
            "FROM webhook_outbox o LEFT JOIN conversations c ON c.conversation_id = o.conversation_id "
            "WHERE o.seq > ? AND o.seq <= ? ORDER BY o.seq LIMIT ?",
            (after_seq, _MAX_SEQ if through_seq is None else through_seq, limit),
        ).fetchall()
        return [
            OutboxChange(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                None if r[5] is None else History(r[1], bool(r[6]), r[7], r[8], r[9], r[10], r[11], r[12]),
            )
            for r in rows
        ]

    async def trim_outbox(self, through_seq: int, limit: int) -> int:
        # A range of the primary key from the oldest row: seqs only have gaps where a
        # transaction rolled back, so this deletes at most `limit` rows, usually that many.
        return await self._writer.submit(
            lambda c: (
                c.execute(
                    "DELETE FROM webhook_outbox WHERE seq <= ? AND seq < (SELECT MIN(seq) FROM webhook_outbox) + ?",
                    (through_seq, limit),
                ).rowcount
            )
        )

    async def request_replay(self, event_id: str, conversation_id: str) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT INTO webhook_outbox (conversation_id, change, detail, at_epoch) VALUES (?, 'replay', ?, ?)",
                (conversation_id, event_id, time.time()),
            )
        )

    async def delete_conversation(
        self, account_id: str, conversation_id: str, *, hard: bool, reason: str, at: str, at_epoch: float | None = None
    ) -> bool:
        epoch = time.time() if at_epoch is None else at_epoch

        def op(conn: sqlite3.Connection) -> bool:
            request = _EndRequest(account_id, conversation_id, reason, at, epoch)
            if _end_many(conn, [request])[0] is EndOutcome.NOT_FOUND:
                return False
            if hard:
                # Purged means purged: the delivery worker drops the conversation's
                # webhooks and their attempts when it reaches this outbox row.
                conn.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))
                conn.execute(
                    "INSERT INTO webhook_outbox (conversation_id, change, at_epoch) VALUES (?, 'purged', ?)",
                    (conversation_id, epoch),
                )
            else:
                conn.execute(
                    "UPDATE conversations SET deleted_at = ?, updated_at = ? WHERE conversation_id = ?",
                    (at, at, conversation_id),
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
