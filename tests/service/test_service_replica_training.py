"""The replica training job in-process, on every backend, with a ManualClock: outcomes, progress,
the callback in the outbox, retries and give-up, runs repeated after a crash, deletes and purges.

Footage comes from a real HTTP origin on 127.0.0.1 (tests/training_media.py); the job runs
one round at a time through `JobRunner.run_due`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import training_media
from backends import Backend

from palaver.delivery.fetch import fetch
from palaver.domain.clock import ManualClock, iso_timestamp
from palaver.domain.replicas import FACE, REPLICA
from palaver.service import replica_training as training_module
from palaver.service.jobs import JobRunner
from palaver.service.media_probe import probe_image, probe_video
from palaver.service.replica_training import ReplicaTraining
from palaver.service.replicas import ReplicaService
from palaver.storage import Storage
from palaver.storage.base import AccountRecord

ACCOUNT = "a1"
PUBLIC = "https://palaver.example"


@pytest.fixture(scope="module")
def origin() -> Iterator[training_media.Origin]:
    o = training_media.start_origin()
    o.files.update({
        "/good.mp4": training_media.video(),
        "/mpeg4.mp4": training_media.video(codec="mpeg4"),
        "/vp9.mp4": training_media.video(seconds=61, codec="libvpx-vp9", size=32),
        "/short.mp4": training_media.video(seconds=10),
        "/slow.mp4": training_media.video(fps=15),
        "/clip.mkv": training_media.video(seconds=2, fmt="matroska"),
        "/consent.mp4": training_media.video(seconds=3),
        "/text.mp4": b"this is a text file, renamed to .mp4\n" * 50,
        "/face.png": training_media.still("png"),
        "/face.jpg": training_media.still("mjpeg", 1200, 900),
        "/face.gif": training_media.still("gif"),
        "/tiny.png": training_media.still("png", 32, 32),
    })  # fmt: skip
    yield o
    o.close()


@dataclass
class World:
    storage: Storage
    clock: ManualClock
    replicas: ReplicaService
    jobs: JobRunner
    training: ReplicaTraining
    origin: training_media.Origin

    async def create(self, body: dict[str, Any], vocabulary=REPLICA) -> str:
        answer = await self.training.create(ACCOUNT, body, vocabulary)
        assert answer["status"] == "started"
        return answer[vocabulary.name("replica_id")]

    async def body(self, replica_id: str) -> dict[str, Any]:
        record = await self.replicas.resources.find(ACCOUNT, replica_id)
        assert record is not None
        return record.body

    async def callbacks(self) -> list[dict[str, Any]]:
        changes = await self.storage.read_outbox(0, 1000)
        return [json.loads(c.detail or "") for c in changes if c.change == "callback"]


def scenario(backend: Backend, origin, body: Callable[[World], Awaitable[None]], fetcher=fetch) -> None:
    async def main() -> None:
        storage = backend.open()
        await storage.migrate()
        try:
            await storage.create_account(AccountRecord(ACCOUNT, "acme", None, iso_timestamp(0)))
            clock = ManualClock()
            replicas = ReplicaService(storage.resources, clock)
            jobs = JobRunner(storage.resources, clock, retry_s=30.0)
            training = ReplicaTraining(replicas, storage.media, jobs, clock, public_url=PUBLIC + "/",
                                       allow_private=True, fetcher=fetcher)  # fmt: skip
            await body(World(storage, clock, replicas, jobs, training, origin))
        finally:
            await storage.close()

    asyncio.run(main())


def test_a_good_video_completes_with_a_thumbnail_and_a_ready_callback(backend, origin) -> None:
    async def body(w: World) -> None:
        rid = await w.create({"train_video_url": w.origin.url("/good.mp4"), "replica_name": "Rio",
                              "callback_url": "https://hooks.example/t"})  # fmt: skip
        stored = await w.body(rid)
        assert (stored["status"], stored["training_progress"], stored["replica_type"]) == ("started", "0/100", "user")
        assert stored["model_name"] == "phoenix-4" and stored["_training"]["train_url"].endswith("/good.mp4")
        assert await w.jobs.run_due() == 1
        done = await w.body(rid)
        assert (done["status"], done["training_progress"], done["error_message"], done["error_type"]) == (
            "completed", "100/100", None, None)  # fmt: skip
        url = done["thumbnail_video_url"]
        assert url.startswith(PUBLIC + "/media/") and url.endswith(".mp4")
        media = await w.storage.media.get(url.rsplit("/", 1)[1])
        assert media is not None and media.content_type == "video/mp4"
        clip = probe_video(media.data)
        assert clip is not None and clip.codec == "h264" and 2.5 <= clip.duration_s <= 3.1
        assert await w.replicas.usable(ACCOUNT, rid)
        assert await w.callbacks() == [{"account_id": ACCOUNT, "event_type": "replica.training",
                                        "url": "https://hooks.example/t",
                                        "body": json.dumps({"replica_id": rid, "status": "ready"},
                                                           separators=(",", ":"))}]  # fmt: skip
        assert await w.jobs.run_due() == 0  # finished: never claimed again

    scenario(backend, origin, body)


@pytest.mark.parametrize(
    ("path", "error_type", "words"),
    [
        ("/mpeg4.mp4", "video_codec", "H.264 (found mpeg4)"),
        ("/vp9.mp4", "video_codec", "H.264 (found vp9)"),
        ("/short.mp4", "video_duration", "at least 1 minute long (found 10.0 seconds)"),
        ("/slow.mp4", "video_fps", "at least 25 frames per second (found 15.00)"),
        ("/clip.mkv", "video_format", "must be an MP4 file"),
        ("/text.mp4", "video_format", "could not be read"),
        ("/missing.mp4", "download_link", "HTTP 404"),
    ],
)
def test_footage_that_breaks_a_rule_ends_in_error(backend, origin, path, error_type, words) -> None:
    async def body(w: World) -> None:
        rid = await w.create({"train_video_url": w.origin.url(path), "callback_url": "https://hooks.example/t"})
        await w.jobs.run_due()
        stored = await w.body(rid)
        assert stored["status"] == "error" and stored["error_type"] == error_type
        assert words in stored["error_message"] and stored["thumbnail_video_url"] is None
        assert not await w.replicas.usable(ACCOUNT, rid)
        (callback,) = await w.callbacks()
        assert json.loads(callback["body"]) == {"replica_id": rid, "status": "error",
                                                "error_message": stored["error_message"]}  # fmt: skip

    scenario(backend, origin, body)


def test_too_large_is_file_size(backend, origin, monkeypatch) -> None:
    monkeypatch.setattr(training_module, "MAX_VIDEO_BYTES", 50_000)

    async def body(w: World) -> None:
        rid = await w.create({"train_video_url": w.origin.url("/good.mp4")})
        await w.jobs.run_due()
        stored = await w.body(rid)
        assert (stored["status"], stored["error_type"]) == ("error", "file_size")
        assert await w.callbacks() == []  # no callback_url, no callback

    scenario(backend, origin, body)


@pytest.mark.parametrize(
    ("path", "outcome"),
    [("/face.png", "completed"), ("/face.jpg", "completed"), ("/face.gif", "image_format"),
     ("/tiny.png", "image_size"), ("/text.mp4", "image_format"), ("/good.mp4", "image_format")],
)  # fmt: skip
def test_images(backend, origin, path, outcome) -> None:
    async def body(w: World) -> None:
        rid = await w.create({"train_image_url": w.origin.url(path), "voice_name": "Anna", "face_name": "Pic"}, FACE)
        await w.jobs.run_due()
        stored = await w.body(rid)
        assert stored["replica_name"] == "Pic"
        if outcome != "completed":
            assert (stored["status"], stored["error_type"]) == ("error", outcome)
            return
        assert stored["status"] == "completed" and stored["thumbnail_video_url"].endswith(".jpg")
        media = await w.storage.media.get(stored["thumbnail_video_url"].rsplit("/", 1)[1])
        assert media is not None and media.content_type == "image/jpeg"
        facts = probe_image(media.data)
        assert facts is not None and facts.format == "mjpeg" and max(facts.width, facts.height) <= 512

    scenario(backend, origin, body)


def test_progress_moves_and_the_consent_video_is_checked(backend, origin) -> None:
    seen: list[str] = []
    holder: dict[str, World] = {}

    async def watching(url: str, **kwargs: Any):
        if "consent" in url:  # the footage is in and checked: progress shows it
            seen.append((await holder["w"].body(holder["rid"]))["training_progress"])
        return await fetch(url, **kwargs)

    async def body(w: World) -> None:
        holder["w"] = w
        holder["rid"] = await w.create({"train_video_url": w.origin.url("/good.mp4"),
                                        "consent_video_url": w.origin.url("/consent.mp4")})  # fmt: skip
        await w.jobs.run_due()
        assert seen == ["30/100"] and (await w.body(holder["rid"]))["training_progress"] == "100/100"
        bad = await w.create({"train_video_url": w.origin.url("/good.mp4"),
                              "consent_video_url": w.origin.url("/mpeg4.mp4")})  # fmt: skip
        nowhere = await w.create({"train_video_url": w.origin.url("/good.mp4"),
                                  "consent_video_url": w.origin.url("/gone.mp4")})  # fmt: skip
        await w.jobs.run_due()
        for rid, error_type in [(bad, "video_codec"), (nowhere, "download_link")]:
            stored = await w.body(rid)
            assert (stored["status"], stored["error_type"]) == ("error", error_type)
            assert "consent_video_url" in stored["error_message"]

    scenario(backend, origin, body, fetcher=watching)


def test_a_server_fault_is_retried_then_given_up(backend, origin) -> None:
    async def body(w: World) -> None:
        real_put = w.storage.media.put
        failures = {"left": 1}

        async def flaky_put(record):
            if failures["left"] > 0:
                failures["left"] -= 1
                raise OSError("disk full")
            await real_put(record)

        w.training.media.put = flaky_put  # type: ignore[method-assign]
        rid = await w.create({"train_video_url": w.origin.url("/good.mp4"), "callback_url": "https://h.example/"})
        await w.jobs.run_due()
        assert (await w.body(rid))["status"] == "started"  # failed once: waits for its retry
        assert await w.jobs.run_due() == 0
        w.clock.advance(31)
        await w.jobs.run_due()
        assert (await w.body(rid))["status"] == "completed"
        assert [json.loads(c["body"])["status"] for c in await w.callbacks()] == ["ready"]

        failures["left"] = 99
        doomed = await w.create({"train_video_url": w.origin.url("/good.mp4"), "callback_url": "https://h.example/"})
        for _ in range(3):
            await w.jobs.run_due()
            w.clock.advance(31)
        stored = await w.body(doomed)
        assert (stored["status"], stored["error_type"]) == ("error", "training_failed")
        assert "disk full" not in stored["error_message"]  # the server's fault stays in its log
        assert [json.loads(c["body"])["status"] for c in await w.callbacks()] == ["ready", "error"]
        assert await w.jobs.run_due() == 0

    scenario(backend, origin, body)


def test_a_run_repeated_after_a_crash_changes_nothing_and_queues_the_same_callback(backend, origin) -> None:
    """A process that died after recording the outcome: the job is claimed again and run from the start."""

    async def body(w: World) -> None:
        rid = await w.create({"train_video_url": w.origin.url("/good.mp4"), "callback_url": "https://h.example/"})
        await w.jobs.run_due()
        before = await w.body(rid)
        gets = len(w.origin.gets)
        job = (await _all_jobs(w))[0]
        await w.training.run(job)  # the same job, again
        assert await w.body(rid) == before and len(w.origin.gets) == gets  # nothing downloaded again
        callbacks = await w.callbacks()
        assert len(callbacks) == 2 and callbacks[0] == callbacks[1]  # same key and event: delivered once

    scenario(backend, origin, body)


def test_deleted_while_training_leaves_nothing(backend, origin) -> None:
    holder: dict[str, Any] = {}

    async def deleting(url: str, **kwargs: Any):
        got = await fetch(url, **kwargs)
        w: World = holder["w"]
        await w.replicas.delete(ACCOUNT, holder["rid"], REPLICA, hard=False)
        return got

    async def body(w: World) -> None:
        holder["w"] = w
        holder["rid"] = await w.create({"train_video_url": w.origin.url("/good.mp4"), "callback_url": "https://h/"})
        key = (await w.body(holder["rid"]))["_training"]["media_key"]
        await w.jobs.run_due()
        assert await w.replicas.resources.find(ACCOUNT, holder["rid"]) is None
        assert await w.storage.media.get(key) is None and await w.callbacks() == []
        assert await w.jobs.run_due() == 0

    scenario(backend, origin, body, fetcher=deleting)


def test_hard_delete_purges_the_thumbnail_soft_delete_keeps_it(backend, origin) -> None:
    async def body(w: World) -> None:
        keys = []
        for _ in range(2):
            rid = await w.create({"train_video_url": w.origin.url("/good.mp4")})
            await w.jobs.run_due()
            keys.append((rid, (await w.body(rid))["thumbnail_video_url"].rsplit("/", 1)[1]))
        (soft, soft_key), (hard, hard_key) = keys
        await w.replicas.delete(ACCOUNT, soft, REPLICA, hard=False)
        await w.replicas.delete(ACCOUNT, hard, REPLICA, hard=True)
        assert await w.storage.media.get(soft_key) is not None
        assert await w.storage.media.get(hard_key) is None

    scenario(backend, origin, body)


async def _all_jobs(w: World):
    """The finished job, as a claim would hand it over again (read around the API: a crash cannot be staged)."""
    from palaver.storage.resources import JobRecord

    record = (await w.replicas.resources.list(ACCOUNT))[0]
    return [JobRecord("j-again", "replica_training", record.resource_id, ACCOUNT, 2)]
