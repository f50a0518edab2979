"""An append racing the end of its conversation: kept in the final transcript, or refused, never in between.

What must hold: an append that returns True is in the transcript the end leaves behind (nothing
added to it afterwards), and an append that starts once the end has committed returns False.

The PostgreSQL tests pause one of the two transactions half-way, with a lock the test holds on a
table the paused transaction needs for its next statement, and check from pg_stat_activity that
the other one waits for it instead of passing it. Without the row lock in `append_turn` both fail.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from backends import Backend, PostgresBackend

from palaver.domain.conversation import EndOutcome
from palaver.storage import Storage
from palaver.storage.postgres import PostgresStorage

AT = "2026-03-01T10:00:00.000000Z"
END = "end_conversation_endpoint_hit"


# PostgreSQL: a trigger run as each append commits (a deferred constraint trigger) notes any turn that
# commits after its conversation's end did; plpgsql reads the latest committed row. This catches a
# late append wherever it lands, not only after the test reads the transcript.
LATE_TURNS = """
CREATE TABLE late_turns (conversation_id text, idx integer, status text);
CREATE FUNCTION note_late_turn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO late_turns SELECT NEW.conversation_id, NEW.idx, status FROM conversations
    WHERE conversation_id = NEW.conversation_id AND status <> 'active';
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER late_turn AFTER INSERT ON conversation_turns
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_late_turn();
"""


async def on_postgres(backend: Backend, sql: str) -> list[tuple[Any, ...]]:
    """Run a script (DDL) or one query on the test's database."""
    conn = await asyncpg.connect(backend.url)
    try:
        if sql.startswith("SELECT"):
            return [tuple(r) for r in await conn.fetch(sql)]
        await conn.execute(sql)
        return []
    finally:
        await conn.close()


def test_appends_racing_an_end_are_kept_or_refused_whole(storage: Storage, backend: Backend, run, records) -> None:
    """Four writers in two processes append until refused while the end commits (a real race on PostgreSQL)."""
    other = backend.open()
    if backend.name == "postgres":
        run(on_postgres(backend, LATE_TURNS))
    accepted: list[str] = []
    started_after_end: list[tuple[str, bool]] = []
    ended_at: list[float] = []

    async def writer(name: str, store: Storage, cid: str) -> None:
        for n in range(2000):
            marker = f"{name}-{n}"
            after_end = bool(ended_at)
            ok = await store.rooms.append_turn(cid, {"marker": marker})
            if after_end:
                started_after_end.append((marker, ok))
            if not ok:
                return
            accepted.append(marker)

    async def scenario() -> tuple[list[str], list[str]]:
        await storage.create_account(records.account("a1"))
        conv = records.conversation("a1")
        cid = conv.conversation_id
        await storage.insert_conversation(conv)
        writers = [asyncio.create_task(writer(f"w{i}", (storage, other)[i % 2], cid)) for i in range(4)]
        while len(accepted) < 40:
            await asyncio.sleep(0.001)
        assert await storage.end_conversation("a1", cid, END, AT) is EndOutcome.ENDED
        ended_at.append(time.monotonic())
        at_end = [t["marker"] for t in await other.rooms.turns(cid)]
        await asyncio.gather(*writers)
        final = [t["marker"] for t in await storage.rooms.turns(cid)]
        return at_end, final

    try:
        at_end, final = run(scenario())
    finally:
        run(other.close())
    if backend.name == "postgres":
        assert run(on_postgres(backend, "SELECT * FROM late_turns")) == []  # no append committed after the end
    assert final == at_end  # nothing was added once the end had committed
    assert sorted(final) == sorted(accepted)  # every True is kept, every False left nothing
    assert not any(ok for _, ok in started_after_end)  # (on SQLite the end's batch refuses them all at once)
    assert 40 <= len(final) < 8000


# -- PostgreSQL: one transaction paused half-way -----------------------------------------------------


async def lock_waiters(conn: asyncpg.Connection) -> int:
    """Sessions of this database waiting for a lock (afresh: inside a transaction the view is cached)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def until_waiting(conn: asyncpg.Connection, waiters: int, task: asyncio.Future[Any]) -> None:
    """Until `waiters` sessions wait for a lock, or `task` is done (it did not wait)."""
    deadline = time.monotonic() + 10
    while not task.done() and await lock_waiters(conn) < waiters:
        assert time.monotonic() < deadline, "nobody waits for the lock"
        await asyncio.sleep(0.005)


def pg_scenario(pg_cluster, run, records, body) -> Any:
    database = PostgresBackend(pg_cluster, prefix="rooms")
    storage = PostgresStorage(database.url, pool_size=4)

    async def scenario() -> Any:
        await storage.migrate()
        await storage.create_account(records.account("a1"))
        conv = records.conversation("a1")
        await storage.insert_conversation(conv)
        holder = await asyncpg.connect(database.url)
        try:
            return await body(storage, holder, conv.conversation_id)
        finally:
            await holder.close()

    try:
        return run(scenario())
    finally:
        run(storage.close())
        database.drop()


def test_an_end_waits_for_the_append_in_flight(pg_cluster, run, records) -> None:
    """The append has checked the conversation; the end, which comes next, waits for its commit.

    The append is one statement, so the test pauses it inside: a trigger on the transcript's
    INSERT (which runs after the statement has the conversation's row) waits for an advisory
    lock the test holds.
    """

    async def body(storage: Storage, holder: asyncpg.Connection, cid: str) -> None:
        await holder.execute(
            "CREATE FUNCTION pause_append() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$; "
            "CREATE TRIGGER pause_append BEFORE INSERT ON conversation_turns "
            "FOR EACH ROW EXECUTE FUNCTION pause_append()"
        )
        await holder.execute("SELECT pg_advisory_lock(4242)")  # the append's INSERT waits
        append = asyncio.ensure_future(storage.rooms.append_turn(cid, {"content": "last words"}))
        await until_waiting(holder, 1, append)
        assert not append.done()
        end = asyncio.ensure_future(storage.end_conversation("a1", cid, END, AT))
        await until_waiting(holder, 2, end)
        ended_while_the_append_was_in_flight = end.done()
        await holder.execute("SELECT pg_advisory_unlock(4242)")
        assert await append is True
        assert await end is EndOutcome.ENDED
        assert not ended_while_the_append_was_in_flight
        assert await storage.rooms.turns(cid) == [{"content": "last words"}]

    pg_scenario(pg_cluster, run, records, body)


def test_an_append_waits_for_the_end_in_flight_and_is_refused(pg_cluster, run, records) -> None:
    """A delete has locked the conversation and is about to end it; an append must wait, then find it gone."""

    async def body(storage: Storage, holder: asyncpg.Connection, cid: str) -> None:
        pause = holder.transaction()
        await pause.start()
        # The delete locks the conversation's row, then its end statement (which queues webhooks) waits.
        await holder.execute("LOCK TABLE webhook_outbox IN SHARE MODE")
        delete = asyncio.ensure_future(storage.delete_conversation("a1", cid, hard=False, reason=END, at=AT))
        await until_waiting(holder, 1, delete)
        assert not delete.done()
        append = asyncio.ensure_future(storage.rooms.append_turn(cid, {"content": "too late"}))
        await until_waiting(holder, 2, append)
        appended_while_the_end_was_in_flight = append.done()
        await pause.rollback()
        assert await delete is True
        assert await append is False
        assert not appended_while_the_end_was_in_flight
        assert await storage.rooms.turns(cid) == []

    pg_scenario(pg_cluster, run, records, body)
