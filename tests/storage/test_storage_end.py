"""The active -> ended transition in storage: outcomes, recorded facts, races and batches."""

from __future__ import annotations

import asyncio

import pytest

from palaver.domain.conversation import EndOutcome
from palaver.storage import Storage

AT = "2026-03-01T10:00:00.000000Z"
LATER = "2026-03-01T11:00:00.000000Z"


def test_end_records_status_reason_and_times(storage: Storage, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.end_conversation("a1", conv.conversation_id, "end_conversation_endpoint_hit", AT) \
            is EndOutcome.ENDED
        got = await storage.get_conversation("a1", conv.conversation_id)
        assert got.status == "ended"
        assert got.shutdown_reason == "end_conversation_endpoint_hit"
        assert got.ended_at == AT
        assert got.updated_at == AT
        assert got.created_at == conv.created_at
        assert got.request == conv.request and got.conversation_name == conv.conversation_name

    run(scenario())


def test_second_end_is_already_ended_and_changes_nothing(storage: Storage, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.end_conversation("a1", conv.conversation_id, "first", AT) is EndOutcome.ENDED
        assert await storage.end_conversation("a1", conv.conversation_id, "second", LATER) is EndOutcome.ALREADY_ENDED
        got = await storage.get_conversation("a1", conv.conversation_id)
        assert (got.shutdown_reason, got.ended_at, got.updated_at) == ("first", AT, AT)

    run(scenario())


def test_test_mode_conversation_is_already_ended(storage: Storage, run, records) -> None:
    conv = records.conversation("a1", test_mode=True)

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        assert await storage.end_conversation("a1", conv.conversation_id, "r", AT) is EndOutcome.ALREADY_ENDED
        assert await storage.get_conversation("a1", conv.conversation_id) == conv

    run(scenario())


def test_unknown_and_foreign_ends_are_not_found(storage: Storage, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await storage.insert_conversation(conv)
        assert await storage.end_conversation("a1", "c" + "f" * 15, "r", AT) is EndOutcome.NOT_FOUND
        assert await storage.end_conversation("a2", conv.conversation_id, "r", AT) is EndOutcome.NOT_FOUND
        assert await storage.get_conversation("a1", conv.conversation_id) == conv  # untouched

    run(scenario())


def test_exactly_one_of_100_concurrent_ends_wins(storage: Storage, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> list[EndOutcome]:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        return await asyncio.gather(
            *(storage.end_conversation("a1", conv.conversation_id, "same-reason", AT) for _ in range(100))
        )

    outcomes = run(scenario())
    assert outcomes.count(EndOutcome.ENDED) == 1
    assert outcomes.count(EndOutcome.ALREADY_ENDED) == 99


def test_stored_end_facts_are_those_of_the_winning_call(storage: Storage, run, records) -> None:
    """The caller told ENDED is the one whose reason and time the row (and so the shutdown event) records."""
    conv = records.conversation("a1")
    reasons = [f"reason-{i:03d}" for i in range(100)]
    times = [f"2026-03-01T10:00:00.{i:06d}Z" for i in range(100)]

    async def scenario() -> list[EndOutcome]:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        return await asyncio.gather(
            *(storage.end_conversation("a1", conv.conversation_id, r, t) for r, t in zip(reasons, times))
        )

    outcomes = run(scenario())
    assert outcomes.count(EndOutcome.ENDED) == 1
    winner = outcomes.index(EndOutcome.ENDED)
    got = run(storage.get_conversation("a1", conv.conversation_id))
    assert (got.shutdown_reason, got.ended_at, got.updated_at) == (reasons[winner], times[winner], times[winner])


def test_mixed_batch_of_ends_gets_each_outcome_right(storage: Storage, run, records) -> None:
    """Many conversations, duplicates, foreign accounts, unknown and already-ended ids in one burst."""
    mine = [records.conversation("a1") for _ in range(6)]
    theirs = [records.conversation("a2") for _ in range(2)]
    pre_ended = mine[5]
    unknown = "c" + "e" * 15

    requests: list[tuple[str, str]] = [
        ("a1", mine[0].conversation_id),
        ("a1", mine[0].conversation_id),  # duplicate
        ("a2", mine[1].conversation_id),  # foreign
        ("a1", mine[1].conversation_id),
        ("a1", mine[2].conversation_id),
        ("a1", unknown),
        ("a1", pre_ended.conversation_id),
        ("a1", theirs[0].conversation_id),  # foreign
        ("a2", theirs[0].conversation_id),
        ("a1", mine[3].conversation_id),
        ("a1", mine[3].conversation_id),
        ("a1", mine[3].conversation_id),
        ("a2", mine[3].conversation_id),  # foreign
        ("a2", theirs[1].conversation_id),
        ("nobody", mine[4].conversation_id),  # unknown account
    ]

    async def scenario() -> list[EndOutcome]:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        for conv in [*mine, *theirs]:
            await storage.insert_conversation(conv)
        assert await storage.end_conversation("a1", pre_ended.conversation_id, "before", AT) is EndOutcome.ENDED
        return await asyncio.gather(*(storage.end_conversation(acc, cid, "burst", LATER) for acc, cid in requests))

    outcomes = run(scenario())
    by_target: dict[tuple[str, str], list[EndOutcome]] = {}
    for request, outcome in zip(requests, outcomes):
        by_target.setdefault(request, []).append(outcome)

    def one_winner(acc: str, cid: str) -> None:
        got = by_target[(acc, cid)]
        assert got.count(EndOutcome.ENDED) == 1, (acc, cid, got)
        assert got.count(EndOutcome.ALREADY_ENDED) == len(got) - 1, (acc, cid, got)

    for conv in (mine[0], mine[1], mine[2], mine[3]):
        one_winner("a1", conv.conversation_id)
    for conv in theirs:
        one_winner("a2", conv.conversation_id)
    for foreign in [("a2", mine[1].conversation_id), ("a1", theirs[0].conversation_id),
                    ("a2", mine[3].conversation_id), ("a1", unknown), ("nobody", mine[4].conversation_id)]:
        assert by_target[foreign] == [EndOutcome.NOT_FOUND], foreign
    assert by_target[("a1", pre_ended.conversation_id)] == [EndOutcome.ALREADY_ENDED]

    async def check() -> None:
        for conv in (*mine[:4], *theirs):
            got = await storage.get_conversation(conv.account_id, conv.conversation_id)
            assert (got.status, got.shutdown_reason, got.ended_at) == ("ended", "burst", LATER)
        untouched = await storage.get_conversation("a1", mine[4].conversation_id)
        assert untouched == mine[4]
        earlier = await storage.get_conversation("a1", pre_ended.conversation_id)
        assert (earlier.shutdown_reason, earlier.ended_at) == ("before", AT)

    run(check())
