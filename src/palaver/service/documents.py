"""Knowledge-base documents: create, read, list, rename and retag, delete, recrawl, chunks, search.

The rules are Tavus's (reference 10): a document starts `started` and a durable
job (service/document_processing.py) takes it through `processing` to `ready`
or `error`; crawl-backed documents are limited per account (100 of them, 5
crawls at a time, answered 429 when exceeded) and may be recrawled once an
hour. An unknown or foreign id is 404 `{"message": "Document not found"}`.

`search` is what a conversation's knowledge retrieval calls: the account's
documents, by relevance, restricted to given ids and tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from palaver.domain import documents as doc
from palaver.domain.clock import Clock
from palaver.domain.errors import PalaverError, ResourceNotFound, ValidationFailed
from palaver.service.document_processing import JOB_KIND, DocumentProcessor
from palaver.service.jobs import JobKind, JobRunner
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.document_chunks import ChunkHit, DocumentChunks, StoredChunk
from palaver.storage.resources import ResourceStore

KIND = "document"
NOT_FOUND = "Document not found"


class TooManyRequests(PalaverError):
    """A document limit (crawl documents, concurrent crawls, recrawl cooldown): 429 `{"error": ...}`."""


class RecrawlConflict(PalaverError):
    """A recrawl of a document that is not `ready` or `error`: 409 `{"error": ...}`."""


def missing() -> ResourceNotFound:
    return ResourceNotFound(NOT_FOUND, key="message")


@dataclass(frozen=True, slots=True)
class DocumentFilter:
    status: str | None = None
    name_or_uuid: str | None = None
    tags: Sequence[str] = ()
    participant_tags: Sequence[str] = ()


class DocumentService:
    def __init__(
        self,
        store: ResourceStore,
        chunks: DocumentChunks,
        clock: Clock,
        jobs: JobRunner,
        *,
        allow_private: bool,
        processor: DocumentProcessor | None = None,
    ) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, missing))
        self.chunks = chunks
        self.clock = clock
        self.jobs = jobs
        self.processor = processor or DocumentProcessor(
            self.resources, store, chunks, clock, allow_private=allow_private
        )

    def job_kind(self) -> JobKind:
        """What the app registers on its job runner under JOB_KIND."""
        return JobKind(self.processor.run, self.processor.give_up)

    # writes -------------------------------------------------------------------------------------

    async def create(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        request = doc.parse_create(body)
        if request.crawl is not None:
            await self._check_crawl_limits(account_id, counting_new=True)
        document_id = doc.new_document_id()
        # The document and its job commit together: a crash leaves neither without the other.
        job = self.jobs.new_job(JOB_KIND, account_id, document_id)
        record = await self.resources.add(account_id, document_id, doc.new_document(document_id, request), job=job)
        # The job queues `started` again before its own callbacks (one delivery: a stable event id).
        await self.processor.notify(account_id, record.body)
        self.jobs.wake()
        return doc.shown(record.body)

    async def update(self, account_id: str, document_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH: `document_name` and/or `tags` (tags replace the old list); nothing else may change."""
        await self.resources.get(account_id, document_id)  # unknown ids first, then the body's errors
        patch = doc.parse_patch(body)

        async def change(current: dict[str, Any]) -> dict[str, Any]:
            if patch.document_name is not None:
                current["document_name"] = patch.document_name
            if patch.tags is not None:
                current["tags"] = patch.tags
            return current

        return doc.shown((await self.resources.change(account_id, document_id, change)).body)

    async def delete(self, account_id: str, document_id: str) -> None:
        """The document, then its chunks (a job still running finds it gone and removes what it wrote)."""
        await self.resources.remove(account_id, document_id)
        await self.chunks.delete(account_id, document_id)

    async def recrawl(self, account_id: str, document_id: str, body: dict[str, Any]) -> dict[str, Any]:
        request = doc.parse_recrawl(body)
        record = await self.resources.get(account_id, document_id)
        if request.crawl is None and not doc.is_crawl(record.body):
            raise ValidationFailed(doc.NOT_CRAWLED_TEXT)
        if record.body["status"] not in doc.DONE:
            raise RecrawlConflict(doc.conflict_text(record.body["status"]))
        minutes = doc.cooldown_minutes(record.body.get("_last_crawl_epoch"), self.clock.now())
        if minutes:
            raise TooManyRequests(doc.cooldown_text(minutes))
        await self._check_crawl_limits(account_id, counting_new=not doc.is_crawl(record.body))

        async def change(current: dict[str, Any]) -> dict[str, Any]:
            if current["status"] not in doc.DONE:  # another recrawl won the race
                raise RecrawlConflict(doc.conflict_text(current["status"]))
            if request.crawl is not None:
                current["_saved_crawl_config"] = current.get("crawl_config")
                current["crawl_config"] = request.crawl.model_dump()
            current["status"] = "recrawling"
            current["progress"] = None
            current["_run"] = current.get("_run", 1) + 1
            return current

        job = self.jobs.new_job(JOB_KIND, account_id, document_id)
        changed = await self.resources.change(account_id, document_id, change, job=job)  # one transaction
        await self.processor.notify(account_id, changed.body)  # before the job's own callbacks
        self.jobs.wake()
        return doc.shown(changed.body)

    async def _check_crawl_limits(self, account_id: str, *, counting_new: bool) -> None:
        """100 crawl documents and 5 crawls at a time per account.

        Checked before the write, so two requests at the same instant can both pass:
        a limit against overuse, not an exact quota.
        """
        crawls = [r.body for r in await self.resources.list(account_id) if doc.is_crawl(r.body)]
        if counting_new and len(crawls) >= doc.MAX_CRAWL_DOCUMENTS:
            raise TooManyRequests(doc.CRAWL_LIMIT_TEXT)
        if sum(1 for body in crawls if body["status"] in doc.WORKING) >= doc.MAX_CONCURRENT_CRAWLS:
            raise TooManyRequests(doc.CONCURRENT_CRAWLS_TEXT)

    # reads --------------------------------------------------------------------------------------

    async def get(self, account_id: str, document_id: str) -> dict[str, Any]:
        return doc.shown((await self.resources.get(account_id, document_id)).body)

    async def list(self, account_id: str, where: DocumentFilter, *, newest_first: bool) -> list[dict[str, Any]]:
        bodies = [r.body for r in await self.resources.list(account_id)]  # newest first
        if not newest_first:
            bodies.reverse()
        needle = (where.name_or_uuid or "").strip().lower()
        wanted_tags, wanted_participants = set(where.tags), set(where.participant_tags)
        found = []
        for body in bodies:
            if where.status and body["status"] != where.status:
                continue
            if needle and needle not in body["document_name"].lower() and needle not in body["document_id"].lower():
                continue
            if wanted_tags and not wanted_tags & set(body.get("tags") or ()):
                continue
            if wanted_participants and not wanted_participants & set(body.get("participant_tags") or ()):
                continue
            found.append(doc.shown(body))
        return found

    async def tags(self, account_id: str, search: str | None) -> list[str]:
        """Every tag on the account's documents, alphabetically; `search` keeps those containing it."""
        tags = {tag for r in await self.resources.list(account_id) for tag in r.body.get("tags") or ()}
        needle = (search or "").strip().lower()
        return sorted(tag for tag in tags if needle in tag.lower())

    async def chunk_page(
        self, account_id: str, document_id: str, *, limit: int, offset: int
    ) -> tuple[list[StoredChunk], int]:
        await self.resources.get(account_id, document_id)
        return await self.chunks.page(account_id, document_id, limit=limit, offset=offset)

    async def search(
        self,
        account_id: str,
        query: str,
        *,
        document_ids: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        limit: int = 5,
    ) -> list[ChunkHit]:
        """The chunks of the account's documents most relevant to `query`, best first.

        The documents searched: those named in `document_ids` plus those carrying any
        of `tags` (a persona's `document_ids` and `document_tags`); all of the
        account's documents when both are None. Ids the account does not own are
        ignored. A document being recrawled keeps its previous chunks until the new
        ones replace them, so it stays searchable meanwhile.
        """
        bodies = [r.body for r in await self.resources.list(account_id)]
        if document_ids is None and tags is None:
            ids = [body["document_id"] for body in bodies]
        else:
            named, tagged = set(document_ids or ()), set(tags or ())
            ids = [b["document_id"] for b in bodies if b["document_id"] in named or tagged & set(b.get("tags") or ())]
        return await self.chunks.search(account_id, query, document_ids=ids, limit=limit)
