"""SQLite only: the map of active conversations' rowids (sqlite_rowids.py) is a hint, never the truth.

An end by rowid checks the row's id too, so an entry pointing at the wrong row
(a create whose transaction rolled back, its seq then taken by another
conversation) or at no row must neither end another conversation nor lose the
end: it goes down the id path.
"""

from __future__ import annotations

from pathlib import Path

from palaver.domain.conversation import EndOutcome, ShutdownReason
from palaver.domain.timers import Deadline
from palaver.storage.sqlite import SQLiteStorage

AT = "2026-03-01T10:00:00.000000Z"
EPOCH0 = 1_767_225_600


def _raw_seq(storage: SQLiteStorage, conversation_id: str) -> int:
    return storage._read.execute("SELECT seq FROM conversations WHERE conversation_id = ?", (conversation_id,)).fetchone()[0]


async def _end(storage: SQLiteStorage, conversation_id: str) -> EndOutcome:
    return await storage.end_conversation("a1", conversation_id, "r", AT)


def test_a_wrong_rowid_neither_ends_the_row_it_points_at_nor_loses_the_end(tmp_path: Path, run, records) -> None:
    storage = SQLiteStorage(str(tmp_path / "s.db"))
    a, b, c = records.conversation("a1"), records.conversation("a1"), records.conversation("a1")

    async def scenario() -> list[EndOutcome]:
        await storage.migrate()
        await storage.create_account(records.account("a1"))
        for conv in (a, b, c):
            await storage.insert_conversation(conv)
        storage._rowids.add(b.conversation_id, _raw_seq(storage, a.conversation_id))  # another row's
        storage._rowids.add(c.conversation_id, 10**9)  # no row's
        return [await storage.end_conversation("a1", conv.conversation_id, "r", AT) for conv in (b, c)]

    try:
        assert run(scenario()) == [EndOutcome.ENDED, EndOutcome.ENDED]
        assert run(storage.get_conversation("a1", a.conversation_id)).status == "active"
        assert run(_end(storage, a.conversation_id)) is EndOutcome.ENDED
    finally:
        run(storage.close())


def test_the_map_holds_the_active_conversations_made_or_found_here(tmp_path: Path, run, records) -> None:
    path = str(tmp_path / "s.db")
    storage = SQLiteStorage(path)
    active, ended, test = records.conversation("a1"), records.conversation("a1"), records.conversation(
        "a1", test_mode=True
    )

    async def scenario() -> None:
        await storage.migrate()
        await storage.create_account(records.account("a1"))
        for conv in (active, ended, test):
            await storage.insert_conversation(conv)
        assert set(storage._rowids.seqs) == {active.conversation_id, ended.conversation_id}
        assert await storage.end_conversation("a1", ended.conversation_id, "r", AT) is EndOutcome.ENDED
        assert set(storage._rowids.seqs) == {active.conversation_id}
        await storage.close()

    run(scenario())
    reopened = SQLiteStorage(path)
    try:
        run(reopened.migrate())
        assert reopened._rowids.seqs == {active.conversation_id: _raw_seq(reopened, active.conversation_id)}
    finally:
        run(reopened.close())


def test_timers_drop_the_conversations_they_end_and_those_ended_elsewhere(tmp_path: Path, run, records) -> None:
    path = str(tmp_path / "s.db")
    storage, other = SQLiteStorage(path), SQLiteStorage(path)
    deadline = Deadline(EPOCH0 + 60, ShutdownReason.MAX_CALL_DURATION)
    due, elsewhere = records.conversation("a1", deadline=deadline), records.conversation("a1", deadline=deadline)

    async def scenario() -> None:
        await storage.migrate()
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(due)
        await storage.insert_conversation(elsewhere)
        assert await other.end_conversation("a1", elsewhere.conversation_id, "r", AT) is EndOutcome.ENDED
        assert len(storage._rowids) == 2
        fired = await storage.fire_due(deadline.at + 1, AT)
        assert [f[0] for f in fired] == [due.conversation_id]
        assert len(storage._rowids) == 0

    try:
        run(scenario())
    finally:
        run(other.close())
        run(storage.close())
