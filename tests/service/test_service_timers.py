"""Timers through the service layer, on real storage of each backend, driven by a manual clock.

Minutes of lifecycle run in milliseconds: nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from backends import Backend, SQLiteBackend

from palaver.domain.clock import ManualClock, iso_timestamp
from palaver.domain.conversation import EndOutcome
from palaver.domain.errors import ConcurrencyLimitReached
from palaver.domain.timers import TimerSettings
from palaver.service.conversations import ConversationService, CreateConversation
from palaver.service.keys import issue_key
from palaver.service.timers import TimerService
from palaver.storage import open_storage

T = TypeVar("T")


class World:
    """Storage, services and a clock on one event loop; `reopen` simulates a restart."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self._open()
        self.account = self.run(issue_key(self.storage, self.clock, max_concurrent=5)).account_id

    def _open(self) -> None:
        self.storage = open_storage(self.url)
        self.run(self.storage.migrate())
        self.service = ConversationService(self.storage, self.clock, "http://palaver.test")
        self.timers = TimerService(self.storage, self.clock)

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await awaitable

        return self.loop.run_until_complete(wrap())

    def reopen(self) -> None:
        self.run(self.storage.close())
        self._open()

    def create(self, **timers: int) -> str:
        spec = CreateConversation(replica_id="r90bbd427f71", timers=TimerSettings(**timers))
        return self.run(self.service.create(self.account, spec)).conversation_id

    def view(self, cid: str) -> dict[str, Any]:
        record = self.run(self.service.get(self.account, cid, verbose=True))
        return {"status": record.record.status, "reason": record.record.shutdown_reason, "events": record.events}

    def close(self) -> None:
        self.run(self.storage.close())
        self.loop.close()


@pytest.fixture
def world(backend: Backend) -> Iterator[World]:
    w = World(backend.url)
    yield w
    w.close()


def shutdowns(view: dict[str, Any]) -> list[str]:
    return [e["properties"]["shutdown_reason"] for e in view["events"] if e["event_type"] == "system.shutdown"]


def test_max_call_duration_ends_with_its_reason(world: World) -> None:
    cid = world.create(max_call_duration=120)
    assert world.run(world.service.participant_joined(cid))
    world.clock.advance(119)
    assert world.run(world.timers.fire_due()) == []
    world.clock.advance(1)
    assert world.run(world.timers.fire_due()) == [(cid, world.account, "max_call_duration reached")]
    view = world.view(cid)
    assert view["status"] == "ended" and shutdowns(view) == ["max_call_duration reached"]
    assert world.run(world.timers.fire_due()) == []  # never twice


def test_absent_timeout_fires_only_if_nobody_joined(world: World) -> None:
    absent = world.create(participant_absent_timeout=30)
    joined = world.create(participant_absent_timeout=30)
    world.run(world.service.participant_joined(joined))
    world.clock.advance(30)
    fired = world.run(world.timers.fire_due())
    assert fired == [(absent, world.account, "participant_absent_timeout reached")]
    assert world.view(joined)["status"] == "active"


def test_left_timeout_counts_from_the_last_leave(world: World) -> None:
    cid = world.create(participant_left_timeout=10)
    world.run(world.service.participant_joined(cid))
    world.run(world.service.participant_joined(cid))
    world.clock.advance(100)
    world.run(world.service.participant_left(cid))
    world.clock.advance(50)
    assert world.run(world.timers.fire_due()) == []  # one participant still there
    world.run(world.service.participant_left(cid))
    world.clock.advance(9)
    assert world.run(world.timers.fire_due()) == []
    world.clock.advance(1)
    assert world.run(world.timers.fire_due()) == [(cid, world.account, "participant_left_timeout reached")]


def test_default_left_timeout_is_immediate(world: World) -> None:
    cid = world.create()
    world.run(world.service.participant_joined(cid))
    world.run(world.service.participant_left(cid))
    assert world.run(world.timers.fire_due()) == [(cid, world.account, "participant_left_timeout reached")]


def test_a_rejoin_cancels_the_left_timeout(world: World) -> None:
    cid = world.create(participant_left_timeout=10)
    world.run(world.service.participant_joined(cid))
    world.run(world.service.participant_left(cid))
    world.clock.advance(5)
    world.run(world.service.participant_joined(cid))
    world.clock.advance(60)
    assert world.run(world.timers.fire_due()) == []


