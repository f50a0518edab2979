"""PostgreSQL implementation of `DocumentChunks`: a table with a generated `tsvector` and a GIN index.

The `search` column is computed by PostgreSQL from the text (English
configuration: the knowledge base is English, reference 10), so it can never
disagree with it; relevance is `ts_rank`.
"""

from __future__ import annotations

from collections.abc import Sequence

from palaver.storage.document_chunks import ChunkHit, StoredChunk, search_terms
from palaver.storage.postgres_pool import LazyPool


class PostgresDocumentChunks:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def replace(self, account_id: str, document_id: str, chunks: Sequence[str]) -> None:
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM document_chunks WHERE account_id = $1 AND document_id = $2", account_id, document_id
            )
            await conn.executemany(
                "INSERT INTO document_chunks (account_id, document_id, chunk_index, content) VALUES ($1, $2, $3, $4)",
                [(account_id, document_id, index, content) for index, content in enumerate(chunks)],
            )

    async def page(
        self, account_id: str, document_id: str, *, limit: int, offset: int
    ) -> tuple[list[StoredChunk], int]:
        pool = await self._pool.get()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = await conn.fetchval(
                "SELECT COUNT(*) FROM document_chunks WHERE account_id = $1 AND document_id = $2",
                account_id,
                document_id,
            )
            rows = await conn.fetch(
                "SELECT chunk_index, content FROM document_chunks WHERE account_id = $1 AND document_id = $2 "
                "ORDER BY chunk_index LIMIT $3 OFFSET $4",
                account_id,
                document_id,
                limit,
                offset,
            )
        return [StoredChunk(document_id, row[0], row[1]) for row in rows], int(total)

    async def search(
        self, account_id: str, query: str, *, document_ids: Sequence[str] | None = None, limit: int = 5
    ) -> list[ChunkHit]:
        terms = search_terms(query)
        if not terms or (document_ids is not None and not document_ids):
            return []
        # Terms are letters and digits only, so joining them with `|` (OR) is a well-formed tsquery;
        # to_tsquery stems them as the index was stemmed and drops stop words.
        args: list[object] = [" | ".join(terms), account_id, limit]
        only = ""
        if document_ids is not None:
            only = " AND document_id = ANY($4::text[])"
            args.append(list(document_ids))
        pool = await self._pool.get()
        rows = await pool.fetch(
            "SELECT document_id, chunk_index, content, ts_rank(search, q) AS rank "
            "FROM document_chunks, to_tsquery('english', $1) AS q "
            f"WHERE search @@ q AND account_id = $2{only} "
            "ORDER BY rank DESC, document_id, chunk_index LIMIT $3",
            *args,
        )
        return [ChunkHit(row[0], row[1], row[2], float(row[3])) for row in rows]

    async def delete(self, account_id: str, document_id: str) -> int:
        pool = await self._pool.get()
        status = await pool.execute(
            "DELETE FROM document_chunks WHERE account_id = $1 AND document_id = $2", account_id, document_id
        )
        return int(status.rsplit(" ", 1)[-1])
