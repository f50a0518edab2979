"""PostgreSQL implementation of `ReplicaMedia` (storage/media.py), on the storage's pool."""

from __future__ import annotations

from palaver.storage.media import MediaRecord
from palaver.storage.postgres_pool import LazyPool


class PostgresMedia:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def put(self, record: MediaRecord) -> None:
        pool = await self._pool.get()
        await pool.execute(
            "INSERT INTO media (key, content_type, data, created_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (key) DO UPDATE SET content_type = excluded.content_type, data = excluded.data",
            record.key,
            record.content_type,
            record.data,
            record.created_at,
        )

    async def get(self, key: str) -> MediaRecord | None:
        pool = await self._pool.get()
        row = await pool.fetchrow("SELECT key, content_type, data, created_at FROM media WHERE key = $1", key)
        return MediaRecord(row[0], row[1], bytes(row[2]), row[3]) if row else None

    async def delete(self, key: str) -> bool:
        pool = await self._pool.get()
        status = await pool.execute("DELETE FROM media WHERE key = $1", key)
        return status == "DELETE 1"