def test_a_deadline_passed_while_down_fires_at_start_once(world: World) -> None:
    cid = world.create(max_call_duration=60)
    world.run(world.service.participant_joined(cid))
    world.reopen()  # the "server" restarts...
    world.clock.advance(3600)  # ...long after the deadline
    assert world.run(world.timers.fire_due()) == [(cid, world.account, "max_call_duration reached")]
    world.reopen()
    assert world.run(world.timers.fire_due()) == []
    assert shutdowns(world.view(cid)) == ["max_call_duration reached"]


def test_timer_and_end_endpoint_race_through_one_transition(world: World) -> None:
    cids = [world.create(participant_absent_timeout=10) for _ in range(5)]
    world.clock.advance(10)

    async def race() -> tuple[list[EndOutcome], list[tuple[str, str, str]]]:
        ends = [world.service.end(world.account, cid) for cid in cids for _ in range(3)]
        results = await asyncio.gather(*ends[:7], world.timers.fire_due(), *ends[7:])
        outcomes = [r for r in results if isinstance(r, EndOutcome)]
        fired = next(r for r in results if isinstance(r, list))
        return outcomes, fired

    outcomes, fired = world.run(race())
    fired_ids = {cid for cid, _, _ in fired}
    for cid in cids:
        view = world.view(cid)
        assert view["status"] == "ended"
        assert len(shutdowns(view)) == 1
        expected = "participant_absent_timeout reached" if cid in fired_ids else "end_conversation_endpoint_hit"
        assert view["reason"] == expected
    assert outcomes.count(EndOutcome.ENDED) == len(cids) - len(fired_ids)


def test_a_timer_frees_the_concurrency_slot(world: World) -> None:
    cids = [world.create(max_call_duration=30) for _ in range(5)]
    with pytest.raises(ConcurrencyLimitReached):
        world.create()
    world.clock.advance(30)
    assert len(world.run(world.timers.fire_due())) == len(cids)
    world.create()  # a slot is free again


def test_presence_on_an_ended_conversation_is_refused(world: World) -> None:
    cid = world.create()
    world.run(world.service.end(world.account, cid))
    assert world.run(world.service.participant_joined(cid)) is False


def test_deadlines_of_conversations_ended_otherwise_never_fire_and_are_cleared(world: World, backend: Backend) -> None:
    ended = [world.create(max_call_duration=30 + i) for i in range(4)]
    for cid in ended:
        world.run(world.service.end(world.account, cid))
    later = world.create(max_call_duration=40)  # due after all of them
    world.clock.advance(41)
    # More passed deadlines of ended conversations than one call looks at: one tick still gets past them.
    timers = TimerService(world.storage, world.clock, batch=2)
    assert world.run(timers.fire_due()) == [(later, world.account, "max_call_duration reached")]
    for cid in [*ended, later]:
        row = backend.raw_conversation(cid)
        assert row is not None and row["deadline"] is None
    assert all(shutdowns(world.view(cid)) == ["end_conversation_endpoint_hit"] for cid in ended)
    assert world.run(timers.fire_due()) == []


def test_sqlite_looks_at_a_bounded_window_of_due_deadlines_per_call(tmp_path: Path) -> None:
    """SQLite leaves an ended conversation's deadline for the timer to clear (PostgreSQL clears
    it in the end itself). After a long downtime a million may be due at once: each call clears
    at most `limit` of them, oldest first, in a transaction of its own, and says whether to go on."""
    backend = SQLiteBackend(tmp_path / "s.db")
    world = World(backend.url)
    try:
        ended = [world.create(max_call_duration=30 + i) for i in range(5)]
        for cid in ended:
            world.run(world.service.end(world.account, cid))
        active = world.create(max_call_duration=60)
        world.clock.advance(3600)
        now = world.clock.now()

        def deadlines_left() -> int:
            return sum((backend.raw_conversation(cid) or {})["deadline"] is not None for cid in [*ended, active])

        calls = []
        while True:
            done = world.run(world.storage.fire_due(now, iso_timestamp(now), 2))
            calls.append((len(done.fired), done.more, deadlines_left()))
            if not done.more:
                break
        assert calls == [(0, True, 4), (0, True, 2), (1, True, 0), (0, False, 0)]
        assert (backend.raw_conversation(ended[0]) or {})["deadline"] is None
        assert world.view(active)["reason"] == "max_call_duration reached"
    finally:
        world.close()
