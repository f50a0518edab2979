"""Live rooms' storage on every backend: transcripts, which rooms are closed, the host lease, shared secrets.

Two storages on one database stand for two processes (tests/storage/test_storage_end_elsewhere.py).
The races between an append and an end on PostgreSQL are in test_storage_rooms_races.py.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from typing import Any

import asyncpg
from backends import Backend, SQLiteBackend

from palaver.storage import Storage
from palaver.storage.resources import dump

AT = "2026-03-01T10:00:00.000000Z"
ROOM_DELETED = "daily_room_has_been_deleted"

ENTRIES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a test persona.", "timestamp": "2026-03-01T10:00:00.000Z"},
    {
        "role": "user",
        "content": 'Grüße, 日本語, emoji 🎙️, Ελληνικά, עברית, a "quote", a \\ and a\nnewline, \u0000 and \t',
        "timestamp": "2026-03-01T10:00:01.250Z",
        "seconds_from_start": 1.25,
        "duration": 0.1 + 0.2,  # a float whose shortest repr is long
    },
    {
        "zeta": 1,  # keys out of alphabetical order: kept as given
        "role": "replica",
        "content": "",
        "inference_id": "inf-1",
        "nested": {"b": [1, 2.5, None, True, False, {"deep": ["x", {"y": 10**20}]}], "a": {}},
        "seconds_from_start": 1e-7,
    },
]


async def raw(backend: Backend, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows read around the interface (`?` placeholders, rewritten for PostgreSQL)."""
    if isinstance(backend, SQLiteBackend):
        conn = sqlite3.connect(backend.path, timeout=10)
        try:
            return conn.execute(query, args).fetchall()
        finally:
            conn.close()
    numbers = itertools.count(1)
    pg = await asyncpg.connect(backend.url)
    try:
        rows = await pg.fetch(re.sub(r"\?", lambda _: f"${next(numbers)}", query), *args)
    finally:
        await pg.close()
    return [tuple(row) for row in rows]


async def new_conversations(storage: Storage, records, n: int, **changes: Any) -> list[str]:
    made = [records.conversation("a1", **changes) for _ in range(n)]
    await asyncio.gather(*(storage.insert_conversation(c) for c in made))
    return [c.conversation_id for c in made]


