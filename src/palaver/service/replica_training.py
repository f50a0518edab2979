"""Training a replica: the create request, and the durable job that checks the footage.

`POST /v2/replicas` (or `/v2/faces`) stores the replica as `started` with the
request under `_training`, and queues a `replica_training` job
(service/jobs.py). The job downloads the footage through the private-address
guard (delivery/fetch.py), probes it with FFmpeg in a thread
(service/media_probe.py), checks it against Tavus's rules (domain/training.py),
stores a thumbnail in the database (storage/media.py) and records the outcome:
`completed` with `thumbnail_video_url`, or `error` with `error_message` and
`error_type`. Then the callback goes to `callback_url` through the webhook
outbox.

The job may be run again from the start after a crash (another process takes it
over once its lease runs out), so every step is safe to repeat: it reads the
stored replica first, the thumbnail key was chosen at create time (a second put
replaces the first), the outcome is a compare-and-swap that only a `started`
replica accepts, and a replica already settled only has its callback queued
again, which the outbox's stable event id delivers once.

Nothing of the footage is kept after the job: only the thumbnail, which a hard
delete purges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from palaver.delivery.fetch import Fetched, FetchFailed, fetch
from palaver.domain.clock import Clock
from palaver.domain.errors import InvalidId
from palaver.domain.replicas import new_replica_id, replica_document
from palaver.domain.training import (
    IMAGE_FORMATS,
    MAX_CONSENT_BYTES,
    MAX_IMAGE_BYTES,
    MAX_VIDEO_BYTES,
    PROGRESS_CHECKED,
    PROGRESS_DONE,
    PROGRESS_DOWNLOADED,
    PROGRESS_THUMBNAIL,
    TrainingError,
    TrainingRequest,
    callback_body,
    check_image,
    check_video,
    download_failed,
    parse_request,
    trained_document,
    unreadable,
)
from palaver.domain.vocabulary import Vocabulary
from palaver.service import media_probe
from palaver.service.jobs import JobKind, JobRunner
from palaver.service.replicas import ReplicaService
from palaver.storage.media import MediaRecord, ReplicaMedia
from palaver.storage.resources import Callback, JobRecord

log = logging.getLogger("palaver.training")

JOB_KIND = "replica_training"
EVENT_TYPE = "replica.training"
DOWNLOAD_TIMEOUT_S = 240.0  # per file; two files fit in the job's lease (service/jobs.py, 600 s)
GAVE_UP = "Training could not be completed because of a server error; please try again."

Fetcher = Callable[..., Awaitable[Fetched]]


class _Gone(Exception):
    """The replica was deleted while its job ran: nothing left to record."""


@dataclass(frozen=True, slots=True)
class Thumbnail:
    data: bytes
    content_type: str


class ReplicaTraining:
    """Creates replicas to train and runs their training; registers its job kind and purge hook."""

    def __init__(
        self,
        replicas: ReplicaService,
        media: ReplicaMedia,
        jobs: JobRunner,
        clock: Clock,
        *,
        public_url: str,
        allow_private: bool,
        fetcher: Fetcher = fetch,
    ) -> None:
        self.replicas = replicas
        self.resources = replicas.resources
        self.media = media
        self.jobs = jobs
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.allow_private = allow_private
        self.fetch = fetcher
        jobs.register(JOB_KIND, JobKind(self.run, self.give_up))
        replicas.purge_hooks.append(self.purge)

    # create -------------------------------------------------------------------------------------

    async def create(self, account_id: str, body: dict[str, Any], vocabulary: Vocabulary) -> dict[str, Any]:
        """Store the replica as `started` and queue its training; the answer is `{replica_id, status}`."""
        request, name = parse_request(vocabulary.parse(body), vocabulary)
        replica_id = new_replica_id()
        base = replica_document(
            replica_id,
            name if name is not None else f"Replica {replica_id}",
            status="started",
            model_name=request.model_name,
            created_at=self.resources.stamp(),
        )
        job = self.jobs.new_job(JOB_KIND, account_id, replica_id)  # committed with the replica
        await self.resources.add(account_id, replica_id, trained_document(base, request), job=job)
        self.jobs.wake()
        return {vocabulary.name("replica_id"): replica_id, "status": "started"}

    # the job ------------------------------------------------------------------------------------

    async def run(self, job: JobRecord) -> None:
        record = await self.resources.find(job.account_id, job.resource_id)
        if record is None or "_training" not in record.body:
            return  # deleted before its training ran
        body = record.body
        request = TrainingRequest.from_stored(body["_training"], body["model_name"])
        if body["status"] != "started":
            # Settled by an earlier run that died before queueing the callback (or after: delivered once).
            await self._callback(job, request, body.get("error_message") if body["status"] == "error" else None)
            return
        try:
            outcome = await self._train(job, request)
            await self._settle(job, request, outcome)
        except _Gone:
            await self.media.delete(request.media_key)  # a thumbnail stored after the delete

    async def give_up(self, job: JobRecord, reason: str) -> None:
        """Failed on every attempt (a server fault, not the footage): recorded as an error."""
        log.error("replica %s: training given up: %s", job.resource_id, reason)
        record = await self.resources.find(job.account_id, job.resource_id)
        if record is None or "_training" not in record.body:
            return
        request = TrainingRequest.from_stored(record.body["_training"], record.body["model_name"])
        try:
            await self._settle(job, request, TrainingError("training_failed", GAVE_UP))
        except _Gone:
            pass

    async def purge(self, document: dict[str, Any]) -> None:
        """The hard delete's hook: the thumbnail goes (the footage was never kept)."""
        key = (document.get("_training") or {}).get("media_key")
        if key:
            await self.media.delete(key)

    async def media_file(self, key: str) -> MediaRecord | None:
        """What `<public_url>/media/<key>` serves."""
        return await self.media.get(key)

    def media_url(self, key: str) -> str:
        return f"{self.public_url}/media/{key}"

    async def _train(self, job: JobRecord, request: TrainingRequest) -> TrainingError | Thumbnail:
        """Download, check and thumbnail the footage: the thumbnail, or the first rule it broke."""
        video = request.source == "video"
        field = "train_video_url" if video else "train_image_url"
        limit = MAX_VIDEO_BYTES if video else MAX_IMAGE_BYTES
        data = await self._download(request.train_url, field, limit)
        if isinstance(data, TrainingError):
            return data
        await self._progress(job, PROGRESS_DOWNLOADED)
        if video:
            facts = await asyncio.to_thread(media_probe.probe_video, data)
            problem = unreadable("video at train_video_url", "video_format") if facts is None else check_video(facts)
        else:
            image = await asyncio.to_thread(media_probe.probe_image, data)
            problem = unreadable("image at train_image_url", "image_format") if image is None else check_image(image)
        if problem is not None:
            return problem
        if request.consent_video_url is not None:
            consent = await self._download(request.consent_video_url, "consent_video_url", MAX_CONSENT_BYTES)
            if isinstance(consent, TrainingError):
                return consent
            facts = await asyncio.to_thread(media_probe.probe_video, consent)
            if facts is None:
                return unreadable("video at consent_video_url", "video_format")
            problem = check_video(facts, "consent_video_url", training=False)
            if problem is not None:
                return problem
        await self._progress(job, PROGRESS_CHECKED)
        try:
            if video:
                return Thumbnail(await asyncio.to_thread(media_probe.video_thumbnail, data), "video/mp4")
            return Thumbnail(await asyncio.to_thread(media_probe.image_thumbnail, data), IMAGE_FORMATS["jpeg"])
        except Exception as exc:  # noqa: BLE001 - FFmpeg failing mid-file: the footage's fault
            log.info("replica %s: thumbnail failed: %s", job.resource_id, exc)
            error_type = "video_format" if video else "image_format"
            return TrainingError(error_type, f"The file at {field} could not be decoded.")

    async def _download(self, url: str, field: str, limit: int) -> bytes | TrainingError:
        try:
            got = await self.fetch(url, allow_private=self.allow_private, max_bytes=limit, timeout=DOWNLOAD_TIMEOUT_S)
        except FetchFailed as exc:
            return download_failed(field, exc.reason, exc.message, limit)
        return got.content

    async def _progress(self, job: JobRecord, progress: str) -> None:
        async def step(body: dict[str, Any]) -> dict[str, Any]:
            if body["status"] == "started":
                body["training_progress"] = progress
            return body

        await self._change(job, step)

    async def _settle(self, job: JobRecord, request: TrainingRequest, outcome: TrainingError | Thumbnail) -> None:
        """Record the outcome (only on a replica still `started`), then queue the callback."""
        if isinstance(outcome, Thumbnail):
            await self._progress(job, PROGRESS_THUMBNAIL)
            await self.media.put(MediaRecord(request.media_key, outcome.content_type, outcome.data,
                                             self.resources.stamp()))  # fmt: skip
            changes: dict[str, Any] = {"status": "completed", "training_progress": PROGRESS_DONE,
                                       "thumbnail_video_url": self.media_url(request.media_key)}  # fmt: skip
        else:
            changes = {"status": "error", "error_message": outcome.message, "error_type": outcome.error_type}

        async def settle(body: dict[str, Any]) -> dict[str, Any]:
            if body["status"] == "started":
                body.update(changes)
            return body

        settled = await self._change(job, settle)
        status = settled["status"]
        await self._callback(job, request, settled.get("error_message") if status == "error" else None)

    async def _change(
        self, job: JobRecord, fn: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        try:
            return (await self.resources.change(job.account_id, job.resource_id, fn)).body
        except InvalidId:
            raise _Gone from None

    async def _callback(self, job: JobRecord, request: TrainingRequest, error_message: str | None) -> None:
        if not request.callback_url:
            return
        callback = Callback(job.resource_id, job.account_id, EVENT_TYPE, request.callback_url,
                            callback_body(job.resource_id, error_message))  # fmt: skip
        await self.resources.store.enqueue_callback(callback, self.clock.now())
