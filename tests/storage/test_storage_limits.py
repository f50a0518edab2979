"""The per-account limit on active, non-test conversations."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from palaver.domain.errors import ConcurrencyLimitReached
from palaver.storage import Storage

AT = "2026-03-01T10:00:00.000000Z"


def test_third_active_conversation_is_refused(storage: Storage, run, records) -> None:
    first, second, third = (records.conversation("a1") for _ in range(3))

    async def scenario() -> None:
        await storage.create_account(records.account("a1", max_concurrent=2))
        await storage.insert_conversation(first)
        await storage.insert_conversation(second)
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(third)
        assert await storage.get_conversation("a1", third.conversation_id) is None

    run(scenario())


def test_test_mode_conversations_do_not_count_and_are_not_limited(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1", max_concurrent=2))
        for _ in range(5):
            await storage.insert_conversation(records.conversation("a1", test_mode=True))
        await storage.insert_conversation(records.conversation("a1"))
        await storage.insert_conversation(records.conversation("a1"))
        await storage.insert_conversation(records.conversation("a1", test_mode=True))  # still fine when full
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))

    run(scenario())


def test_ending_or_deleting_frees_a_slot(storage: Storage, run, records) -> None:
    convs = [records.conversation("a1") for _ in range(4)]

    async def scenario() -> None:
        await storage.create_account(records.account("a1", max_concurrent=2))
        await storage.insert_conversation(convs[0])
        await storage.insert_conversation(convs[1])
        await storage.end_conversation("a1", convs[0].conversation_id, "r", AT)
        await storage.insert_conversation(convs[2])
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(convs[3])
        assert await storage.delete_conversation("a1", convs[1].conversation_id, hard=False, reason="r", at=AT)
        await storage.insert_conversation(convs[3])

    run(scenario())


def test_limit_is_per_account(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1", max_concurrent=1))
        await storage.create_account(records.account("a2", max_concurrent=1))
        await storage.create_account(records.account("a3"))
        await storage.insert_conversation(records.conversation("a1"))
        await storage.insert_conversation(records.conversation("a2"))
        for _ in range(5):
            await storage.insert_conversation(records.conversation("a3"))  # unlimited
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))

    run(scenario())


def test_set_max_concurrent_applies_to_the_next_insert(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        for _ in range(3):
            await storage.insert_conversation(records.conversation("a1"))
        await storage.set_max_concurrent("a1", 3)
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))
        await storage.set_max_concurrent("a1", 4)
        await storage.insert_conversation(records.conversation("a1"))
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))
        await storage.set_max_concurrent("a1", None)
        await storage.insert_conversation(records.conversation("a1"))
        await storage.set_max_concurrent("a1", 0)
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))

    run(scenario())


def test_concurrent_inserts_cannot_overshoot_the_limit(storage: Storage, run, records) -> None:
    convs = [records.conversation("a1") for _ in range(10)]

    async def scenario() -> list[object]:
        await storage.create_account(records.account("a1", max_concurrent=3))
        return await asyncio.gather(*(storage.insert_conversation(c) for c in convs), return_exceptions=True)

    results = run(scenario())
    assert results.count(None) == 3
    assert sum(isinstance(r, ConcurrencyLimitReached) for r in results) == 7
    _, total = run(storage.list_conversations("a1", status="active", limit=100, offset=0))
    assert total == 3


def test_slots_freed_by_one_burst_of_ends_are_counted_exactly(storage: Storage, run, records) -> None:
    """Several conversations of one account ended together free exactly that many slots."""
    convs = [records.conversation("a1") for _ in range(3)]

    async def scenario() -> None:
        await storage.create_account(records.account("a1", max_concurrent=3))
        for conv in convs:
            await storage.insert_conversation(conv)
        await asyncio.gather(*(storage.end_conversation("a1", c.conversation_id, "r", AT) for c in convs))
        for _ in range(3):
            await storage.insert_conversation(records.conversation("a1"))
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))

    run(scenario())


def test_racing_ends_and_deletes_free_each_slot_once(storage: Storage, run, records) -> None:
    """Duplicate and foreign ends or deletes of the same conversations must not free extra slots."""
    ended, deleted, hard_deleted = (records.conversation("a1") for _ in range(3))
    theirs = records.conversation("a2")

    async def scenario() -> None:
        await storage.create_account(records.account("a1", max_concurrent=3))
        await storage.create_account(records.account("a2", max_concurrent=1))
        for conv in (ended, deleted, hard_deleted, theirs):
            await storage.insert_conversation(conv)
        burst = []
        for _ in range(20):
            burst.append(storage.end_conversation("a1", ended.conversation_id, "r", AT))
            burst.append(storage.delete_conversation("a1", deleted.conversation_id, hard=False, reason="r", at=AT))
            burst.append(storage.delete_conversation("a1", hard_deleted.conversation_id, hard=True, reason="r", at=AT))
            burst.append(storage.end_conversation("a1", deleted.conversation_id, "r", AT))
            burst.append(storage.end_conversation("a2", ended.conversation_id, "r", AT))  # foreign: frees nothing
            burst.append(storage.end_conversation("a1", theirs.conversation_id, "r", AT))  # foreign: frees nothing
        await asyncio.gather(*burst)
        # a1 has three free slots again, and not one more.
        for _ in range(3):
            await storage.insert_conversation(records.conversation("a1"))
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))
        # a2's conversation is still active and still holds its only slot.
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a2"))

    run(scenario())


def test_failed_insert_takes_no_slot(storage: Storage, backend, run, records) -> None:
    """An insert that fails (duplicate id) leaves the active count as it was."""
    first = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1", max_concurrent=2))
        await storage.insert_conversation(first)
        for _ in range(3):
            with pytest.raises(backend.integrity_error):
                await storage.insert_conversation(replace(records.conversation("a1"), conversation_id=first.conversation_id))
        await storage.insert_conversation(records.conversation("a1"))
        with pytest.raises(ConcurrencyLimitReached):
            await storage.insert_conversation(records.conversation("a1"))

    run(scenario())
