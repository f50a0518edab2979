"""SQLite connections with Palaver's settings, and the thread that keeps the WAL small.

Every SQLite connection Palaver opens (the API's writer and reader, the
checkpointer, the delivery ledger, the CLI) comes from `connect`, so WAL mode,
the busy timeout, the page cache and the memory map are set in one place.
Also here: the one-off backfill `SQLiteStorage.migrate` runs on its connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

from palaver.domain.signing import new_secret

log = logging.getLogger("palaver.storage")

BUSY_TIMEOUT_S = 10.0  # then the batch fails with "database is locked", as with busy_timeout
MMAP_SIZE = 1 << 34  # as much as SQLite allows (its build caps it, at 2 GiB here): the whole file


def sqlite_path(database_url: str) -> str:
    """`sqlite:///relative.db` or `sqlite:////abs/path.db` -> a file path.

    In-memory databases are refused: the reader and the writer are separate
    connections and would each see a different empty database.
    """
    rest = database_url.removeprefix("sqlite:")
    if rest.startswith("///"):
        return rest[3:]
    if rest.startswith("//"):
        return rest[2:]
    path = rest
    if not path or path == ":memory:":
        raise ValueError("Palaver needs a database file: sqlite:///PATH")
    return path


def connect(
    path: str, synchronous: str, *, checkpoint_on_commit: bool = False, page_size: int | None = None
) -> sqlite3.Connection:
    """A connection with Palaver's settings (autocommit, WAL, busy timeout, bounded WAL file).

    `checkpoint_on_commit=False` for the API's database: checkpoints (which fsync)
    run in Checkpointer's thread, never inside a commit on the event loop. The
    delivery ledger, which has no checkpointer thread, keeps SQLite's automatic one.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    if page_size is not None:
        conn.execute(f"PRAGMA page_size = {int(page_size)}")  # takes effect only in a new, empty file
    _enable_wal(conn)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA cache_size = -65536")
    # Read the file through a memory map (SQLite caps it at 2 GiB): a page SQLite's own cache has
    # lost is then a memory read from the OS page cache, not a pread() and a copy. Over 1.2 million
    # conversations the ends' id lookups missed the 64 MB cache often enough to cost ~5 us per end.
    conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
    if not checkpoint_on_commit:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    # After a checkpoint restarts the WAL, trim the file back to this size.
    conn.execute("PRAGMA journal_size_limit = 67108864")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """`PRAGMA journal_mode = WAL`, tried again while another connection holds the new file's write lock.

    On a new file the pragma writes the header under a read lock it already
    holds; when another connection has the write lock (another process making
    the same file WAL, or migrating it), SQLite answers SQLITE_BUSY at once and
    does not call the busy handler, since waiting with a read lock held could
    deadlock. Two `palaver serve` started together on a new file lost one of
    them this way. The failed statement has let its locks go; tried again, it
    finds the file in WAL mode already (nothing to write) or the lock free.
    Bounded like every other wait for the lock (BUSY_TIMEOUT_S).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class Checkpointer:
    """Copies the WAL back into the database file, off the event loop, and keeps the WAL small.

    SQLite's automatic checkpoint would run inside whichever commit crosses the
    threshold, stalling the loop for a write-back and an fsync; measured, that
    made Palaver wait on I/O for a fifth of its time. So every `interval`
    seconds this thread runs a PASSIVE checkpoint, which never blocks the
    writer. Under continuous writes a PASSIVE checkpoint never lets the WAL
    start over (the writer is always ahead of it), and the WAL grew without
    bound: 1 GB after 180,000 ends, each commit slower than the last. Once the
    WAL passes `restart_frames`, a RESTART checkpoint makes the next commit
    reuse the file from the start; it holds the writer back only for the little
    the PASSIVE pass left to copy.

    A RESTART holds the write lock while it syncs, and measured under the
    sustained end load it held it 5-20 ms (docs/performance.md), stalling a
    whole batch of ends: PASSIVE passes under continuous writes never sync the
    database file (SQLite syncs it only when a pass copies the whole WAL), so
    the RESTART's sync flushed every page they had written, and SQLite's busy
    handler slept 1, 2, 5 ms waiting for readers with the write lock held. So
    the files are synced here first, with no lock held, and the RESTART is
    tried without a busy handler, a moment apart, until it finds no reader.
    """

    RESTART_TRIES = 20
    RESTART_RETRY_S = 0.0005

    def __init__(self, path: str, synchronous: str, interval: float = 0.5, restart_frames: int = 4096) -> None:
        self._conn = connect(path, synchronous)
        self._conn.execute("PRAGMA busy_timeout = 0")  # its waits are its own (_restart)
        self._path = path
        self._interval = interval
        self._restart_frames = restart_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="palaver-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                _, wal_frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if wal_frames > self._restart_frames:
                    for _ in range(4):
                        _, latest, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        fresh, wal_frames = latest - wal_frames, latest
                        if fresh <= 64:
                            break
                    self._restart()
            except sqlite3.Error:
                log.warning("WAL checkpoint failed; will retry", exc_info=True)

    def _restart(self) -> None:
        """Sync both files with no lock held, then RESTART as soon as no reader is in the way."""
        for name in (self._path, self._path + "-wal"):
            try:
                fd = os.open(name, os.O_RDONLY)
            except OSError:
                continue  # no WAL file (yet): nothing of it to sync
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        for _ in range(self.RESTART_TRIES):
            try:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
                busy = 1
            if not busy:
                return
            time.sleep(self.RESTART_RETRY_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            log.warning("final WAL checkpoint failed", exc_info=True)
        self._conn.close()


def backfill_webhook_secrets(conn: sqlite3.Connection) -> None:
    """A signing secret for each account made before secrets were made with the account.

    Here, by whichever process migrates (the server, before it starts its delivery
    workers), so that the workers only ever read the main database.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        missing = conn.execute("SELECT account_id FROM accounts WHERE webhook_secret IS NULL").fetchall()
        conn.executemany(
            "UPDATE accounts SET webhook_secret = ? WHERE account_id = ?", [(new_secret(), a) for (a,) in missing]
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
