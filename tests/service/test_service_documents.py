"""Documents through the service layer, on real storage of each backend, with a manual clock.

The processing job runs through the JobRunner one round at a time (`run_due`), fetching from a
local origin (tests/document_origin.py); the recrawl cooldown, the crawl limits, a crash mid-job
and the runner giving up are driven without sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest
from backends import Backend
from document_origin import Origin, serve_origin

from palaver.domain.clock import ManualClock
from palaver.domain.errors import ResourceNotFound, ValidationFailed
from palaver.service.document_processing import JOB_KIND, DocumentProcessor
from palaver.service.documents import DocumentService, RecrawlConflict, TooManyRequests
from palaver.service.jobs import JobRunner
from palaver.service.keys import issue_key

T = TypeVar("T")


class World:
    def __init__(self, backend: Backend, origin: Origin, fetcher: Any = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.origin = origin
        self.clock = ManualClock()
        self.storage = backend.open()
        self.run(self.storage.migrate())
        self.jobs = JobRunner(self.storage.resources, self.clock, lease_s=600, retry_s=30)
        self.service = DocumentService(self.storage.resources, self.storage.document_chunks, self.clock, self.jobs,
                                       allow_private=True)  # fmt: skip
        if fetcher is not None:
            self.service.processor = DocumentProcessor(
                self.service.resources, self.storage.resources, self.storage.document_chunks, self.clock,
                allow_private=True, fetcher=fetcher,
            )  # fmt: skip
        self.jobs.register(JOB_KIND, self.service.job_kind())
        self.account = self.new_account()

    def new_account(self) -> str:
        return self.run(issue_key(self.storage, self.clock)).account_id

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await awaitable

        return self.loop.run_until_complete(wrap())

    def create(self, path: str, **extra: Any) -> dict[str, Any]:
        return self.run(self.service.create(self.account, {"document_url": self.origin.url + path, **extra}))

    def get(self, document_id: str) -> dict[str, Any]:
        return self.run(self.service.get(self.account, document_id))

    def process(self) -> int:
        return self.run(self.jobs.run_due())

    def callbacks(self) -> list[tuple[str, str]]:
        """(key, event_type) of every resource callback queued, in order, each once: the ledger keeps the
        first of an event id and drops a repeat (the job queues `started` again, see document_processing)."""
        changes = self.run(self.storage.read_outbox(0, 1000))
        queued = [(c.conversation_id, json.loads(c.detail)["event_type"]) for c in changes if c.change == "callback"]
        return list(dict.fromkeys(queued))

    def close(self) -> None:
        self.run(self.storage.close())
        self.loop.close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serve_origin() as served:
        yield served


@pytest.fixture
def world(backend: Backend, origin: Origin) -> Iterator[World]:
    w = World(backend, origin)
    yield w
    w.close()


def test_a_text_document_goes_started_processing_ready_and_is_searchable(world: World) -> None:
    created = world.create("/notes.txt", callback_url="https://hooks.example/docs", tags=["secrets"])
    did = created["document_id"]
    assert created["status"] == "started" and world.get(did)["status"] == "started"
    assert world.process() == 1
    ready = world.get(did)
    assert ready["status"] == "ready" and ready["progress"] is None and ready["error_message"] is None
    assert ready["crawl_count"] is None and ready["crawled_urls"] is None  # not a crawl
    chunks, total = world.run(world.service.chunk_page(world.account, did, limit=10, offset=0))
    assert total == 1 and "swordfish" in chunks[0].content
    hits = world.run(world.service.search(world.account, "what is the password?"))
    assert [h.document_id for h in hits] == [did]
    assert world.run(world.service.search(world.account, "password", tags=["other"])) == []
    assert [h.document_id for h in world.run(world.service.search(world.account, "llamas", tags=["secrets"]))] == [did]
    assert world.callbacks() == [(f"{did}-1", "document.started"), (f"{did}-1", "document.processing"),
                                 (f"{did}-1", "document.ready")]  # fmt: skip


def test_failures_are_recorded_with_their_code(world: World) -> None:
    cases = {"/missing.txt": "invalid_file_url", "/empty.txt": "file_empty", "/blank.txt": "file_empty",
             "/photo.png": "file_format_unsupported", "/broken.pdf": "document_processing_failed"}  # fmt: skip
    ids = {path: world.create(path)["document_id"] for path in cases}
    while world.process():
        pass
    for path, code in cases.items():
        got = world.get(ids[path])
        assert (got["status"], got["error_message"]) == ("error", code), path
        assert got["error_details"], path
    assert world.run(world.service.search(world.account, "password")) == []


def test_crawl_then_recrawl_cooldown_and_override(world: World) -> None:
    did = world.create("/site/", crawl={"depth": 1, "max_pages": 10})["document_id"]
    world.process()
    first = world.get(did)
    base = world.origin.url
    assert first["status"] == "ready" and first["crawl_count"] == 1 and first["last_crawled_at"]
    assert first["crawled_urls"] == [f"{base}/site/", f"{base}/site/a", f"{base}/site/b"]  # depth 1: not /site/c
    with pytest.raises(TooManyRequests, match="wait 60 minutes"):
        world.run(world.service.recrawl(world.account, did, {}))
    world.clock.advance(15 * 60)
    with pytest.raises(TooManyRequests, match="^Recrawl cooldown: please wait 45 minutes before recrawling"):
        world.run(world.service.recrawl(world.account, did, {}))
    world.clock.advance(45 * 60)
    again = world.run(world.service.recrawl(world.account, did, {"crawl": {"depth": 2, "max_pages": 10}}))
    assert again["status"] == "recrawling" and again["crawl_config"] == {"depth": 2, "max_pages": 10}
    assert again["crawl_count"] == 1  # counted when the crawl completes
    with pytest.raises(RecrawlConflict, match="current status: recrawling"):
        world.run(world.service.recrawl(world.account, did, {}))
    world.process()
    second = world.get(did)
    assert second["status"] == "ready" and second["crawl_count"] == 2
    assert f"{base}/site/c" in second["crawled_urls"] and len(second["crawled_urls"]) == 4
    assert second["crawl_config"] == {"depth": 1, "max_pages": 10}  # the override was for that run only
    assert [h.document_id for h in world.run(world.service.search(world.account, "shipping rates"))] == [did]


def test_max_pages_bounds_the_crawl(world: World) -> None:
    did = world.create("/site/", crawl={"depth": 5, "max_pages": 2})["document_id"]
    world.process()
    assert len(world.get(did)["crawled_urls"]) == 2


def test_recrawl_rules(world: World) -> None:
    plain = world.create("/notes.txt")["document_id"]
    with pytest.raises(RecrawlConflict, match="current status: started"):
        world.run(world.service.recrawl(world.account, plain, {"crawl": {"depth": 1, "max_pages": 1}}))
    world.process()
    with pytest.raises(ValidationFailed, match="^Document was not created with crawl configuration$"):
        world.run(world.service.recrawl(world.account, plain, {}))
    with pytest.raises(ResourceNotFound):
        world.run(world.service.recrawl(world.new_account(), plain, {}))


def test_crawl_limits(world: World) -> None:
    for _ in range(5):
        world.create("/site/", crawl={"depth": 1, "max_pages": 1})
    with pytest.raises(TooManyRequests, match=r"^Concurrent crawl limit reached \(5\)"):
        world.create("/site/", crawl={"depth": 1, "max_pages": 1})
    world.create("/notes.txt")  # not a crawl: not limited
    while world.process():
        pass
    # 100 crawl documents at most: the 95 more are stored directly, the job's work is not the point.
    for i in range(95):
        body = {"document_id": f"dfill{i}", "document_name": "x", "status": "ready", "crawl_config": {"depth": 1}}
        world.run(world.service.resources.add(world.account, f"dfill{i}", body))
    with pytest.raises(TooManyRequests, match=r"^Crawl document limit reached \(100\)\. Contact support@tavus\.io"):
        world.create("/site/", crawl={"depth": 1, "max_pages": 1})
    world.create("/notes.txt")


def test_a_job_whose_process_died_is_resumed(world: World) -> None:
    did = world.create("/handbook.pdf")["document_id"]
    # Another process claimed the job, marked the document processing, and died.
    claimed = world.run(world.storage.resources.claim_jobs([JOB_KIND], world.clock.now(), 600, 10))
    assert [j.resource_id for j in claimed] == [did]
    world.run(world.service.processor._step(claimed[0], 1, status="processing", progress=40))
    assert world.process() == 0 and world.get(did)["status"] == "processing"
    world.clock.advance(601)
    assert world.process() == 1
    got = world.get(did)
    assert got["status"] == "ready"
    chunks, _ = world.run(world.service.chunk_page(world.account, did, limit=10, offset=0))
    assert "volcanic eruptions" in chunks[0].content
    # Run again after it finished (a crash before the job was marked done): same result, no new event.
    before = world.callbacks()
    world.run(world.service.processor.run(claimed[0]))
    assert world.get(did)["status"] == "ready" and set(world.callbacks()) == set(before)


def test_the_runner_gives_up_and_the_document_says_so(backend: Backend, origin: Origin) -> None:
    async def broken(url: str, timeout: float) -> Any:
        raise RuntimeError("database fell over")

    w = World(backend, origin, fetcher=broken)
    try:
        did = w.create("/notes.txt")["document_id"]
        for _ in range(3):
            w.process()
            w.clock.advance(31)
        got = w.get(did)
        assert got["status"] == "error" and got["error_message"] == "contact_support"
        assert got["error_details"] == "Processing failed repeatedly; the server's log says why"
    finally:
        w.close()


def test_deleted_while_processing_leaves_no_chunks(backend: Backend, origin: Origin) -> None:
    holder: dict[str, Any] = {}

    async def fetch_then_delete(url: str, timeout: float) -> Any:
        from palaver.delivery.fetch import fetch

        fetched = await fetch(url, allow_private=True, max_bytes=1 << 20, timeout=timeout)
        await holder["world"].service.delete(holder["world"].account, holder["did"])
        return fetched

    w = World(backend, origin, fetcher=fetch_then_delete)
    holder["world"] = w
    try:
        holder["did"] = w.create("/notes.txt")["document_id"]
        w.process()
        assert w.run(w.storage.document_chunks.page(w.account, holder["did"], limit=10, offset=0)) == ([], 0)
        with pytest.raises(ResourceNotFound):
            w.get(holder["did"])
    finally:
        w.close()


def test_other_accounts_see_nothing(world: World) -> None:
    did = world.create("/notes.txt", tags=["t"])["document_id"]
    world.process()
    other = world.new_account()
    for call in (world.service.get(other, did), world.service.update(other, did, {"tags": []}),
                 world.service.delete(other, did), world.service.chunk_page(other, did, limit=1, offset=0)):  # fmt: skip
        with pytest.raises(ResourceNotFound) as exc:
            world.run(call)
        assert (exc.value.key, exc.value.message) == ("message", "Document not found")
    assert world.run(world.service.search(other, "password")) == []
    assert world.run(world.service.search(other, "password", document_ids=[did])) == []
    assert world.run(world.service.tags(other, None)) == []
