"""SQLite only: how a conversation is laid out in the file.

A conversation's system prompt and create request live in `conversation_texts`, out of the
row every end rewrites (migration 0010, decisions.md #109); rows made before keep theirs and
still read back whole.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from palaver.domain.clock import iso_timestamp
from palaver.domain.conversation import EndOutcome, ShutdownReason
from palaver.domain.timers import Deadline
from palaver.storage.base import ConversationRecord, open_storage
from palaver.storage.sqlite import SQLiteStorage
from palaver.storage.sqlite_writer import END_RESERVE_BYTES

T = TypeVar("T")
PROMPT = "You are a patient tutor. " * 200  # 5,000 bytes: more than a page
REQUEST = {"replica_id": "r90bbd427f71", "conversational_context": "x" * 3000, "properties": {"language": "english"}}


def run(awaitable: Awaitable[T]) -> T:
    async def wrap() -> T:
        return await awaitable

    return asyncio.run(wrap())


def raw(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def opened(path: Path) -> SQLiteStorage:
    storage = open_storage(f"sqlite:///{path}")
    assert isinstance(storage, SQLiteStorage)
    return storage


def a_conversation(records: Any) -> ConversationRecord:
    """With a callback URL, so that the outbox (which reads the prompt for webhooks) has its rows."""
    return records.conversation("a1", system_prompt=PROMPT, request=REQUEST, callback_url="https://example.com/hook")


async def store(path: Path, records: Any, record: ConversationRecord) -> None:
    storage = opened(path)
    try:
        await storage.migrate()
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(record)
    finally:
        await storage.close()


def test_the_text_is_stored_out_of_the_row_and_read_back_whole(tmp_path: Path, records: Any) -> None:
    path = tmp_path / "new.db"
    record = a_conversation(records)
    run(store(path, records, record))
    assert raw(path, "SELECT system_prompt, request FROM conversations") == [("", "{}")]
    assert raw(path, "SELECT length(system_prompt) FROM conversation_texts") == [(len(PROMPT),)]

    async def read_end_read() -> None:
        storage = opened(path)
        try:
            got = await storage.get_conversation("a1", record.conversation_id)
            assert got is not None and got.system_prompt == PROMPT and got.request == REQUEST
            at = iso_timestamp(time.time())
            assert await storage.end_conversation("a1", record.conversation_id, "r", at) is EndOutcome.ENDED
            page, total = await storage.list_conversations("a1", status=None, limit=10, offset=0)
            assert total == 1 and page[0].status == "ended" and page[0].system_prompt == PROMPT
            assert page[0].request == REQUEST
            found = await storage.find_conversation(record.conversation_id)
            assert found is not None and found.system_prompt == PROMPT
            assert await storage.delete_conversation("a1", record.conversation_id, hard=True, reason="r", at=at)
        finally:
            await storage.close()

    run(read_end_read())
    assert raw(path, "SELECT COUNT(*) FROM conversation_texts") == [(0,)]  # a hard delete takes the text too


def test_rows_made_before_the_split_still_read_back_whole(tmp_path: Path, records: Any) -> None:
    path = tmp_path / "old.db"
    old, new = a_conversation(records), a_conversation(records)
    run(store(path, records, old))
    # As an earlier Palaver left it: the text in the row itself, nothing in conversation_texts.
    moved = sqlite3.connect(path, isolation_level=None)
    moved.execute(
        "UPDATE conversations SET (system_prompt, request) = "
        "(SELECT system_prompt, request FROM conversation_texts WHERE conversation_seq = conversations.seq)"
    )
    moved.execute("DELETE FROM conversation_texts")
    moved.close()

    async def both() -> None:
        storage = opened(path)
        try:
            await storage.insert_conversation(new)
            for record in (old, new):
                got = await storage.get_conversation("a1", record.conversation_id)
                assert got is not None and got.system_prompt == PROMPT and got.request == REQUEST
            changes = await storage.read_outbox(0, 10)
            assert [c.conversation_id for c in changes] == [old.conversation_id, new.conversation_id]
            assert all(c.history is not None and c.history.system_prompt == PROMPT for c in changes)
        finally:
            await storage.close()

    run(both())
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]


def row_bytes(path: Path) -> int:
    """The bytes of the conversations table's rows in the file (SQLite's dbstat): here, the one row's record."""
    ((payload,),) = raw(path, "SELECT SUM(payload) FROM dbstat WHERE name = 'conversations'")
    assert isinstance(payload, int)
    return payload


@pytest.mark.parametrize("how", ["end", "timer", "delete"])
def test_leaving_active_does_not_lengthen_the_row(tmp_path: Path, records: Any, how: str) -> None:
    """Creates pack rows into pages; a row that grew at its end split its page (migration 0011)."""
    path = tmp_path / "reserve.db"
    reason = max(ShutdownReason, key=len)  # the most an end can add
    record = records.conversation("a1", deadline=Deadline(time.time() - 1, reason))
    run(store(path, records, record))
    assert raw(path, "SELECT length(end_reserve) FROM conversations") == [(END_RESERVE_BYTES,)]
    before = row_bytes(path)

    async def leave() -> None:
        storage = opened(path)
        try:
            at = iso_timestamp(time.time())
            if how == "end":
                got = await storage.end_conversation("a1", record.conversation_id, str(reason), at)
                assert got is EndOutcome.ENDED
            elif how == "timer":
                fired = await storage.fire_due(time.time(), at)
                assert [f[0] for f in fired.fired] == [record.conversation_id]
            else:
                assert await storage.delete_conversation("a1", record.conversation_id, hard=False, reason=reason, at=at)
        finally:
            await storage.close()

    run(leave())
    assert raw(path, "SELECT status, shutdown_reason, end_reserve FROM conversations") == [("ended", reason, None)]
    if how != "delete":  # a delete also stamps deleted_at, after the end: rare, and not reserved for
        assert row_bytes(path) <= before
