"""SQLite implementation of `DocumentChunks`: a plain table plus an FTS5 index kept by triggers.

The FTS5 table is an external-content index of `document_chunks` (migration
0006): the text is stored once, and triggers keep the index in step, inside the
same transaction as the change. Relevance is FTS5's BM25 (`bm25()`, lower is
better, so the score is its negation).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from palaver.storage.document_chunks import ChunkHit, StoredChunk, search_terms
from palaver.storage.sqlite_writer import GroupCommitter


class SQLiteDocumentChunks:
    def __init__(self, writer: GroupCommitter, read: sqlite3.Connection) -> None:
        self._writer = writer
        self._read = read

    async def replace(self, account_id: str, document_id: str, chunks: Sequence[str]) -> None:
        rows = [(account_id, document_id, index, content) for index, content in enumerate(chunks)]

        def op(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM document_chunks WHERE account_id = ? AND document_id = ?", (account_id, document_id))
            c.executemany(
                "INSERT INTO document_chunks (account_id, document_id, chunk_index, content) VALUES (?, ?, ?, ?)", rows
            )

        await self._writer.submit(op)

    async def page(
        self, account_id: str, document_id: str, *, limit: int, offset: int
    ) -> tuple[list[StoredChunk], int]:
        cur = self._read.cursor()
        cur.execute("BEGIN")  # one read transaction: the page and the count agree
        try:
            total = cur.execute(
                "SELECT COUNT(*) FROM document_chunks WHERE account_id = ? AND document_id = ?",
                (account_id, document_id),
            ).fetchone()[0]
            rows = cur.execute(
                "SELECT chunk_index, content FROM document_chunks WHERE account_id = ? AND document_id = ? "
                "ORDER BY chunk_index LIMIT ? OFFSET ?",
                (account_id, document_id, limit, offset),
            ).fetchall()
        finally:
            cur.execute("COMMIT")
        return [StoredChunk(document_id, index, content) for index, content in rows], total

    async def search(
        self, account_id: str, query: str, *, document_ids: Sequence[str] | None = None, limit: int = 5
    ) -> list[ChunkHit]:
        terms = search_terms(query)
        if not terms or (document_ids is not None and not document_ids):
            return []
        # Each term quoted: FTS5 reads it as a plain word, whatever it is. OR: a chunk with more
        # of the words (and rarer ones) ranks higher, one with only some still counts.
        match = " OR ".join('"' + term + '"' for term in terms)
        where = "document_chunks_fts MATCH ? AND c.account_id = ?"
        args: list[object] = [match, account_id]
        if document_ids is not None:
            where += f" AND c.document_id IN ({', '.join('?' * len(document_ids))})"
            args.extend(document_ids)
        rows = self._read.execute(
            "SELECT c.document_id, c.chunk_index, c.content, bm25(document_chunks_fts) AS rank "
            "FROM document_chunks_fts JOIN document_chunks c ON c.chunk_seq = document_chunks_fts.rowid "
            f"WHERE {where} ORDER BY rank, c.document_id, c.chunk_index LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [ChunkHit(doc, index, content, -rank) for doc, index, content, rank in rows]

    async def delete(self, account_id: str, document_id: str) -> int:
        return await self._writer.submit(
            lambda c: (
                c.execute(
                    "DELETE FROM document_chunks WHERE account_id = ? AND document_id = ?", (account_id, document_id)
                ).rowcount
            )
        )
