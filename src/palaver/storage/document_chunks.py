"""The storage interface for documents' text chunks, searched with the database's own full-text index.

A processed document is a list of chunks (domain/documents.py, `chunk_text`).
They live beside the resources table rather than in the document's JSON body:
a document can hold thousands of them, and conversations retrieve them by
relevance, which is what each database's full-text search does well (SQLite
FTS5 with BM25; PostgreSQL `tsvector` with a GIN index and `ts_rank`).

A document's chunks are replaced all at once, so a search never sees half of
an old version and half of a new one. Every read is scoped to an account; the
service passes the ids of the documents that exist (storage/resources.py), so
chunks a crash left behind without their document are never found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# Search terms: words of letters and digits. Everything else (quotes, operators of either
# database's query syntax) is dropped, so a user's question can never be a malformed query.
_TERMS = re.compile(r"[^\W_]+", re.UNICODE)
MAX_TERMS = 32


def search_terms(query: str) -> list[str]:
    """The distinct words of `query`, lower-cased, at most MAX_TERMS of them."""
    return list(dict.fromkeys(t.lower() for t in _TERMS.findall(query)))[:MAX_TERMS]


@dataclass(frozen=True, slots=True)
class StoredChunk:
    document_id: str
    index: int  # 0-based position in the document
    content: str


@dataclass(frozen=True, slots=True)
class ChunkHit:
    document_id: str
    index: int
    content: str
    score: float  # higher is more relevant; comparable within one search only


class DocumentChunks(Protocol):
    async def replace(self, account_id: str, document_id: str, chunks: Sequence[str]) -> None:
        """Make `chunks` the document's chunks (index = position), in one transaction."""
        ...

    async def page(
        self, account_id: str, document_id: str, *, limit: int, offset: int
    ) -> tuple[list[StoredChunk], int]:
        """The document's chunks in order from `offset`, at most `limit`, and how many it has."""
        ...

    async def search(
        self, account_id: str, query: str, *, document_ids: Sequence[str] | None = None, limit: int = 5
    ) -> list[ChunkHit]:
        """The account's chunks that match any word of `query`, most relevant first.

        `document_ids` restricts the search to those documents (an empty list finds
        nothing); None searches all of the account's chunks.
        """
        ...

    async def delete(self, account_id: str, document_id: str) -> int:
        """Remove the document's chunks; returns how many there were."""
        ...
