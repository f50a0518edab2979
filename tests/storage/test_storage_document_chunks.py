"""Documents' chunks on each backend: atomic replace, paging, full-text search ranked by relevance, scoping."""

from __future__ import annotations

from palaver.storage import Storage
from palaver.storage.document_chunks import search_terms

PRICING = [
    "Our pricing has three plans: Starter, Growth and Scale.",
    "The office is open from nine to five on weekdays.",
    "Enterprise pricing includes a dedicated support engineer and custom pricing for large volumes.",
    "Parking is free for visitors.",
]


def test_replace_then_page_in_order(storage: Storage, run, records) -> None:
    chunks = storage.document_chunks

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await chunks.replace("a1", "d1", [f"chunk number {i}" for i in range(7)])
        page, total = await chunks.page("a1", "d1", limit=3, offset=2)
        assert total == 7
        assert [(c.index, c.content) for c in page] == [(2, "chunk number 2"), (3, "chunk number 3"),
                                                        (4, "chunk number 4")]  # fmt: skip
        rest, _ = await chunks.page("a1", "d1", limit=100, offset=5)
        assert [c.index for c in rest] == [5, 6]
        # A second replace leaves only the new chunks, the old ones gone from the index too.
        await chunks.replace("a1", "d1", ["fresh text about volcanoes"])
        page, total = await chunks.page("a1", "d1", limit=10, offset=0)
        assert total == 1 and page[0].content == "fresh text about volcanoes"
        assert await chunks.search("a1", "number") == []
        assert [h.index for h in await chunks.search("a1", "volcanoes")] == [0]

    run(scenario())


def test_search_ranks_the_most_relevant_chunk_first(storage: Storage, run, records) -> None:
    chunks = storage.document_chunks

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await chunks.replace("a1", "d1", PRICING)
        await chunks.replace("a1", "d2", ["Nothing here mentions money.", "A note on pricing: ask sales."])
        hits = await chunks.search("a1", "enterprise pricing", limit=10)
        assert [(h.document_id, h.index) for h in hits][0] == ("d1", 2)  # both words, pricing three times
        assert {(h.document_id, h.index) for h in hits} == {("d1", 0), ("d1", 2), ("d2", 1)}
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
        assert all(h.document_id in ("d1", "d2") and h.content for h in hits)
        # Stemming: "plan" finds "plans"; the limit is honoured.
        assert [h.index for h in await chunks.search("a1", "plan")] == [0]
        assert len(await chunks.search("a1", "pricing", limit=1)) == 1

    run(scenario())


def test_search_restricted_to_documents_and_scoped_to_the_account(storage: Storage, run, records) -> None:
    chunks = storage.document_chunks

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await chunks.replace("a1", "d1", PRICING)
        await chunks.replace("a1", "d2", ["Pricing for the other product."])
        await chunks.replace("a2", "d3", ["Secret pricing of another account."])
        assert {h.document_id for h in await chunks.search("a1", "pricing")} == {"d1", "d2"}
        assert {h.document_id for h in await chunks.search("a1", "pricing", document_ids=["d2"])} == {"d2"}
        assert await chunks.search("a1", "pricing", document_ids=[]) == []
        assert await chunks.search("a1", "pricing", document_ids=["d3"]) == []  # another account's
        assert [h.document_id for h in await chunks.search("a2", "pricing")] == ["d3"]
        assert (await chunks.page("a2", "d1", limit=10, offset=0)) == ([], 0)
        assert await chunks.delete("a2", "d1") == 0  # not a2's: nothing deleted
        assert await chunks.delete("a1", "d1") == len(PRICING)
        assert {h.document_id for h in await chunks.search("a1", "pricing")} == {"d2"}

    run(scenario())


def test_queries_are_words_never_syntax(storage: Storage, run, records) -> None:
    chunks = storage.document_chunks

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await chunks.replace("a1", "d1", PRICING)
        for query in ['"pricing', "pricing AND (", "NEAR(pricing", "pricing & !", "pricing:*", "-pricing", "p'ricing"]:
            hits = await chunks.search("a1", query)
            assert isinstance(hits, list), query
        assert await chunks.search("a1", "   ") == []
        assert await chunks.search("a1", "?!") == []
        assert [h.index for h in await chunks.search("a1", 'visitors" OR "x')][0] == 3

    run(scenario())


def test_search_terms() -> None:
    assert search_terms("What's the PRICING, pricing?") == ["what", "s", "the", "pricing"]
    assert search_terms("a_b c-d") == ["a", "b", "c", "d"]
    assert len(search_terms(" ".join(f"w{i}" for i in range(100)))) == 32
