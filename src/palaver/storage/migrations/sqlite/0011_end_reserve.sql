-- Room in each active row for what its end adds. A row is written at its create with no
-- `shutdown_reason` and no `ended_at`; the end fills both (up to 61 bytes), and creates pack
-- rows into pages with no room to spare, so most ends made their row longer than its page had
-- room for and SQLite split the page: ~0.24 pages written to the WAL per end instead of ~0.13,
-- and 2-4 us more per end in the bulk UPDATE (docs/performance.md). A new conversation's row
-- carries `end_reserve` (zeroblob, storage/sqlite_writer.py END_RESERVE_BYTES) and every
-- transition out of `active` sets it NULL in the same UPDATE, so an end leaves its row no
-- longer than it was. Rows made before this migration have NULL here and grow as before.
-- Additive: an older Palaver still serving the file neither reads nor writes the column.
ALTER TABLE conversations ADD COLUMN end_reserve BLOB;
