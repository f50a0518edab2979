-- Media Palaver serves itself (replica thumbnails): as in SQLite's 0007_media.sql (see there).
CREATE TABLE media (
    key          text PRIMARY KEY,
    content_type text NOT NULL,
    data         bytea NOT NULL,
    created_at   text NOT NULL
);
