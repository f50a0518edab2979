"""Versioned SQL migrations: `migrations/<backend>/NNNN_name.sql`, applied in order, once.

Each file runs in one transaction together with the row that records it in
`schema_migrations`, so a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3
from importlib import resources
from typing import Any


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


# Held while a process migrates a PostgreSQL database, so two processes starting at once on an
# empty database do not both run the first migration: the second waits, then finds nothing pending.
POSTGRES_MIGRATION_LOCK = 0x70616C6176657201  # "palaver" + 1
# A migration whose first line is this runs statement by statement outside a transaction (for
# `CREATE INDEX CONCURRENTLY`, which cannot run inside one and does not block writers).
NO_TRANSACTION = "-- palaver: no-transaction"


async def apply_postgres_migrations(conn: Any) -> list[str]:
    """Apply what is pending on an asyncpg connection, under the migration lock."""
    await conn.execute("SELECT pg_advisory_lock($1)", POSTGRES_MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied: list[str] = []
        for version, name, script in _migration_files("postgres"):
            if await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version):
                continue
            if script.startswith(NO_TRANSACTION):
                for statement in split_statements(script):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            else:
                async with conn.transaction():
                    await conn.execute(script)  # a script of several statements: the simple query protocol
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", POSTGRES_MIGRATION_LOCK)
