"""Processing a document as a durable job: fetch, crawl, extract, chunk, store, report.

A job names a document; the document's stored body says which run it is in
(`_run`: 1 for the create, one more per recrawl) and what to fetch. The handler
is safe to run again from the start (service/jobs.py): every step is a
compare-and-swap on the document that first checks the run is still the one
the handler started with and is not finished, a document's chunks are replaced
all at once, and callbacks have stable event ids (`<document_id>-<run>.<event>`),
so a run repeated after a crash stores the same result and delivers each
callback once. A run that finds its document finished re-queues the finishing
callback (a crash may have come between the two) and stops.

What a fetch or a file can get wrong is recorded on the document as an error
code (`error_message`) and a sentence (`error_details`), and the job is over:
a 404 or a PDF without text is not fixed by trying again. Anything else (the
database, a bug) raises, and the runner retries; when it gives up, the
document records `contact_support`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from palaver.delivery.fetch import FetchFailed, fetch
from palaver.domain import documents as doc
from palaver.domain.clock import Clock, iso_timestamp
from palaver.domain.errors import ResourceNotFound
from palaver.service.document_extraction import Page, ProcessingError, extract
from palaver.service.resources import Resources
from palaver.storage.document_chunks import DocumentChunks
from palaver.storage.resources import Callback, JobRecord, ResourceStore

log = logging.getLogger("palaver.documents")

JOB_KIND = "document_processing"
FETCH_TIMEOUT_S = 60.0  # one download
CRAWL_BUDGET_S = 300.0  # a whole crawl: well inside the job's lease (600 s), so no second runner starts it

# FetchFailed.reason -> error code.
_FETCH_CODES = {
    "refused": doc.INVALID_FILE_URL,  # a private address, a bad scheme: the URL itself is not acceptable
    "http_error": doc.INVALID_FILE_URL,  # 404 and friends: the URL does not lead to a file
    "too_large": doc.FILE_SIZE_TOO_LARGE,
    "unreachable": doc.FILE_DOWNLOAD_FAILED,
    "timeout": doc.FILE_DOWNLOAD_FAILED,
}

Fetcher = Callable[[str, float], Awaitable[Any]]  # (url, timeout) -> palaver.delivery.fetch.Fetched


class Stale(Exception):
    """The document moved on (deleted, finished, or another run started): this run stops quietly."""


@dataclass(frozen=True, slots=True)
class Gathered:
    text: str
    crawled_urls: list[str] | None  # None for a document without crawl


class DocumentProcessor:
    """The job's handler and give-up hook (registered as JOB_KIND in the app's lifespan)."""

    def __init__(
        self,
        resources: Resources,
        store: ResourceStore,
        chunks: DocumentChunks,
        clock: Clock,
        *,
        allow_private: bool,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.resources = resources
        self._store = store
        self._chunks = chunks
        self._clock = clock
        self._allow_private = allow_private
        self._fetch = fetcher or self._guarded_fetch

    async def _guarded_fetch(self, url: str, timeout: float) -> Any:
        return await fetch(url, allow_private=self._allow_private, max_bytes=doc.MAX_FILE_BYTES, timeout=timeout)

    # callbacks ----------------------------------------------------------------------------------

    async def notify(self, account_id: str, body: dict[str, Any]) -> None:
        """Queue the status callback for the document's current status, if it has a callback_url."""
        if not body.get("callback_url"):
            return
        callback = Callback(
            key=f"{body['document_id']}-{body.get('_run', 1)}",
            account_id=account_id,
            event_type=f"document.{body['status']}",
            url=body["callback_url"],
            body=doc.shown(body),
        )
        await self._store.enqueue_callback(callback, self._clock.now())

    # the job ------------------------------------------------------------------------------------

    async def run(self, job: JobRecord) -> None:
        record = await self.resources.find(job.account_id, job.resource_id)
        if record is None:
            return  # deleted
        body = record.body
        if body["status"] in doc.DONE:
            await self.notify(job.account_id, body)  # the finishing callback, in case a crash lost it
            return
        run = body.get("_run", 1)
        if body["status"] in ("started", "recrawling"):
            # The create's (or recrawl's) own callback before this job's: the request queues it too,
            # possibly after this job started; its stable event id makes the two one delivery.
            await self.notify(job.account_id, body)
        try:
            body = await self._step(job, run, status="processing", progress=0)
            await self.notify(job.account_id, body)
            gathered = await self._gather(job, run, body)
            await self._step(job, run, progress=80)
            chunks = doc.chunk_text(gathered.text)
            if not chunks:
                raise ProcessingError(doc.FILE_EMPTY, "The document has no text")
            if len(chunks) > doc.MAX_CHUNKS:
                raise ProcessingError(
                    doc.CHUNKING_FAILED,
                    f"The document's text makes {len(chunks)} chunks, over the limit of {doc.MAX_CHUNKS}",
                )
            await self._chunks.replace(job.account_id, job.resource_id, chunks)
            try:
                body = await self._finish(job, run, None, gathered.crawled_urls)
            except Stale:
                if await self.resources.find(job.account_id, job.resource_id) is None:
                    # Deleted while it ran: DELETE removed the chunks before these were written.
                    await self._chunks.delete(job.account_id, job.resource_id)
                raise
        except ProcessingError as failure:
            log.info("document %s failed: %s (%s)", job.resource_id, failure.code, failure.details)
            try:
                body = await self._finish(job, run, failure, None)
            except Stale:
                return
        except Stale:
            return
        await self.notify(job.account_id, body)

    async def give_up(self, job: JobRecord, reason: str) -> None:
        """The job failed for good (the runner's retries ran out): the document says so."""
        record = await self.resources.find(job.account_id, job.resource_id)
        if record is None or record.body["status"] in doc.DONE:
            return
        # The reason (an exception's text) stays in the server's log: it may name internals.
        log.error("document %s: processing given up: %s", job.resource_id, reason)
        failure = ProcessingError(doc.CONTACT_SUPPORT, "Processing failed repeatedly; the server's log says why")
        try:
            body = await self._finish(job, record.body.get("_run", 1), failure, None)
        except Stale:
            return
        await self.notify(job.account_id, body)

    # steps --------------------------------------------------------------------------------------

    async def _change(self, job: JobRecord, run: int, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        async def change(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("_run", 1) != run or body["status"] in doc.DONE:
                raise Stale()
            edit(body)
            return body

        try:
            return (await self.resources.change(job.account_id, job.resource_id, change)).body
        except ResourceNotFound as exc:  # the document is gone
            raise Stale() from exc

    async def _step(self, job: JobRecord, run: int, *, status: str | None = None, progress: int) -> dict[str, Any]:
        def edit(body: dict[str, Any]) -> None:
            if status is not None:
                body["status"] = status
            body["progress"] = progress

        return await self._change(job, run, edit)

    async def _finish(
        self, job: JobRecord, run: int, failure: ProcessingError | None, crawled_urls: list[str] | None
    ) -> dict[str, Any]:
        now = self._clock.now()

        def edit(body: dict[str, Any]) -> None:
            body["status"] = "error" if failure else "ready"
            body["progress"] = None
            body["error_message"] = failure.code if failure else None
            body["error_details"] = failure.details if failure else None
            if doc.is_crawl(body):
                # A crawl ran (however it ended): counted, stamped, and the cooldown starts.
                body["crawl_count"] = (body.get("crawl_count") or 0) + 1
                body["last_crawled_at"] = iso_timestamp(now)
                body["_last_crawl_epoch"] = now
                if crawled_urls is not None:
                    body["crawled_urls"] = crawled_urls
            if "_saved_crawl_config" in body:  # a recrawl's own settings were for that run only
                body["crawl_config"] = body.pop("_saved_crawl_config")

        return await self._change(job, run, edit)

    async def _gather(self, job: JobRecord, run: int, body: dict[str, Any]) -> Gathered:
        """The document's text: one download, or a breadth-first crawl of the site from it."""
        url = body["document_url"]
        crawl = body.get("crawl_config")
        deadline = time.monotonic() + CRAWL_BUDGET_S
        first = await self._page(url, min(FETCH_TIMEOUT_S, CRAWL_BUDGET_S))
        await self._step(job, run, progress=10 if crawl else 60)
        if crawl is None:
            return Gathered(first.text, None)
        pages = [first]
        seen = {_canonical(url), _canonical(first.url)}
        site = urlsplit(first.url).netloc.lower()
        frontier = [(link, 1) for link in first.links]
        max_pages, depth = int(crawl["max_pages"]), int(crawl["depth"])
        while frontier and len(pages) < max_pages:
            link, level = frontier.pop(0)
            key = _canonical(link)
            if level > depth or key in seen or urlsplit(link).netloc.lower() != site:
                continue
            seen.add(key)
            left = deadline - time.monotonic()
            if left <= 1:
                log.info("crawl of %s stopped at its time budget after %d pages", url, len(pages))
                break
            try:
                page = await self._page(link, min(FETCH_TIMEOUT_S, left))
            except ProcessingError as exc:
                log.info("crawl of %s skipped %s: %s", url, link, exc.details)  # one bad page does not fail a site
                continue
            pages.append(page)
            frontier.extend((found, level + 1) for found in page.links)
            await self._step(job, run, progress=10 + 70 * len(pages) // max_pages)
        text = "\n\n".join(page.text for page in pages)
        return Gathered(text, [page.url for page in pages])

    async def _page(self, url: str, timeout: float) -> Page:
        try:
            fetched = await self._fetch(url, timeout)
        except FetchFailed as exc:
            raise ProcessingError(_FETCH_CODES.get(exc.reason, doc.FILE_DOWNLOAD_FAILED), exc.message) from None
        if not fetched.content:
            raise ProcessingError(doc.FILE_EMPTY, f"{url} answered an empty file")
        # Parsing a 50 MB file takes a while: in a thread, so the server keeps answering meanwhile.
        return await asyncio.to_thread(extract, fetched.url, fetched.content_type, fetched.content)


def _canonical(url: str) -> str:
    """A URL as the crawler compares them: no fragment, no trailing slash, host lower-cased."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc.lower()}{path}{query}"
