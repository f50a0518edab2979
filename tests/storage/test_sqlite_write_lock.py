"""SQLite only: a write that finds the database locked waits without holding up the event loop.

Another connection can hold SQLite's write lock for a while: the checkpointer's
RESTART, a CLI command, another process on the same file. The writes queued
meanwhile must wait for it on the loop, so that everything else the loop does
(reading requests, answering reads) goes on.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from palaver.domain.conversation import EndOutcome
from palaver.storage import open_storage

AT = "2026-03-01T10:00:00.000000Z"
HOLD_S = 0.3


def test_a_locked_database_delays_the_write_not_the_loop(tmp_path: Path, run, records) -> None:
    path = tmp_path / "s.db"
    storage = open_storage(f"sqlite:///{path}")
    conv = records.conversation("a1")

    async def scenario() -> tuple[Any, bool, int, Any]:
        await storage.migrate()
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)

        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock ...
        released = threading.Event()

        def release() -> None:
            time.sleep(HOLD_S)  # ... for a while, from another thread
            other.execute("COMMIT")
            released.set()

        threading.Thread(target=release, daemon=True).start()
        end = asyncio.ensure_future(storage.end_conversation("a1", conv.conversation_id, "r", AT))
        ticks, done_while_locked = 0, False
        while not released.is_set():
            done_while_locked |= end.done()
            await asyncio.sleep(0.005)
            ticks += 1
        outcome = await end
        other.close()
        return outcome, done_while_locked, ticks, await storage.get_conversation("a1", conv.conversation_id)

    try:
        outcome, done_while_locked, ticks, got = run(scenario())
    finally:
        run(storage.close())
    assert outcome is EndOutcome.ENDED
    assert not done_while_locked  # the end committed only once the lock was free
    # The loop kept turning while the end waited: a 5 ms sleep returned many times.
    assert ticks >= HOLD_S / 0.005 / 3, ticks
    assert (got.status, got.shutdown_reason, got.ended_at) == ("ended", "r", AT)
