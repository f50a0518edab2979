"""A failing write must not spoil the writes that run beside it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from palaver.domain.conversation import EndOutcome
from palaver.domain.errors import ConcurrencyLimitReached
from palaver.storage import Storage
from palaver.storage.base import ApiKeyRecord

AT = "2026-03-01T10:00:00.000000Z"


def test_duplicate_id_fails_alone(storage: Storage, backend, run, records) -> None:
    existing = records.conversation("a1")
    duplicate = replace(records.conversation("a1"), conversation_id=existing.conversation_id, conversation_name="dup")
    valid = records.conversation("a1")
    other = records.conversation("a1")

    async def scenario() -> list[object]:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(existing)
        await storage.insert_conversation(other)
        return await asyncio.gather(
            storage.insert_conversation(duplicate),
            storage.insert_conversation(valid),
            storage.end_conversation("a1", other.conversation_id, "r", AT),
            return_exceptions=True,
        )

    dup_result, valid_result, end_result = run(scenario())
    assert isinstance(dup_result, backend.integrity_error)
    assert valid_result is None
    assert end_result is EndOutcome.ENDED
    assert run(storage.get_conversation("a1", valid.conversation_id)) == valid
    assert run(storage.get_conversation("a1", existing.conversation_id)) == existing  # not overwritten
    assert run(storage.get_conversation("a1", other.conversation_id)).status == "ended"


def test_limit_refusal_fails_alone(storage: Storage, run, records) -> None:
    limited = [records.conversation("a1"), records.conversation("a1")]
    free = records.conversation("a2")

    async def scenario() -> list[object]:
        await storage.create_account(records.account("a1", max_concurrent=1))
        await storage.create_account(records.account("a2"))
        return await asyncio.gather(
            storage.insert_conversation(limited[0]),
            storage.insert_conversation(limited[1]),
            storage.insert_conversation(free),
            return_exceptions=True,
        )

    first, second, third = run(scenario())
    assert first is None
    assert isinstance(second, ConcurrencyLimitReached)
    assert third is None
    assert run(storage.get_conversation("a2", free.conversation_id)) == free


def test_a_burst_of_mixed_writes_all_land(storage: Storage, run, records) -> None:
    """Inserts, ends, key writes and deletes issued together each take effect."""
    first = [records.conversation("a1") for _ in range(20)]
    second = [records.conversation("a1") for _ in range(20)]
    key = ApiKeyRecord("k1", "a1", "", "0123456789ab", "a" * 64, AT, None)

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        for conv in first:
            await storage.insert_conversation(conv)
        ops = [storage.insert_conversation(c) for c in second]
        ops += [storage.end_conversation("a1", c.conversation_id, "r", AT) for c in first[:10]]
        ops += [storage.delete_conversation("a1", c.conversation_id, hard=False, reason="r", at=AT) for c in first[10:15]]
        ops.append(storage.add_key(key))
        results = await asyncio.gather(*ops)
        assert results[:20] == [None] * 20
        assert results[20:30] == [EndOutcome.ENDED] * 10
        assert results[30:35] == [True] * 5
        _, total = await storage.list_conversations("a1", status=None, limit=1, offset=0)
        assert total == 40 - 5
        _, ended = await storage.list_conversations("a1", status="ended", limit=1, offset=0)
        assert ended == 10
        assert await storage.find_keys("0123456789ab") == [key]

    run(scenario())
