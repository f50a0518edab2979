-- Knowledge-base documents' text, split into chunks (domain/documents.py), searched by
-- relevance with FTS5. The chunks are a plain table; `document_chunks_fts` is an
-- external-content FTS5 index over it (the text is stored once), kept in step by the
-- triggers below inside the same transaction as each change. Porter stemming: the
-- knowledge base is English (reference 10), and "pricing" should find "prices".
CREATE TABLE document_chunks (
    chunk_seq    INTEGER PRIMARY KEY,   -- the FTS index's rowid
    account_id   TEXT NOT NULL REFERENCES accounts(account_id),
    document_id  TEXT NOT NULL,
    chunk_index  INTEGER NOT NULL,      -- 0-based position in the document
    content      TEXT NOT NULL,
    UNIQUE (document_id, chunk_index)
);
CREATE INDEX document_chunks_account ON document_chunks(account_id, document_id, chunk_index);

CREATE VIRTUAL TABLE document_chunks_fts USING fts5(
    content, content='document_chunks', content_rowid='chunk_seq', tokenize='porter unicode61'
);

CREATE TRIGGER document_chunks_added AFTER INSERT ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (rowid, content) VALUES (new.chunk_seq, new.content);
END;

CREATE TRIGGER document_chunks_removed AFTER DELETE ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (document_chunks_fts, rowid, content) VALUES ('delete', old.chunk_seq, old.content);
END;
