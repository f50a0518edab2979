"""SQLite implementation of `ReplicaMedia` (storage/media.py), on the storage's writer and read connection."""

from __future__ import annotations

import sqlite3

from palaver.storage.media import MediaRecord
from palaver.storage.sqlite_writer import GroupCommitter


class SQLiteMedia:
    def __init__(self, writer: GroupCommitter, read: sqlite3.Connection) -> None:
        self._writer = writer
        self._read = read

    async def put(self, record: MediaRecord) -> None:
        r = record
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT INTO media (key, content_type, data, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET content_type = excluded.content_type, data = excluded.data",
                (r.key, r.content_type, r.data, r.created_at),
            )
        )

    async def get(self, key: str) -> MediaRecord | None:
        row = self._read.execute(
            "SELECT key, content_type, data, created_at FROM media WHERE key = ?", (key,)
        ).fetchone()
        return MediaRecord(row[0], row[1], bytes(row[2]), row[3]) if row else None

    async def delete(self, key: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            return c.execute("DELETE FROM media WHERE key = ?", (key,)).rowcount == 1

        return await self._writer.submit(op)
