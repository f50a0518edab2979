"""Soft and hard delete, and the end that a delete implies."""

from __future__ import annotations

import asyncio

import pytest

from palaver.domain.conversation import EndOutcome
from palaver.storage import Storage

AT = "2026-03-01T10:00:00.000000Z"
LATER = "2026-03-01T11:00:00.000000Z"
ROOM_DELETED = "daily_room_has_been_deleted"


def test_soft_delete_hides_the_conversation_everywhere(storage: Storage, run, records) -> None:
    conv, other = records.conversation("a1"), records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        await storage.insert_conversation(other)
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason=ROOM_DELETED, at=AT)
        assert await storage.get_conversation("a1", conv.conversation_id) is None
        assert await storage.find_conversation(conv.conversation_id) is None
        page, total = await storage.list_conversations("a1", status=None, limit=10, offset=0)
        assert [c.conversation_id for c in page] == [other.conversation_id] and total == 1
        assert (await storage.list_conversations("a1", status="ended", limit=10, offset=0))[1] == 0
        assert await storage.end_conversation("a1", conv.conversation_id, "r", LATER) is EndOutcome.NOT_FOUND
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason="r", at=LATER) is False
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=True, reason="r", at=LATER) is False
        assert await storage.get_conversation("a1", other.conversation_id) == other  # neighbour untouched

    run(scenario())


def test_soft_delete_keeps_the_row(storage: Storage, backend, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason=ROOM_DELETED, at=AT)

    run(scenario())
    row = backend.raw_conversation(conv.conversation_id)
    assert row is not None
    assert row["deleted_at"] == AT


def test_hard_delete_removes_the_row(storage: Storage, backend, run, records) -> None:
    conv, other = records.conversation("a1"), records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        await storage.insert_conversation(other)
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=True, reason=ROOM_DELETED, at=AT)
        assert await storage.get_conversation("a1", conv.conversation_id) is None
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=True, reason="r", at=LATER) is False
        assert await storage.end_conversation("a1", conv.conversation_id, "r", LATER) is EndOutcome.NOT_FOUND

    run(scenario())
    assert backend.raw_conversation(conv.conversation_id) is None
    assert backend.raw_conversation(other.conversation_id) is not None


def test_hard_delete_of_a_soft_deleted_conversation_is_refused(storage: Storage, backend, run, records) -> None:
    """Once deleted, a conversation is invisible to its owner, for deletes too."""
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason=ROOM_DELETED, at=AT)
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=True, reason="r", at=LATER) is False

    run(scenario())
    assert backend.raw_conversation(conv.conversation_id) is not None


@pytest.mark.parametrize("hard", [False, True])
def test_foreign_or_unknown_delete_is_refused(storage: Storage, run, records, hard: bool) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await storage.insert_conversation(conv)
        assert await storage.delete_conversation("a2", conv.conversation_id, hard=hard, reason="r", at=AT) is False
        assert await storage.delete_conversation("a1", "c" + "f" * 15, hard=hard, reason="r", at=AT) is False
        assert await storage.get_conversation("a1", conv.conversation_id) == conv

    run(scenario())


def test_delete_of_active_conversation_ends_it_with_the_reason(storage: Storage, backend, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason=ROOM_DELETED, at=AT)

    run(scenario())
    row = backend.raw_conversation(conv.conversation_id)
    assert row["status"] == "ended"
    assert row["shutdown_reason"] == ROOM_DELETED
    assert row["ended_at"] == AT


def test_delete_of_ended_conversation_keeps_its_original_end(storage: Storage, backend, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.end_conversation("a1", conv.conversation_id, "end_conversation_endpoint_hit", AT) \
            is EndOutcome.ENDED
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason=ROOM_DELETED, at=LATER)

    run(scenario())
    row = backend.raw_conversation(conv.conversation_id)
    assert (row["status"], row["shutdown_reason"], row["ended_at"]) == ("ended", "end_conversation_endpoint_hit", AT)


def test_a_delete_stamped_before_the_end_it_lost_to_is_not_recorded_before_it(storage: Storage, backend, run,
                                                                              records) -> None:
    """Racing requests take their timestamps before their transactions: an end stamped LATER may commit
    before a delete stamped AT. The row must not say it was deleted before it ended."""
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.end_conversation("a1", conv.conversation_id, "end_conversation_endpoint_hit", LATER) \
            is EndOutcome.ENDED
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason=ROOM_DELETED, at=AT)

    run(scenario())
    row = backend.raw_conversation(conv.conversation_id)
    assert (row["ended_at"], row["deleted_at"], row["updated_at"]) == (LATER, LATER, LATER)


def test_delete_of_test_mode_conversation_records_no_shutdown(storage: Storage, backend, run, records) -> None:
    conv = records.conversation("a1", test_mode=True)

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.delete_conversation("a1", conv.conversation_id, hard=False, reason=ROOM_DELETED, at=LATER)

    run(scenario())
    row = backend.raw_conversation(conv.conversation_id)
    assert row["shutdown_reason"] is None
    assert row["ended_at"] == conv.ended_at


@pytest.mark.parametrize("ended_first", [False, True])
@pytest.mark.parametrize("hard", [False, True])
def test_of_racing_deletes_exactly_one_succeeds(storage: Storage, backend, run, records, hard, ended_first) -> None:
    """Deletes racing on one conversation (on PostgreSQL, on separate connections): one wins, the others
    find it gone, whether it was still active or already ended."""
    conv = records.conversation("a1")

    async def scenario() -> list[bool]:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        if ended_first:
            await storage.end_conversation("a1", conv.conversation_id, "end_conversation_endpoint_hit", AT)
        return await asyncio.gather(
            *(
                storage.delete_conversation("a1", conv.conversation_id, hard=hard, reason=ROOM_DELETED, at=LATER)
                for _ in range(12)
            )
        )

    assert sorted(run(scenario())) == [False] * 11 + [True]
    row = backend.raw_conversation(conv.conversation_id)
    if hard:
        assert row is None
    else:
        assert row["deleted_at"] == LATER
        expected = "end_conversation_endpoint_hit" if ended_first else ROOM_DELETED
        assert (row["status"], row["shutdown_reason"]) == ("ended", expected)
