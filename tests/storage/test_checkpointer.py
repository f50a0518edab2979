"""The WAL checkpointer's RESTART never holds the write lock while it waits for a reader."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from palaver.storage.sqlite_connection import Checkpointer, connect


def _grow_wal(conn: sqlite3.Connection, commits: int) -> None:
    for _ in range(commits):
        conn.execute("INSERT INTO t (b) VALUES (randomblob(3000))")


def test_a_writer_is_not_held_back_while_a_reader_keeps_an_old_snapshot(tmp_path: Path) -> None:
    path = str(tmp_path / "ck.db")
    writer = connect(path, "NORMAL")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    _grow_wal(writer, 5)
    reader = connect(path, "NORMAL")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # holds its snapshot until it ends
    checkpointer = Checkpointer(path, "NORMAL", interval=0.02, restart_frames=10)
    try:
        _grow_wal(writer, 40)  # past restart_frames: the checkpointer goes for a RESTART
        writer.execute("PRAGMA busy_timeout = 300")
        worst = 0.0
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            started = time.monotonic()
            # A RESTART that waited for the reader with the write lock held (SQLite's busy
            # handler) would keep this waiting, and failing, for as long as the reader lasts.
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO t (b) VALUES (x'00')")
            writer.execute("COMMIT")
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.005)
        assert worst < 0.1, f"a write waited {worst * 1000:.0f} ms behind the checkpointer"
        reader.execute("COMMIT")
        # With the reader gone, the RESTART goes through: the next commit starts the WAL over.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            writer.execute("INSERT INTO t (b) VALUES (x'00')")
            _, frames, _ = writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames < 10:
                break
            time.sleep(0.02)
        assert frames < 10, f"the WAL still holds {frames} frames"
    finally:
        checkpointer.close()
        reader.close()
        writer.close()
