"""Versioned SQL migrations: `migrations/<backend>/NNNN_name.sql`, applied in order, once.

Each file runs in one transaction together with the row that records it in
`schema_migrations`, so a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3
from importlib import resources


def _migration_files(backend: str) -> list[tuple[int, str, str]]:
    folder = resources.files(__package__).joinpath(backend)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def split_statements(script: str) -> list[str]:
    """Split a script into statements with SQLite's own notion of completeness."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()):
        raise ValueError("migration ends with an incomplete statement")
    return statements


def apply_sqlite_migrations(conn: sqlite3.Connection, folder: str = "sqlite") -> list[str]:
    """Apply what is pending; safe when several processes start at once (the lock serialises them).

    `folder` is "sqlite" for the main database, "sqlite_ledger" for the webhook delivery ledger.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    applied: list[str] = []
    for version, name, script in _migration_files(folder):
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone()
            if not done:
                for statement in split_statements(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name))
                applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied
