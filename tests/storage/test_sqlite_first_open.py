"""SQLite only: processes that open a new database file at the same moment all get it.

Two `palaver serve` started together on a new file used to leave one dead with
`database is locked` at `PRAGMA journal_mode = WAL` (about one start in twelve):
turning a new file into WAL takes an exclusive lock while the connection holds
a shared one, and SQLite answers the loser at once instead of waiting. Here
two processes open one new database after another, each pair at the same
moment to within microseconds, which is when the loser showed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from palaver.storage.base import open_storage

PROCESSES = 2  # one per core of a small machine: each spins until the moment to open
FILES = 60
SPACING_S = 0.08  # between two files: enough to open, migrate and close both

# After its imports the child reads the moment of the first open from stdin (a
# time.time() value); at that moment plus k * SPACING_S it opens and migrates
# storage and ledger on new file k, as `palaver serve` does before it listens,
# and closes them. One line per file: "ok", or the error.
CHILD = """
import asyncio, sys, time
from palaver.storage.base import open_ledger, open_storage

async def open_new(url):
    storage, ledger = open_storage(url), open_ledger(url)
    try:
        await storage.migrate()
        await ledger.migrate()
    finally:
        await ledger.close()
        await storage.close()

directory, files, spacing = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
start = float(sys.stdin.readline())
for k in range(files):
    while time.time() < start + k * spacing:
        pass
    try:
        asyncio.run(open_new(f"sqlite:///{directory}/new-{k}.db"))
        print("ok", flush=True)
    except Exception as exc:
        print(f"file {k}: {type(exc).__name__}: {exc}", flush=True)
"""


def test_processes_opening_a_new_database_at_once_all_get_it(tmp_path: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(FILES), str(SPACING_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    start = time.time() + 0.3  # both are spinning by then
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start}\n")
        child.stdin.flush()
    lines: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        lines += out.splitlines()
    assert len(lines) == PROCESSES * FILES
    failures = [line for line in lines if line != "ok"]
    assert not failures, failures


def test_a_new_database_whose_write_lock_is_held_is_opened_once_it_is_free(tmp_path: Path) -> None:
    """The lock state the race above creates, made on purpose: it used to fail at once, whatever the busy timeout."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the write lock of the new, still empty file ...
    released = threading.Event()

    def release() -> None:
        time.sleep(0.3)  # ... held for a while by another connection
        other.execute("COMMIT")
        released.set()

    threading.Thread(target=release, daemon=True).start()

    async def open_new() -> list[str]:
        storage = open_storage(f"sqlite:///{path}")
        try:
            return await storage.migrate()
        finally:
            await storage.close()

    try:
        applied = asyncio.run(open_new())
    finally:
        released.wait(5)
        other.close()
    assert applied  # the schema was made, after the lock was released
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        check.close()