def test_turns_come_back_in_order_byte_for_byte(storage: Storage, backend: Backend, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        cid, other = await new_conversations(storage, records, 2)
        assert await storage.rooms.turns(cid) == []
        for entry in ENTRIES:
            assert await storage.rooms.append_turn(cid, entry) is True
        assert await storage.rooms.append_turn(other, {"role": "user", "content": "elsewhere"}) is True
        turns = await storage.rooms.turns(cid)
        assert turns == ENTRIES
        assert [dump(t) for t in turns] == [dump(e) for e in ENTRIES]  # key order too
        query = "SELECT idx, entry FROM conversation_turns WHERE conversation_id = ? ORDER BY idx"
        stored = await raw(backend, query, cid)
        assert stored == [(i, dump(e)) for i, e in enumerate(ENTRIES)]  # compact JSON, numbered from 0
        assert await storage.rooms.turns(other) == [{"role": "user", "content": "elsewhere"}]
        assert await storage.rooms.turns("c-unknown") == []

    run(scenario())


def test_a_lone_surrogate_is_kept_as_sent(storage: Storage, run, records) -> None:
    """JSON text may carry `\\ud800` (a participant's client can send it); UTF-8 cannot hold it."""
    odd = {"role": "user", "content": "broken \ud800 pair, then é"}

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        (cid,) = await new_conversations(storage, records, 1)
        assert await storage.rooms.append_turn(cid, odd) is True
        assert await storage.rooms.append_turn(cid, ENTRIES[1]) is True
        assert await storage.rooms.turns(cid) == [odd, ENTRIES[1]]

    run(scenario())


def test_appends_are_refused_unless_the_conversation_is_active(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        ended, soft, hard = await new_conversations(storage, records, 3)
        (test_mode,) = await new_conversations(storage, records, 1, test_mode=True)
        for cid in (ended, soft, hard):
            assert await storage.rooms.append_turn(cid, ENTRIES[0])
        await storage.end_conversation("a1", ended, "end_conversation_endpoint_hit", AT)
        await storage.delete_conversation("a1", soft, hard=False, reason=ROOM_DELETED, at=AT)
        await storage.delete_conversation("a1", hard, hard=True, reason=ROOM_DELETED, at=AT)
        for cid in (ended, soft, hard, test_mode, "c-unknown"):
            assert await storage.rooms.append_turn(cid, ENTRIES[1]) is False, cid
        assert await storage.rooms.turns(ended) == [ENTRIES[0]]  # nothing added after the end
        assert await storage.rooms.turns(soft) == [ENTRIES[0]]  # a soft delete keeps the transcript
        assert await storage.rooms.turns(hard) == []
        assert await storage.rooms.turns(test_mode) == []

    run(scenario())


def test_concurrent_appends_from_two_processes_are_numbered_without_gaps(
    storage: Storage, backend: Backend, run, records
) -> None:
    """Every append is kept, each gets the next index, and one writer's turns stay in its order."""
    other = backend.open()

    async def writer(name: str, store: Storage, cid: str) -> list[bool]:
        return [await store.rooms.append_turn(cid, {"writer": name, "n": n}) for n in range(15)]

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        (cid,) = await new_conversations(storage, records, 1)
        results = await asyncio.gather(*(writer(f"w{i}", (storage, other)[i % 2], cid) for i in range(4)))
        assert all(all(r) for r in results)
        stored = await raw(backend, "SELECT idx FROM conversation_turns WHERE conversation_id = ? ORDER BY idx", cid)
        assert [idx for (idx,) in stored] == list(range(60))
        turns = await storage.rooms.turns(cid)
        for i in range(4):
            assert [t["n"] for t in turns if t["writer"] == f"w{i}"] == list(range(15))

    try:
        run(scenario())
    finally:
        run(other.close())


def test_closed_among_names_ended_deleted_and_unknown_conversations(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        active, ended, soft, hard = await new_conversations(storage, records, 4)
        (test_mode,) = await new_conversations(storage, records, 1, test_mode=True)
        await storage.end_conversation("a1", ended, "end_conversation_endpoint_hit", AT)
        await storage.delete_conversation("a1", soft, hard=False, reason=ROOM_DELETED, at=AT)
        await storage.delete_conversation("a1", hard, hard=True, reason=ROOM_DELETED, at=AT)
        ids = [active, ended, soft, hard, test_mode, "c-unknown", active, "c-unknown"]
        assert await storage.rooms.closed_among(ids) == {ended, soft, hard, test_mode, "c-unknown"}
        assert await storage.rooms.closed_among([active]) == set()
        assert await storage.rooms.closed_among([]) == set()

    run(scenario())


def test_closed_among_three_thousand_rooms(storage: Storage, run, records) -> None:
    """What every process with open rooms polls: thousands of ids in one call."""

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        ids = await new_conversations(storage, records, 1500)
        ended, soft = ids[1000:1250], ids[1250:]
        await asyncio.gather(*(storage.end_conversation("a1", c, "end_conversation_endpoint_hit", AT) for c in ended))
        for cid in soft:
            await storage.delete_conversation("a1", cid, hard=False, reason=ROOM_DELETED, at=AT)
        unknown = [f"c-unknown-{n}" for n in range(1500)]
        asked = [*ids, *unknown]
        assert len(asked) == 3000
        assert await storage.rooms.closed_among(asked) == {*ended, *soft, *unknown}
        assert await storage.rooms.closed_among(ids[:1000]) == set()

    run(scenario())


def test_the_host_lease(storage: Storage, run) -> None:
    rooms = storage.rooms

    async def scenario() -> None:
        assert await rooms.claim_host("c1", "A", 100.0, 10.0) is True  # free: taken
        assert await rooms.claim_host("c1", "B", 105.0, 10.0) is False  # A holds it until 110
        assert await rooms.claim_host("c1", "A", 108.0, 10.0) is True  # renewed until 118
        assert await rooms.claim_host("c1", "B", 115.0, 10.0) is False
        assert await rooms.claim_host("c2", "B", 115.0, 10.0) is True  # another room is another lease
        assert await rooms.claim_host("c1", "B", 118.0, 10.0) is True  # lapsed: taken over, until 128
        assert await rooms.claim_host("c1", "A", 119.0, 10.0) is False  # the old holder has lost it
        await rooms.release_host("c1", "A")  # not A's: nothing happens
        assert await rooms.claim_host("c1", "A", 120.0, 10.0) is False
        await rooms.release_host("c1", "B")  # B gives it up: free at once
        assert await rooms.claim_host("c1", "A", 120.0, 10.0) is True
        assert await rooms.claim_host("c2", "A", 120.0, 10.0) is False  # B still holds c2
        await rooms.release_host("c-never-held", "A")

    run(scenario())


def test_many_leases_in_one_claim(storage: Storage, backend: Backend, run) -> None:
    """A process renews all its rooms at once: it gets back the ones it holds, and two processes renewing
    overlapping rooms in opposite orders neither deadlock nor both win a room."""
    other = backend.open()

    async def scenario() -> None:
        assert await storage.rooms.claim_hosts([], "A", 100.0, 10.0) == set()
        assert await storage.rooms.claim_host("c2", "B", 100.0, 10.0) is True
        assert await storage.rooms.claim_hosts(["c1", "c2", "c3", "c1"], "A", 101.0, 10.0) == {"c1", "c3"}
        assert await storage.rooms.claim_hosts(["c3", "c1"], "A", 109.0, 10.0) == {"c1", "c3"}  # renewed: 119
        assert await storage.rooms.claim_hosts(["c1", "c2", "c3"], "B", 112.0, 10.0) == {
            "c2"
        }  # its own (renewed, though lapsed); A holds c1 and c3 until 119
        ids = [f"r{n:03}" for n in range(200)]
        for _ in range(5):
            a, b = await asyncio.gather(
                storage.rooms.claim_hosts(ids, "P", 200.0, 10.0), other.rooms.claim_hosts(ids[::-1], "Q", 200.0, 10.0)
            )
            assert not a & b and a | b == set(ids)

    try:
        run(scenario())
    finally:
        run(other.close())


def test_one_host_wins_a_contested_room(storage: Storage, backend: Backend, run) -> None:
    other = backend.open()

    async def scenario() -> None:
        claims = [(storage, other)[n % 2].rooms.claim_host("c1", f"host-{n}", 100.0, 30.0) for n in range(12)]
        won = [n for n, ok in enumerate(await asyncio.gather(*claims)) if ok]
        assert len(won) == 1
        winner = f"host-{won[0]}"
        assert await other.rooms.claim_host("c1", winner, 101.0, 30.0) is True  # the winner holds it

    try:
        run(scenario())
    finally:
        run(other.close())


def test_shared_secrets_are_made_once_for_every_process(storage: Storage, backend: Backend, run) -> None:
    other = backend.open()
    third = backend.open()

    async def scenario() -> None:
        asked = [(storage, other)[n % 2].rooms.shared_secret("meeting-tokens") for n in range(10)]
        values = await asyncio.gather(*asked, other.rooms.shared_secret("another"))
        first = values[0]
        assert isinstance(first, bytes) and len(first) == 32
        assert all(v == first for v in values[:10])
        assert values[10] != first and len(values[10]) == 32
        assert await third.rooms.shared_secret("meeting-tokens") == first  # a process started later
        assert await storage.rooms.shared_secret("meeting-tokens") == first

    try:
        run(scenario())
    finally:
        run(other.close())
        run(third.close())


def test_a_hard_delete_takes_the_transcript_and_the_host_with_it(
    storage: Storage, backend: Backend, run, records
) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        hard, soft, neighbour = await new_conversations(storage, records, 3)
        for cid in (hard, soft, neighbour):
            assert await storage.rooms.append_turn(cid, ENTRIES[0])
            assert await storage.rooms.append_turn(cid, ENTRIES[1])
            assert await storage.rooms.claim_host(cid, "A", 100.0, 1e9)
        assert await storage.delete_conversation("a1", hard, hard=True, reason=ROOM_DELETED, at=AT)
        assert await storage.delete_conversation("a1", soft, hard=False, reason=ROOM_DELETED, at=AT)
        for table in ("conversation_turns", "room_hosts"):
            counts = await raw(
                backend,
                f"SELECT conversation_id, count(*) FROM {table} GROUP BY conversation_id ORDER BY conversation_id",
            )
            assert dict(counts) == {soft: 2 if table == "conversation_turns" else 1,
                                    neighbour: 2 if table == "conversation_turns" else 1}  # fmt: skip
        assert await storage.rooms.turns(soft) == ENTRIES[:2]
        assert await storage.rooms.claim_host(soft, "B", 200.0, 10.0) is False  # soft delete: still A's
        assert await storage.rooms.claim_host(hard, "B", 200.0, 10.0) is True  # gone with the conversation

    run(scenario())
