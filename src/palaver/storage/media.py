"""The storage interface for media Palaver serves itself: replica thumbnails.

Bytes live in the database, not on a local disk, so that every process of a
PostgreSQL deployment can serve what any of them made (and a backup holds
them). They are small (a thumbnail clip is a few hundred kilobytes at most,
service/media_probe.py) and few (one per trained replica).

A key is the file name in the public URL (`<random token>.mp4`): whoever knows
it may read the bytes, so keys are unguessable (domain/training.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MediaRecord:
    key: str
    content_type: str
    data: bytes
    created_at: str


class ReplicaMedia(Protocol):
    async def put(self, record: MediaRecord) -> None:
        """Store the bytes under `record.key`, replacing what was there (a job run again writes the same key)."""
        ...

    async def get(self, key: str) -> MediaRecord | None: ...

    async def delete(self, key: str) -> bool:
        """Remove the bytes; False if there were none."""
        ...
