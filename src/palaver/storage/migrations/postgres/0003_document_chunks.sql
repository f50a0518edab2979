-- Knowledge-base documents' text, split into chunks, searched by relevance: as in SQLite's
-- 0006_document_chunks.sql (see there), with a `tsvector` PostgreSQL computes from the text
-- (English: the knowledge base is English, reference 10) and a GIN index over it.
CREATE TABLE document_chunks (
    chunk_seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts(account_id),
    document_id  text NOT NULL,
    chunk_index  integer NOT NULL,
    content      text NOT NULL,
    search       tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    UNIQUE (document_id, chunk_index)
);
CREATE INDEX document_chunks_account ON document_chunks(account_id, document_id, chunk_index);
CREATE INDEX document_chunks_search ON document_chunks USING GIN (search);
