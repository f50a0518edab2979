"""PostgreSQL only: Palaver analyzes its busy tables once they changed much since their last analyze."""

from __future__ import annotations

import asyncio
import time

import pytest
from backends import PostgresBackend

from palaver.storage.postgres import PostgresStorage


def test_a_table_that_grew_is_analyzed_once_then_left_alone(pg_cluster, run, records) -> None:
    database = PostgresBackend(pg_cluster, prefix="stats")
    storage = PostgresStorage(database.url)

    async def scenario() -> tuple[list[str], list[str], str]:
        await storage.migrate()
        await storage.create_account(records.account("a1"))
        database.cluster.psql("ANALYZE conversations", database.database)  # statistics of an empty table
        # Rows added by a session that then ends: its activity counts reach pg_stat at once (an idle
        # pooled session reports them only after up to 10 s).
        database.cluster.psql(
            "INSERT INTO conversations (conversation_id, account_id, conversation_name, status, replica_id, "
            "persona_id, request, created_at, updated_at) SELECT 'c' || lpad(to_hex(g), 15, '0'), 'a1', 'n', "
            "'active', 'r90bbd427f71', 'pcb7a34da5fe', '{}', 'x', 'x' FROM generate_series(1, 3000) g",
            database.database,
        )
        deadline = time.monotonic() + 20
        analyzed: list[str] = []
        while "conversations" not in analyzed and time.monotonic() < deadline:
            analyzed = await storage.refresh_statistics()
            await asyncio.sleep(0.2)
        again = await storage.refresh_statistics()
        tuples = database.cluster.psql(
            "SELECT reltuples FROM pg_class WHERE relname = 'conversations'", database.database
        )
        return analyzed, again, tuples.strip()

    try:
        analyzed, again, tuples = run(scenario())
    finally:
        run(storage.close())
        database.drop()
    assert "conversations" in analyzed
    assert "conversations" not in again
    assert float(tuples) == pytest.approx(3000, rel=0.05)
