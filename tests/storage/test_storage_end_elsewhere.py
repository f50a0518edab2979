"""Ends, deletes and timers of one storage seen by another on the same database.

Two storages on one database stand for two processes on one file (a second
`palaver serve`, the CLI). Whatever one did must be seen by the other's next
end, and every transition must still happen once: one ENDED, one `ended`
outbox change. (Written for a map of active conversations' rowids kept by the
process that made them, tried and not kept, docs/performance.md: any such
per-process memory must pass these.)
"""

from __future__ import annotations

import asyncio

from palaver.domain.conversation import EndOutcome
from palaver.storage import Storage

AT = "2026-03-01T10:00:00.000000Z"
LATER = "2026-03-01T11:00:00.000000Z"
HOOK = "https://example.com/hook"


def ended_changes(storage: Storage, run) -> list[str]:
    return sorted(c.conversation_id for c in run(storage.read_outbox(0, 1000)) if c.change == "ended")


def test_an_end_made_elsewhere_wins_over_what_this_storage_remembers(storage: Storage, backend, run, records) -> None:
    conv = records.conversation("a1", callback_url=HOOK)
    other = backend.open()

    async def scenario() -> tuple[EndOutcome, EndOutcome]:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        ended_there = await other.end_conversation("a1", conv.conversation_id, "there", AT)
        ended_here = await storage.end_conversation("a1", conv.conversation_id, "here", LATER)
        return ended_there, ended_here

    try:
        assert run(scenario()) == (EndOutcome.ENDED, EndOutcome.ALREADY_ENDED)
    finally:
        run(other.close())
    row = backend.raw_conversation(conv.conversation_id)
    assert (row["status"], row["shutdown_reason"], row["ended_at"]) == ("ended", "there", AT)
    assert ended_changes(storage, run) == [conv.conversation_id]


def test_deletes_made_elsewhere_leave_nothing_to_end(storage: Storage, backend, run, records) -> None:
    soft, hard = records.conversation("a1"), records.conversation("a1")
    other = backend.open()

    async def scenario() -> list[EndOutcome]:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(soft)
        await storage.insert_conversation(hard)
        assert await other.delete_conversation("a1", soft.conversation_id, hard=False, reason="gone", at=AT)
        assert await other.delete_conversation("a1", hard.conversation_id, hard=True, reason="gone", at=AT)
        return [await storage.end_conversation("a1", c.conversation_id, "here", LATER) for c in (soft, hard)]

    try:
        assert run(scenario()) == [EndOutcome.NOT_FOUND, EndOutcome.NOT_FOUND]
    finally:
        run(other.close())
    assert backend.raw_conversation(soft.conversation_id)["shutdown_reason"] == "gone"
    assert backend.raw_conversation(hard.conversation_id) is None


def test_one_batch_of_ends_made_here_and_elsewhere(storage: Storage, backend, run, records) -> None:
    """Conversations made by either storage, one already ended by the other, all ended in one batch."""
    mine = [records.conversation("a1", callback_url=HOOK) for _ in range(3)]
    theirs = [records.conversation("a1", callback_url=HOOK) for _ in range(3)]
    other = backend.open()

    async def scenario() -> list[EndOutcome]:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        for conv in mine:
            await storage.insert_conversation(conv)
        for conv in theirs:
            await other.insert_conversation(conv)
        assert await other.end_conversation("a1", mine[0].conversation_id, "there", AT) is EndOutcome.ENDED
        ids = [c.conversation_id for c in (*mine, *theirs)]
        calls = [storage.end_conversation("a1", cid, "here", LATER) for cid in ids]
        calls.append(storage.end_conversation("a1", mine[1].conversation_id, "again", LATER))
        calls.append(storage.end_conversation("a2", mine[2].conversation_id, "not yours", LATER))
        return list(await asyncio.gather(*calls))

    try:
        outcomes = run(scenario())
    finally:
        run(other.close())
    assert outcomes == [EndOutcome.ALREADY_ENDED] + [EndOutcome.ENDED] * 5 + [
        EndOutcome.ALREADY_ENDED,
        EndOutcome.NOT_FOUND,
    ]
    assert backend.raw_conversation(mine[0].conversation_id)["shutdown_reason"] == "there"
    for conv in (*mine[1:], *theirs):
        assert backend.raw_conversation(conv.conversation_id)["shutdown_reason"] == "here"
    assert ended_changes(storage, run) == sorted(c.conversation_id for c in (*mine, *theirs))


def test_a_storage_opened_later_ends_what_was_made_before(backend, run, records) -> None:
    """A restart: the conversations active in the database are this process's to end, once each."""
    first = backend.open()
    convs = [records.conversation("a1", callback_url=HOOK) for _ in range(4)]

    async def make() -> None:
        await first.migrate()
        await first.create_account(records.account("a1"))
        for conv in convs:
            await first.insert_conversation(conv)
        assert await first.end_conversation("a1", convs[0].conversation_id, "before", AT) is EndOutcome.ENDED
        await first.close()

    run(make())
    second = backend.open()

    async def end_all() -> list[EndOutcome]:
        await second.migrate()
        calls = [second.end_conversation("a1", c.conversation_id, "after", LATER) for c in (*convs, convs[1])]
        return list(await asyncio.gather(*calls))

    try:
        assert run(end_all()) == [EndOutcome.ALREADY_ENDED] + [EndOutcome.ENDED] * 3 + [EndOutcome.ALREADY_ENDED]
        assert ended_changes(second, run) == sorted(c.conversation_id for c in convs)
    finally:
        run(second.close())
