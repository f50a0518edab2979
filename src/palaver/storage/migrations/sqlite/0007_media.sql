-- Media Palaver serves itself (replica thumbnails, storage/media.py): the bytes in
-- the database, so every process can serve them. `key` is the unguessable file
-- name of the public URL.
CREATE TABLE media (
    key          TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    created_at   TEXT NOT NULL
);
