"""The room bus on PostgreSQL: two buses on one database stand for two processes.

Each hears the other's messages and its own, for the rooms it has subscribers in, in one order;
large messages travel through `room_messages`; a killed LISTEN connection is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from backends import PostgresBackend

from palaver.service.rooms.bus import LocalBus, open_room_bus
from palaver.storage.postgres import PostgresStorage
from palaver.storage.postgres_bus import MAX_NOTIFY_BYTES, PostgresRoomBus

Body = Callable[[list[PostgresRoomBus], asyncpg.Connection], Awaitable[None]]


class Inbox:
    """What each handler was given, by name."""

    def __init__(self) -> None:
        self.got: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def handler(self, name: str) -> Callable[[dict[str, Any]], None]:
        return self.got[name].append

    async def until(self, name: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.got[name]) < count:
            assert time.monotonic() < deadline, f"{name}: {len(self.got[name])} of {count} messages arrived"
            await asyncio.sleep(0.005)
        return self.got[name]


def with_buses(pg_cluster, run, body: Body, count: int = 2) -> None:
    """Run `body` with `count` started buses on a new migrated database, and an admin connection."""
    database = PostgresBackend(pg_cluster, prefix="bus")

    async def scenario() -> None:
        storage = PostgresStorage(database.url)
        await storage.migrate()
        await storage.close()
        buses = [PostgresRoomBus(database.url) for _ in range(count)]
        admin = await asyncpg.connect(database.url)
        try:
            for bus in buses:
                await bus.start()
            await body(buses, admin)
        finally:
            for bus in buses:
                await bus.close()
            await admin.close()

    try:
        run(scenario())
    finally:
        database.drop()


def test_two_processes_hear_each_other_in_one_order(pg_cluster, run) -> None:
    inbox = Inbox()

    async def body(buses: list[PostgresRoomBus], admin: asyncpg.Connection) -> None:
        a, b = buses
        a.subscribe("r1", inbox.handler("a/r1"))
        b.subscribe("r1", inbox.handler("b/r1"))
        b.subscribe("r2", inbox.handler("b/r2"))

        async def talk(bus: PostgresRoomBus, name: str) -> None:
            for n in range(100):
                await bus.publish("r1", {"from": name, "n": n, "text": "héllo ☃"})
                if n % 10 == 0:
                    await bus.publish("r2", {"from": name, "n": n})
                    await bus.publish("r-nobody", {"from": name, "n": n})

        await asyncio.gather(talk(a, "a"), talk(b, "b"))
        got_a, got_b = await inbox.until("a/r1", 200), await inbox.until("b/r1", 200)
        assert got_a == got_b  # the same order in both processes
        for name in ("a", "b"):
            assert [m["n"] for m in got_a if m["from"] == name] == list(range(100))  # each in publish order
        assert sorted((m["from"], m["n"]) for m in await inbox.until("b/r2", 20)) == sorted(
            (name, n) for name in "ab" for n in range(0, 100, 10)
        )
        await a.publish("r1", {"last": True})
        await inbox.until("a/r1", 201)
        await inbox.until("b/r1", 201)
        assert "a/r2" not in inbox.got and len(inbox.got["b/r2"]) == 20  # r2 only where subscribed

    with_buses(pg_cluster, run, body)


def test_publishes_not_awaited_one_by_one_keep_their_call_order(pg_cluster, run) -> None:
    """Group-committed publishes: in the order called, and identical messages each delivered."""
    inbox = Inbox()

    async def body(buses: list[PostgresRoomBus], admin: asyncpg.Connection) -> None:
        a, b = buses
        b.subscribe("r1", inbox.handler("b"))
        same = {"type": "conversation.user.started_speaking"}
        calls = [a.publish("r1", {"n": n}) for n in range(300)] + [a.publish("r1", same) for _ in range(3)]
        calls += [b.publish("r1", {"n": n}) for n in range(300, 310)]
        await asyncio.gather(*calls)
        got = await inbox.until("b", 313)
        from_a = [m for m in got if m.get("n", 0) < 300]
        assert from_a == [{"n": n} for n in range(300)] + [same] * 3  # identical ones not collapsed
        assert [m for m in got if m.get("n", 0) >= 300] == [{"n": n} for n in range(300, 310)]

    with_buses(pg_cluster, run, body)


def test_large_messages_travel_through_the_table_in_their_place(pg_cluster, run) -> None:
    inbox = Inbox()
    big = {"type": "conversation.utterance", "text": "".join(chr(0x61 + n % 26) for n in range(70 * 1024))}
    wide = {"text": "日" * 3000}  # 3,000 characters, 9,000 bytes: measured in bytes
    odd = {"text": "broken \ud800 pair"}  # a lone surrogate: sent as a \\u escape

    def sized(total: int) -> dict[str, Any]:
        """A message whose notification payload is exactly `total` bytes."""
        envelope = len('{"c":"r1","m":{"p":""}}')
        return {"p": "x" * (total - envelope)}

    async def body(buses: list[PostgresRoomBus], admin: asyncpg.Connection) -> None:
        a, b = buses
        b.subscribe("r1", inbox.handler("b"))
        a.subscribe("r1", inbox.handler("a"))
        at_limit, over = sized(MAX_NOTIFY_BYTES), sized(MAX_NOTIFY_BYTES + 1)
        expected = [{"n": 1}, big, {"n": 2}, wide, at_limit, over, {"n": 3}, odd]
        await asyncio.gather(*(a.publish("r1", m) for m in expected))
        assert await inbox.until("b", 8) == expected
        assert await inbox.until("a", 8) == expected
        stored = await admin.fetch("SELECT conversation_id, length(body) FROM room_messages ORDER BY id")
        assert [r[0] for r in stored] == ["r1"] * 3  # big, wide and over; at_limit went inline
        assert stored[0][1] > 70 * 1024

    with_buses(pg_cluster, run, body)


def test_large_messages_of_rooms_without_subscribers_are_not_read(pg_cluster, run) -> None:
    inbox = Inbox()

    async def body(buses: list[PostgresRoomBus], admin: asyncpg.Connection) -> None:
        a, b = buses
        b.subscribe("r1", inbox.handler("b"))
        b.subscribe("r2", inbox.handler("b2"))
        read: list[str] = []
        fetch = b._body

        async def counted(room: str, row_id: Any) -> Any:
            read.append(room)
            return await fetch(room, row_id)

        b._body = counted  # type: ignore[method-assign]
        await a.publish("r-elsewhere", {"text": "y" * 20_000})
        await a.publish("r2", {"text": "z" * 20_000})
        await a.publish("r1", {"marker": True})
        await inbox.until("b", 1)
        assert read == ["r2"]

    with_buses(pg_cluster, run, body)


def test_unsubscribe_stops_delivery_and_a_failing_handler_stops_nobody(pg_cluster, run, caplog) -> None:
    inbox = Inbox()

    def failing(message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    async def body(buses: list[PostgresRoomBus], admin: asyncpg.Connection) -> None:
        a, b = buses
        first, second = inbox.handler("first"), inbox.handler("second")
        b.subscribe("r1", failing)
        b.subscribe("r1", first)
        b.subscribe("r1", second)
        b.subscribe("r2", inbox.handler("marker"))
        await a.publish("r1", {"n": 1})
        assert await inbox.until("first", 1) == [{"n": 1}]
        assert await inbox.until("second", 1) == [{"n": 1}]
        b.unsubscribe("r1", first)
        b.unsubscribe("r1", failing)
        await a.publish("r1", {"n": 2})
        assert await inbox.until("second", 2) == [{"n": 1}, {"n": 2}]
        b.unsubscribe("r1", second)
        b.unsubscribe("r1", second)  # twice: harmless
        await a.publish("r1", {"n": 3})
        await a.publish("r2", {"marker": True})
        await inbox.until("marker", 1)  # published after n=3, so n=3 has been handled (or dropped)
        assert inbox.got["first"] == [{"n": 1}]
        assert inbox.got["second"] == [{"n": 1}, {"n": 2}]

    with caplog.at_level(logging.ERROR, logger="palaver.rooms.bus"):
        with_buses(pg_cluster, run, body)
    failures = [r for r in caplog.records if "a handler of room r1 failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_the_bus_listens_again_after_its_connection_is_killed(pg_cluster, run, caplog) -> None:
    inbox = Inbox()
    listeners = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1"

    async def body(buses: list[PostgresRoomBus], admin: asyncpg.Connection) -> None:
        a, b = buses
        b.subscribe("r1", inbox.handler("b"))
        a.subscribe("r1", inbox.handler("a"))
        await a.publish("r1", {"before": True})
        await inbox.until("b", 1)
        before = {r[0] for r in await admin.fetch(listeners, "palaver-rooms")}
        assert len(before) == 2
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM ({listeners}) AS l", "palaver-rooms")
        # Messages published until each bus listens again are lost: probe until one gets through to both.
        deadline = time.monotonic() + 15
        probe = 0
        while not (any("probe" in m for m in inbox.got["b"]) and any("probe" in m for m in inbox.got["a"])):
            assert time.monotonic() < deadline, "the bus did not listen again"
            probe += 1
            await a.publish("r1", {"probe": probe})
            await asyncio.sleep(0.05)
        after = {r[0] for r in await admin.fetch(listeners, "palaver-rooms")}
        assert len(after) == 2 and not after & before  # new connections
        marks = (len(inbox.got["a"]), len(inbox.got["b"]))
        for n in range(20):
            await (a, b)[n % 2].publish("r1", {"after": n})
        for name, mark in zip(("a", "b"), marks, strict=True):
            got = await inbox.until(name, mark + 20)
            assert [m for m in got[mark:] if "probe" not in m] == [{"after": n} for n in range(20)]

    with caplog.at_level(logging.INFO, logger="palaver.rooms.bus"):
        with_buses(pg_cluster, run, body)
    text = caplog.text
    assert text.count("lost the LISTEN connection") == 2 and text.count("listening again") == 2


def test_the_bus_keeps_trying_while_the_database_refuses(pg_cluster, run, caplog, monkeypatch) -> None:
    inbox = Inbox()
    real_connect = asyncpg.connect
    refusals = [3]

    async def refusing(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("server_settings", {}).get("application_name") == "palaver-rooms" and refusals[0]:
            refusals[0] -= 1
            raise ConnectionRefusedError("refused (the test)")
        return await real_connect(*args, **kwargs)

    async def body(buses: list[PostgresRoomBus], admin: asyncpg.Connection) -> None:
        (bus,) = buses
        bus.subscribe("r1", inbox.handler("r1"))
        monkeypatch.setattr(asyncpg, "connect", refusing)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'palaver-rooms'"
        )
        deadline = time.monotonic() + 15
        while not inbox.got["r1"]:
            assert time.monotonic() < deadline, "the bus did not listen again"
            await bus.publish("r1", {"probe": True})
            await asyncio.sleep(0.05)
        assert refusals == [0]

    with caplog.at_level(logging.WARNING, logger="palaver.rooms.bus"):
        with_buses(pg_cluster, run, body, count=1)
    assert caplog.text.count("cannot listen (refused (the test)); trying again in") == 3
    assert "trying again in 0.1 s" in caplog.text and "trying again in 0.4 s" in caplog.text


def test_close_leaves_no_connection_behind(pg_cluster, run) -> None:
    database = PostgresBackend(pg_cluster, prefix="bus")
    others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"

    async def scenario() -> None:
        storage = PostgresStorage(database.url)
        await storage.migrate()
        await storage.close()
        bus = PostgresRoomBus(database.url)
        bus.subscribe("r1", lambda m: None)
        await bus.start()
        await bus.publish("r1", {"n": 1})
        await bus.publish("r1", {"text": "q" * 10_000})
        admin = await asyncpg.connect(database.url)
        try:
            assert await admin.fetchval(others) >= 2  # listening, and publishing
            await bus.close()
            await bus.close()  # twice: harmless
            deadline = time.monotonic() + 5
            while await admin.fetchval(others):
                assert time.monotonic() < deadline, "connections left open"
                await asyncio.sleep(0.02)
            with pytest.raises(RuntimeError):
                await bus.publish("r1", {"n": 2})
        finally:
            await admin.close()

    try:
        run(scenario())
    finally:
        database.drop()


def test_open_room_bus_picks_the_bus_of_the_database(tmp_path) -> None:
    assert isinstance(open_room_bus(f"sqlite:///{tmp_path}/p.db"), LocalBus)
    assert isinstance(open_room_bus("postgresql://palaver@127.0.0.1:5432/palaver"), PostgresRoomBus)
