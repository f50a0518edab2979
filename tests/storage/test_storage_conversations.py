"""Storing and reading conversations: round-trip, account scoping, visibility, listing."""

from __future__ import annotations

import pytest

from palaver.storage import Storage


def test_insert_get_round_trip_keeps_every_field(storage: Storage, run, records) -> None:
    conv = records.conversation(
        "a1",
        conversation_name="Ünïcode ✓ name",
        callback_url="https://hooks.example.com/cb?x=1",
        system_prompt="Line one\nLine two",
        meeting_token="eyJhbGciOiJIUzI1NiJ9.eyJyIjoiYyJ9.c2ln",
        request={
            "replica_id": "r90bbd427f71",
            "properties": {"max_call_duration": 600, "flag": True, "nothing": None, "ratio": 0.5},
            "document_tags": ["a", "b"],
            "conversation_name": "Ünïcode ✓ name",
        },
    )

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        got = await storage.get_conversation("a1", conv.conversation_id)
        assert got == conv
        assert got.ended_at is None and got.shutdown_reason is None
        assert got.test_mode is False

    run(scenario())


def test_test_mode_round_trip(storage: Storage, run, records) -> None:
    conv = records.conversation("a1", test_mode=True)

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.insert_conversation(conv)
        got = await storage.get_conversation("a1", conv.conversation_id)
        assert got == conv
        assert got.test_mode is True and got.status == "ended" and got.ended_at == conv.created_at

    run(scenario())


def test_get_is_scoped_by_account(storage: Storage, run, records) -> None:
    conv = records.conversation("a1")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await storage.insert_conversation(conv)
        assert await storage.get_conversation("a2", conv.conversation_id) is None
        assert await storage.get_conversation("a1", conv.conversation_id) == conv
        assert await storage.get_conversation("a1", "c" + "f" * 15) is None

    run(scenario())


def test_find_conversation_ignores_account_but_hides_deleted(storage: Storage, run, records) -> None:
    kept, gone = records.conversation("a1"), records.conversation("a2")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await storage.insert_conversation(kept)
        await storage.insert_conversation(gone)
        assert await storage.find_conversation(kept.conversation_id) == kept
        assert await storage.find_conversation(gone.conversation_id) == gone
        assert await storage.delete_conversation("a2", gone.conversation_id, hard=False, reason="r", at="t")
        assert await storage.find_conversation(gone.conversation_id) is None
        assert await storage.find_conversation("c" + "f" * 15) is None

    run(scenario())


@pytest.fixture
def listed(storage: Storage, run, records):
    """a1: six conversations (two ended, one test-mode, one soft-deleted); a2: two active."""
    a1 = [records.conversation("a1") for _ in range(3)]
    a1.append(records.conversation("a1", test_mode=True))
    a1 += [records.conversation("a1") for _ in range(2)]
    a2 = [records.conversation("a2"), records.conversation("a2")]

    async def setup() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        for conv in [a1[0], a2[0], *a1[1:], a2[1]]:  # interleaved, each after the previous
            await storage.insert_conversation(conv)
        await storage.end_conversation("a1", a1[1].conversation_id, "r", "2026-02-01T00:00:00.000000Z")
        await storage.end_conversation("a1", a1[4].conversation_id, "r", "2026-02-01T00:00:00.000000Z")
        await storage.delete_conversation("a1", a1[2].conversation_id, hard=False, reason="r", at="t")

    run(setup())
    # newest first, without the deleted one
    visible = [a1[5], a1[4], a1[3], a1[1], a1[0]]
    return storage, visible


def ids(convs) -> list[str]:
    return [c.conversation_id for c in convs]


def test_list_is_newest_first_and_scoped(listed, run) -> None:
    storage, visible = listed
    page, total = run(storage.list_conversations("a1", status=None, limit=100, offset=0))
    assert ids(page) == ids(visible)
    assert total == 5


def test_list_rows_are_whole_records(listed, run) -> None:
    storage, visible = listed
    page, _ = run(storage.list_conversations("a1", status=None, limit=100, offset=0))
    for got in page:
        assert got == run(storage.get_conversation("a1", got.conversation_id))


def test_list_status_filter_and_filtered_total(listed, run) -> None:
    storage, visible = listed
    ended, ended_total = run(storage.list_conversations("a1", status="ended", limit=100, offset=0))
    assert ids(ended) == [visible[1].conversation_id, visible[2].conversation_id, visible[3].conversation_id]
    assert all(c.status == "ended" for c in ended)
    assert ended_total == 3
    active, active_total = run(storage.list_conversations("a1", status="active", limit=100, offset=0))
    assert ids(active) == [visible[0].conversation_id, visible[4].conversation_id]
    assert active_total == 2
    assert run(storage.list_conversations("a1", status="error", limit=100, offset=0)) == ([], 0)


@pytest.mark.parametrize(("limit", "offset"), [(2, 0), (2, 2), (2, 4), (3, 1), (1, 4), (10, 5), (10, 50)])
def test_list_pages_and_total_is_not_the_page_size(listed, run, limit: int, offset: int) -> None:
    storage, visible = listed
    page, total = run(storage.list_conversations("a1", status=None, limit=limit, offset=offset))
    assert ids(page) == ids(visible[offset:offset + limit])
    assert total == 5


@pytest.mark.parametrize(("limit", "offset"), [(1, 0), (1, 1), (1, 2), (10, 0), (10, 1), (10, 5), (0, 0)])
def test_list_active_pages_count_the_active_and_skip_the_rest(listed, run, limit: int, offset: int) -> None:
    """Active ones sit between ended, test-mode and deleted ones; the page and the total are theirs alone
    (SQLite counts them from the account's counter, not from an index: migration 0009)."""
    storage, visible = listed
    active = [visible[0], visible[4]]
    page, total = run(storage.list_conversations("a1", status="active", limit=limit, offset=offset))
    assert ids(page) == ids(active[offset:offset + limit])
    assert total == 2

    async def end_newest() -> None:
        await storage.end_conversation("a1", visible[0].conversation_id, "r", "2026-02-01T00:00:00.000000Z")

    run(end_newest())
    page, total = run(storage.list_conversations("a1", status="active", limit=limit, offset=offset))
    assert ids(page) == ids(active[1:][offset:offset + limit])
    assert total == 1


def test_list_page_with_filter(listed, run) -> None:
    storage, visible = listed
    page, total = run(storage.list_conversations("a1", status="ended", limit=1, offset=1))
    assert ids(page) == [visible[2].conversation_id]
    assert total == 3


def test_list_of_other_account_and_unknown_account(listed, run) -> None:
    storage, _ = listed
    page, total = run(storage.list_conversations("a2", status=None, limit=100, offset=0))
    assert total == 2 and len(page) == 2
    assert all(c.account_id == "a2" for c in page)
    assert run(storage.list_conversations("nobody", status=None, limit=100, offset=0)) == ([], 0)
