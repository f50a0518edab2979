"""Schema migrations and durability across close and reopen."""

from __future__ import annotations

import asyncio

from palaver.domain.conversation import EndOutcome
from palaver.storage import Storage
from palaver.storage.base import ApiKeyRecord


def test_first_migrate_applies_then_nothing_is_pending(backend, run) -> None:
    """A fresh database gets the schema once; later runs, from any instance, apply nothing."""
    first = backend.open()
    try:
        applied = run(first.migrate())
        assert applied, "a fresh database must get at least the initial migration"
        assert len(applied) == len(set(applied))
        assert run(first.migrate()) == []
    finally:
        run(first.close())
    second = backend.open()
    try:
        assert run(second.migrate()) == []
    finally:
        run(second.close())


def test_migrate_is_idempotent_and_keeps_data(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        conv = records.conversation("a1")
        await storage.insert_conversation(conv)
        assert await storage.migrate() == []
        assert await storage.get_conversation("a1", conv.conversation_id) == conv

    run(scenario())


def test_data_survives_close_and_reopen(backend, run, records) -> None:
    """Everything written before close (accounts, keys, conversations, ends, deletes) is there after reopen."""
    live, ended, deleted = records.conversation("a1"), records.conversation("a1"), records.conversation("a1")
    key = ApiKeyRecord("k1", "a1", "main", "0123456789ab", "f" * 64, "2026-01-01T00:00:00.000000Z", None)

    async def write() -> None:
        store = backend.open()
        await store.migrate()
        await store.create_account(records.account("a1", max_concurrent=7))
        await store.add_key(key)
        for conv in (live, ended, deleted):
            await store.insert_conversation(conv)
        assert (
            await store.end_conversation("a1", ended.conversation_id, "reason-x", "2026-01-02T00:00:00.000000Z")
            is EndOutcome.ENDED
        )
        assert await store.delete_conversation(
            "a1", deleted.conversation_id, hard=False, reason="r", at="2026-01-02T00:00:00.000000Z"
        )
        await store.close()

    async def read() -> None:
        store = backend.open()
        try:
            assert await store.migrate() == []
            account = await store.get_account("a1")
            assert account is not None and account.max_concurrent == 7
            assert await store.find_keys("0123456789ab") == [key]
            assert await store.get_conversation("a1", live.conversation_id) == live
            got = await store.get_conversation("a1", ended.conversation_id)
            assert got is not None
            assert (got.status, got.shutdown_reason, got.ended_at) == (
                "ended",
                "reason-x",
                "2026-01-02T00:00:00.000000Z",
            )
            assert await store.get_conversation("a1", deleted.conversation_id) is None
            page, total = await store.list_conversations("a1", status=None, limit=10, offset=0)
            assert [c.conversation_id for c in page] == [ended.conversation_id, live.conversation_id]
            assert total == 2
        finally:
            await store.close()

    run(write())
    run(read())


def test_writes_awaited_before_close_are_durable_even_if_close_follows_at_once(backend, run, records) -> None:
    """close() must not drop writes that were already acknowledged."""
    convs = [records.conversation("a1") for _ in range(20)]

    async def write() -> None:
        store = backend.open()
        await store.migrate()
        await store.create_account(records.account("a1"))
        await asyncio.gather(*(store.insert_conversation(c) for c in convs))
        await store.close()

    async def read() -> int:
        store = backend.open()
        try:
            return (await store.list_conversations("a1", status=None, limit=100, offset=0))[1]
        finally:
            await store.close()

    run(write())
    assert run(read()) == 20


def test_racing_first_migrations_apply_each_migration_once(backend, run) -> None:
    """Processes starting at once on an empty database: every migration is applied exactly once."""
    stores = [backend.open() for _ in range(4)]

    async def scenario() -> list[list[str]]:
        try:
            return await asyncio.gather(*(s.migrate() for s in stores))
        finally:
            for s in stores:
                await s.close()

    applied = run(scenario())
    names = [name for one in applied for name in one]
    assert names and len(names) == len(set(names)), applied  # each migration applied once, by one process
    assert all(one == sorted(one) for one in applied), applied  # each process applies in version order
    assert run(_open_and_migrate(backend)) == []  # nothing left pending
    if backend.name == "postgres":
        # PostgreSQL migrates under one advisory lock: the first process applies all, the rest find none.
        # SQLite takes its write lock per migration, so two processes may share the list between them.
        assert sorted(len(a) > 0 for a in applied) == [False, False, False, True], applied


async def _open_and_migrate(backend) -> list[str]:
    store = backend.open()
    try:
        return await store.migrate()
    finally:
        await store.close()
