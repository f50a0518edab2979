"""SQLite backend (WAL), with writes grouped into shared transactions.

One writer thread owns the only write connection. Requests hand it small
operations; it runs every operation that is waiting as one transaction (each in
its own savepoint, so one failure cannot spoil its neighbours) and commits once.
Under load that turns hundreds of commits into a handful without delaying a lone
request, and the conditional UPDATE of the end transition stays race-free
because there is exactly one writer.

Reads use a separate connection on the event loop's thread: in WAL mode they
never wait for the writer, and a primary-key read costs microseconds, less than
a hop to a thread pool would.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from palaver.domain.conversation import EndOutcome, LiveConversation, Status
from palaver.domain.errors import ConcurrencyLimitReached
from palaver.domain.events import Event
from palaver.storage.base import (
    AccountRecord,
    ApiKeyRecord,
    ConversationRecord,
    EndEventsBuilder,
)
from palaver.storage.migrations import apply_sqlite_migrations

T = TypeVar("T")

MAX_BATCH = 512
_CONVERSATION_COLUMNS = (
    "conversation_id, account_id, conversation_name, status, test_mode, replica_id, persona_id, "
    "callback_url, system_prompt, meeting_token, request, shutdown_reason, created_at, updated_at"
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


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def _conversation(row: sqlite3.Row | tuple[Any, ...]) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=row[0],
        account_id=row[1],
        conversation_name=row[2],
        status=row[3],
        test_mode=bool(row[4]),
        replica_id=row[5],
        persona_id=row[6],
        callback_url=row[7],
        system_prompt=row[8],
        meeting_token=row[9],
        request=json.loads(row[10]),
        shutdown_reason=row[11],
        created_at=row[12],
        updated_at=row[13],
    )


def _key(row: tuple[Any, ...]) -> ApiKeyRecord:
    return ApiKeyRecord(*row)


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


class _Writer:
    """The one thread that writes; see the module docstring for why."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="palaver-sqlite-writer", daemon=True)
        self._thread.start()

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        op = _Op(fn, loop, loop.create_future())
        self._queue.put(op)
        return await op.future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            ops = [first]
            while len(ops) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                ops.append(nxt)
            self._execute(ops)
        self._conn.close()

    def _execute(self, ops: list[_Op]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    op.result = op.fn(conn)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                    op.error = exc
                    conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the whole batch failed to commit
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for op in ops:
                op.error = exc
        by_loop: dict[asyncio.AbstractEventLoop, list[_Op]] = {}
        for op in ops:
            by_loop.setdefault(op.loop, []).append(op)
        for loop, loop_ops in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, loop_ops)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _settle(ops: list[_Op]) -> None:
    for op in ops:
        if op.future.done():
            continue
        if op.error is not None:
            op.future.set_exception(op.error)
        else:
            op.future.set_result(op.result)


# -- operations run inside the writer's transaction -----------------------------------


def _end_in_tx(
    conn: sqlite3.Connection, account_id: str, conversation_id: str, reason: str, at: str, build: EndEventsBuilder
) -> EndOutcome:
    row = conn.execute(
        "UPDATE conversations SET status = ?, shutdown_reason = ?, updated_at = ?, ended_at = ? "
        "WHERE conversation_id = ? AND account_id = ? AND status = ? AND deleted_at IS NULL "
        "RETURNING replica_id, callback_url, system_prompt",
        (Status.ENDED, reason, at, at, conversation_id, account_id, Status.ACTIVE),
    ).fetchone()
    if row is None:
        exists = conn.execute(
            "SELECT 1 FROM conversations WHERE conversation_id = ? AND account_id = ? AND deleted_at IS NULL",
            (conversation_id, account_id),
        ).fetchone()
        return EndOutcome.ALREADY_ENDED if exists else EndOutcome.NOT_FOUND
    live = LiveConversation(conversation_id, row[0], row[1], row[2])
    _insert_events(conn, build(live), at)
    return EndOutcome.ENDED


