"""Replica media (thumbnails) on every backend: bytes kept exactly, replaced on a second put, deleted."""

from __future__ import annotations

import asyncio
import os

from palaver.storage import Storage
from palaver.storage.media import MediaRecord

AT = "2026-03-01T10:00:00.000000Z"


def test_put_get_delete(storage: Storage, run) -> None:
    async def scenario() -> None:
        data = bytes(range(256)) * 40 + b"\x00\x00end"  # every byte value, NULs included
        await storage.media.put(MediaRecord("k1.mp4", "video/mp4", data, AT))
        got = await storage.media.get("k1.mp4")
        assert got == MediaRecord("k1.mp4", "video/mp4", data, AT)
        assert await storage.media.get("k2.mp4") is None
        assert await storage.media.get("K1.mp4") is None  # keys are exact
        assert await storage.media.delete("k1.mp4") is True
        assert await storage.media.get("k1.mp4") is None
        assert await storage.media.delete("k1.mp4") is False

    run(scenario())


def test_a_second_put_replaces(storage: Storage, run) -> None:
    """A training job run again after a crash writes the same key: the later bytes win, no error."""

    async def scenario() -> None:
        await storage.media.put(MediaRecord("k.jpg", "image/jpeg", b"first", AT))
        await storage.media.put(MediaRecord("k.jpg", "image/png", b"second", AT))
        got = await storage.media.get("k.jpg")
        assert got is not None and (got.content_type, got.data) == ("image/png", b"second")

    run(scenario())


def test_large_blob_and_concurrent_puts(storage: Storage, run) -> None:
    async def scenario() -> None:
        big = os.urandom(3_000_000)
        await asyncio.gather(*(storage.media.put(MediaRecord(f"b{i}.mp4", "video/mp4", big[i:], AT)) for i in range(5)))
        for i in range(5):
            got = await storage.media.get(f"b{i}.mp4")
            assert got is not None and got.data == big[i:]

    run(scenario())


def test_media_survives_reopening(storage: Storage, backend, run) -> None:
    async def scenario() -> None:
        await storage.media.put(MediaRecord("kept.mp4", "video/mp4", b"clip", AT))

    run(scenario())
    other = backend.open()
    try:
        got = run(other.media.get("kept.mp4"))
        assert got is not None and got.data == b"clip"
    finally:
        run(other.close())
