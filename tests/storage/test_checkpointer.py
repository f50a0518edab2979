"""The WAL checkpointer's RESTART never holds the write lock while it waits for a reader."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from palaver.storage.sqlite_connection import Checkpointer, connect


def _grow_wal(conn: sqlite3.Connection, commits: int) -> None:
    for _ in range(commits):
        conn.execute("INSERT INTO t (b) VALUES (randomblob(3000))")


def _wal_header(path: str) -> bytes:
    """The WAL header's checkpoint sequence number and salts, which change when the WAL starts over."""
    with open(path + "-wal", "rb") as wal:
        return wal.read(24)[12:24]


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
    finally:
        checkpointer.close()
        reader.close()
        writer.close()


def test_a_restart_gives_up_while_a_reader_stays_and_goes_through_once_it_has_gone(tmp_path: Path) -> None:
    path = str(tmp_path / "ck.db")
    writer = connect(path, "NORMAL")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    reader = connect(path, "NORMAL")
    checkpointer = Checkpointer(path, "NORMAL", interval=3600)  # its thread stays idle: RESTARTs by hand
    try:
        _grow_wal(writer, 20)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()
        _grow_wal(writer, 20)  # frames the reader's snapshot does not see
        first = _wal_header(path)
        started = time.monotonic()
        checkpointer._restart()
        # Bounded: it does not wait for the reader (SQLite's busy handler would, up to 10 s).
        assert time.monotonic() - started < 1.0
        writer.execute("INSERT INTO t (b) VALUES (x'00')")
        assert _wal_header(path) == first, "the WAL started over under a reader's snapshot"
        reader.execute("COMMIT")
        checkpointer._restart()
        # Nothing else checkpoints here (SQLite's automatic checkpoint is off on these
        # connections), so only the RESTART lets the next commit write the WAL from its start.
        writer.execute("INSERT INTO t (b) VALUES (x'00')")
        assert _wal_header(path) != first, "the WAL was not started over"
    finally:
        checkpointer.close()
        reader.close()
        writer.close()