def _insert_events(conn: sqlite3.Connection, events: Sequence[Event], at: str) -> None:
    if events:
        conn.executemany(
            "INSERT INTO events (event_id, conversation_id, event_type, envelope, created_at) VALUES (?, ?, ?, ?, ?)",
            [(e.event_id, e.conversation_id, e.event_type, json.dumps(e.envelope()), at) for e in events],
        )


class SQLiteStorage:
    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"invalid SQLite synchronous setting {synchronous!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._synchronous = synchronous.upper()
        write_conn = _connect(path, self._synchronous)
        self._read = _connect(path, self._synchronous)
        self._writer = _Writer(write_conn)
        self._closed = False

    async def migrate(self) -> list[str]:
        def run() -> list[str]:
            conn = _connect(self.path, self._synchronous)
            try:
                return apply_sqlite_migrations(conn)
            finally:
                conn.close()

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._writer.stop)
            self._read.close()

    # accounts and keys -----------------------------------------------------------

    async def create_account(self, account: AccountRecord) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT INTO accounts (account_id, name, max_concurrent, created_at) VALUES (?, ?, ?, ?)",
                (account.account_id, account.name, account.max_concurrent, account.created_at),
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
            cur = c.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id)
            )
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

    async def insert_conversation(self, conversation: ConversationRecord, events: Sequence[Event]) -> None:
        c = conversation

        def op(conn: sqlite3.Connection) -> None:
            limit_row = conn.execute(
                "SELECT max_concurrent FROM accounts WHERE account_id = ?", (c.account_id,)
            ).fetchone()
            max_concurrent = limit_row[0] if limit_row else None
            if max_concurrent is not None and not c.test_mode:
                # Bounded by the limit, so the check stays cheap however many are active.
                active = conn.execute(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM conversations WHERE account_id = ? AND status = ? "
                    "AND test_mode = 0 AND deleted_at IS NULL LIMIT ?)",
                    (c.account_id, Status.ACTIVE, max_concurrent),
                ).fetchone()[0]
                if active >= max_concurrent:
                    raise ConcurrencyLimitReached()
            conn.execute(
                f"INSERT INTO conversations ({_CONVERSATION_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                (
                    c.conversation_id, c.account_id, c.conversation_name, c.status, int(c.test_mode),
                    c.replica_id, c.persona_id, c.callback_url, c.system_prompt, c.meeting_token,
                    json.dumps(c.request), c.shutdown_reason, c.created_at, c.updated_at,
                ),
            )
            _insert_events(conn, events, c.created_at)

        await self._writer.submit(op)

    async def get_conversation(self, account_id: str, conversation_id: str) -> ConversationRecord | None:
        row = self._read.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations "
            "WHERE conversation_id = ? AND account_id = ? AND deleted_at IS NULL",
            (conversation_id, account_id),
        ).fetchone()
        return _conversation(row) if row else None

    async def find_conversation(self, conversation_id: str) -> ConversationRecord | None:
        row = self._read.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = ? AND deleted_at IS NULL",
            (conversation_id,),
        ).fetchone()
        return _conversation(row) if row else None

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
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        finally:
            cur.execute("COMMIT")
        return [_conversation(r) for r in rows], total

    async def list_events(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = self._read.execute(
            "SELECT envelope FROM events WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    async def end_conversation(
        self, account_id: str, conversation_id: str, reason: str, at: str, build_events: EndEventsBuilder
    ) -> EndOutcome:
        return await self._writer.submit(
            lambda c: _end_in_tx(c, account_id, conversation_id, reason, at, build_events)
        )

    async def delete_conversation(
        self, account_id: str, conversation_id: str, *, hard: bool, reason: str, at: str, build_events: EndEventsBuilder
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            if _end_in_tx(conn, account_id, conversation_id, reason, at, build_events) is EndOutcome.NOT_FOUND:
                return False
            if hard:
                conn.execute("DELETE FROM events WHERE conversation_id = ?", (conversation_id,))
                conn.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))
            else:
                conn.execute(
                    "UPDATE conversations SET deleted_at = ?, updated_at = ? WHERE conversation_id = ?",
                    (at, at, conversation_id),
                )
            return True

        return await self._writer.submit(op)
