"""The outbox: one row per change that implies webhooks, committed with the change or not at all."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from palaver.domain.clock import ManualClock
from palaver.service.conversations import ConversationService, CreateConversation
from palaver.service.keys import issue_key
from palaver.storage import Storage, open_storage

AT = "2026-03-01T10:00:00.000000Z"
END = "end_conversation_endpoint_hit"
HOOK = "https://example.com/hook"


def changes(storage: Storage, run) -> list[tuple[str, str, str | None]]:
    return [(c.conversation_id, c.change, c.detail) for c in run(storage.read_outbox(0, 100))]


def test_create_end_and_delete_write_their_changes_in_order(storage: Storage, run, records) -> None:
    hooked, plain, purged = (
        records.conversation("a1", callback_url=HOOK),
        records.conversation("a1"),
        records.conversation("a1", callback_url=HOOK),
    )

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        for conv in (hooked, plain, purged):
            await storage.insert_conversation(conv)
        await storage.end_conversation("a1", hooked.conversation_id, END, AT)
        await storage.end_conversation("a1", hooked.conversation_id, END, AT)  # no second change
        await storage.end_conversation("a1", plain.conversation_id, END, AT)  # no callback_url: nothing
        assert await storage.delete_conversation("a1", purged.conversation_id, hard=True, reason=END, at=AT)

    run(scenario())
    h, p = hooked.conversation_id, purged.conversation_id
    assert changes(storage, run) == [
        (h, "created", None),
        (p, "created", None),
        (h, "ended", None),
        (p, "ended", None),
        (p, "purged", None),
    ]


def test_a_change_carries_the_facts_its_events_are_rendered_from(storage: Storage, run, records) -> None:
    conv = records.conversation("a1", callback_url=HOOK)

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        await storage.end_conversation("a1", conv.conversation_id, END, AT)

    run(scenario())
    created, ended = run(storage.read_outbox(0, 10))
    assert created.account_id == ended.account_id == "a1"
    assert ended.history is not None and ended.history.shutdown_reason == END and ended.history.ended_at == AT
    assert ended.history.callback_url == HOOK and ended.seq > created.seq
    # read after a cursor, and in pages
    assert [c.seq for c in run(storage.read_outbox(created.seq, 10))] == [ended.seq]
    assert [c.seq for c in run(storage.read_outbox(0, 1))] == [created.seq]


def test_trim_forgets_what_the_ledger_took_and_seqs_are_never_reused(storage: Storage, run, records) -> None:
    first, second = records.conversation("a1", callback_url=HOOK), records.conversation("a1", callback_url=HOOK)

    async def scenario() -> tuple[int, int]:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(first)
        (taken,) = await storage.read_outbox(0, 10)
        trimmed = await storage.trim_outbox(taken.seq, 100)
        await storage.insert_conversation(second)
        (after,) = await storage.read_outbox(0, 10)
        return trimmed, after.seq - taken.seq

    assert run(scenario()) == (1, 1)


def test_replay_requests_go_through_the_outbox(storage: Storage, run) -> None:
    run(storage.request_replay("c1.system.shutdown", "c1"))
    (change,) = run(storage.read_outbox(0, 10))
    assert (change.change, change.detail, change.history) == ("replay", "c1.system.shutdown", None)


def test_an_end_whose_outbox_row_cannot_be_written_is_not_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"

    async def scenario() -> None:
        storage = open_storage(f"sqlite:///{path}")
        await storage.migrate()
        clock = ManualClock()
        account = (await issue_key(storage, clock)).account_id
        service = ConversationService(storage, clock, "http://palaver.test")
        spec = CreateConversation(replica_id="r90bbd427f71", callback_url=HOOK)
        cid = (await service.create(account, spec)).conversation_id

        raw = sqlite3.connect(path)
        raw.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON webhook_outbox "
            "WHEN NEW.change = 'ended' BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
        )
        raw.commit()
        with pytest.raises(sqlite3.IntegrityError, match="outbox refused"):
            await service.end(account, cid)
        # Nothing of the end stayed: still active, its slot still taken, no change queued.
        view = await service.get(account, cid, verbose=True)
        assert view.record.status == "active" and view.record.ended_at is None
        assert [e["event_type"] for e in view.events or []] == ["system.replica_joined"]
        (active,) = raw.execute("SELECT active_conversations FROM accounts WHERE account_id = ?", (account,)).fetchone()
        assert active == 1
        assert [c.change for c in await storage.read_outbox(0, 10)] == ["created"]

        raw.execute("DROP TRIGGER refuse")
        raw.commit()
        raw.close()
        await service.end(account, cid)
        assert [c.change for c in await storage.read_outbox(0, 10)] == ["created", "ended"]
        await storage.close()

    asyncio.run(scenario())


def test_pending_deliveries_of_the_old_outbox_are_carried_over(tmp_path: Path) -> None:
    """Migration 0004 turns 0003's pending deliveries into the changes that caused them."""
    from palaver.storage.migrations import _migration_files, split_statements

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, _, script in _migration_files("sqlite"):
        if version >= 4:
            break
        for statement in split_statements(script):
            conn.execute(statement)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)")
    conn.executemany("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [(v, f"{v}") for v in (1, 2, 3)])
    rows = [
        ("a.system.replica_joined", "a", "system.replica_joined", "delivered", 1.0),
        ("a.system.shutdown", "a", "system.shutdown", "pending", 2.0),
        ("a.application.transcription_ready", "a", "application.transcription_ready", "pending", 2.0),
        ("b.system.replica_joined", "b", "system.replica_joined", "pending", 3.0),
    ]
    conn.executemany(
        "INSERT INTO webhook_deliveries (event_id, conversation_id, account_id, event_type, url, body, status, "
        "created_epoch) VALUES (?, ?, 'acc', ?, 'https://example.com', '{}', ?, ?)",
        rows,
    )
    conn.close()

    async def scenario() -> list[tuple[str, str]]:
        storage = open_storage(f"sqlite:///{path}")
        try:
            assert "0004_webhook_outbox.sql" in await storage.migrate()
            return [(c.conversation_id, c.change) for c in await storage.read_outbox(0, 10)]
        finally:
            await storage.close()

    assert asyncio.run(scenario()) == [("a", "ended"), ("b", "created")]


def test_trim_deletes_in_chunks_and_never_past_the_cursor(storage: Storage, run, records) -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        await storage.create_account(records.account("a1"))
        for _ in range(7):
            await storage.insert_conversation(records.conversation("a1", callback_url=HOOK))
        seqs = [c.seq for c in await storage.read_outbox(0, 100)]
        deleted = [await storage.trim_outbox(seqs[4], 2) for _ in range(4)]
        return deleted, [c.seq for c in await storage.read_outbox(0, 100)]

    deleted, left = run(scenario())
    assert deleted == [2, 2, 1, 0]
    assert len(left) == 2
