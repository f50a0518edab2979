"""`metrics_snapshot`: the counts `GET /metrics` reads from the database at scrape time."""

from __future__ import annotations

from palaver.storage import Storage

AT = "2026-03-01T10:00:00.000000Z"
END = "end_conversation_endpoint_hit"
ROOM_DELETED = "daily_room_has_been_deleted"


def test_an_empty_database_has_no_counts(storage: Storage, run) -> None:
    assert run(storage.metrics_snapshot()) == {
        "conversations_by_status": {},
        "endings_by_reason": {},
    }


def test_counts_every_row_by_status_and_reason(storage: Storage, run, records) -> None:
    hooked = records.conversation("a1", callback_url="https://example.com/hook")
    ended, soft_deleted, hard_deleted, active = (records.conversation("a1") for _ in range(4))

    async def scenario() -> dict[str, dict[str, int]]:
        await storage.create_account(records.account("a1"))
        for conv in (hooked, ended, soft_deleted, hard_deleted, active):
            await storage.insert_conversation(conv)
        await storage.end_conversation("a1", ended.conversation_id, END, AT)
        await storage.end_conversation("a1", hooked.conversation_id, END, AT)
        for conv, hard in ((soft_deleted, False), (hard_deleted, True)):
            assert await storage.delete_conversation("a1", conv.conversation_id, hard=hard, reason=ROOM_DELETED, at=AT)
        return await storage.metrics_snapshot()

    snapshot = run(scenario())
    # Soft-deleted rows are counted, hard-deleted ones are gone.
    assert snapshot["conversations_by_status"] == {"active": 1, "ended": 3}
    assert snapshot["endings_by_reason"] == {END: 2, ROOM_DELETED: 1}
