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
        await asyncio.gather(*(storage.insert_conversation(records.conversation("a1")) for _ in range(3000)))
        deadline = time.monotonic() + 10  # the activity counters reach pg_stat within about a second
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
