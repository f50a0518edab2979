"""Fixtures for the storage contract tests.

Every test here runs against each backend named in BACKENDS, through the
`Storage` interface only. A backend that cannot be reached through the
interface alone (raw row reads, its integrity-error type) describes itself with
a `Backend` subclass. PostgreSQL tests each get a new database on the session's
throw-away cluster (`pg_cluster`, tests/pg_fixtures.py).

Each test gets its own event loop (`run`), and the storage is opened, migrated,
used and closed on that one loop, as a server would.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from palaver.domain.clock import iso_timestamp
from palaver.storage import Storage, open_storage
from palaver.storage.base import AccountRecord, ConversationRecord
from palaver.tools.pgcluster import PostgresCluster
from pg_fixtures import new_database_name

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

BACKENDS = ["sqlite", "postgres"]

EPOCH0 = 1_767_225_600  # 2026-01-01T00:00:00Z
T0 = iso_timestamp(EPOCH0)


class Backend:
    """One database for one test, plus what the contract tests need beyond `Storage`."""

    name: str
    url: str
    integrity_error: type[Exception]

    def open(self) -> Storage:
        return open_storage(self.url)

    def raw_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The stored row, deleted or not, read around the interface."""
        raise NotImplementedError

    def forget_webhook_secret(self, account_id: str) -> None:
        """Make the account look as if made before accounts got a signing secret (written around the interface)."""
        raise NotImplementedError


class SQLiteBackend(Backend):
    name = "sqlite"
    integrity_error = sqlite3.IntegrityError

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "s.db"
        self.url = "sqlite:///" + str(self.path)

    def raw_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        conn = sqlite3.connect(self.path)
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM conversations WHERE conversation_id = ?", (conversation_id,)).fetchone()
        finally:
            conn.close()
        return dict(row) if row else None

    def forget_webhook_secret(self, account_id: str) -> None:
        conn = sqlite3.connect(self.path)
        try:
            conn.execute("UPDATE accounts SET webhook_secret = NULL WHERE account_id = ?", (account_id,))
            conn.commit()
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgres"
    integrity_error = asyncpg.IntegrityConstraintViolationError

    def __init__(self, cluster: PostgresCluster) -> None:
        self.cluster = cluster
        self.database = new_database_name("s")
        self.url = cluster.create_database(self.database)

    def open(self) -> Storage:
        return open_storage(self.url, pool_size=5)

    def raw_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        out = self.cluster.psql(
            f"SELECT row_to_json(c) FROM conversations c WHERE conversation_id = '{conversation_id}'", self.database
        ).strip()
        return json.loads(out) if out else None

    def forget_webhook_secret(self, account_id: str) -> None:
        self.cluster.psql(f"UPDATE accounts SET webhook_secret = NULL WHERE account_id = '{account_id}'", self.database)

    def drop(self) -> None:
        self.cluster.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


@pytest.fixture
def run() -> Iterator[Run[Any]]:
    """Run a coroutine to completion on this test's event loop."""
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete
    finally:
        loop.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SQLiteBackend(tmp_path)
        return
    made = PostgresBackend(request.getfixturevalue("pg_cluster"))
    yield made
    made.drop()


@pytest.fixture
def storage(backend: Backend, run: Run[Any]) -> Iterator[Storage]:
    """A migrated, empty storage on a fresh database."""
    store = backend.open()
    run(store.migrate())
    try:
        yield store
    finally:
        run(store.close())


@dataclass
class Records:
    """Builders for the records the tests store."""

    counter: int = 0

    def account(self, account_id: str, max_concurrent: int | None = None) -> AccountRecord:
        return AccountRecord(account_id, f"name of {account_id}", max_concurrent, T0)

    def conversation(self, account_id: str = "a1", **changes: Any) -> ConversationRecord:
        """A fresh active conversation with a unique id and a later created_at than the last one."""
        self.counter += 1
        n = self.counter
        stamp = iso_timestamp(EPOCH0 + n + n / 1_000_000)
        fields: dict[str, Any] = dict(
            conversation_id=f"c{n:015x}",
            account_id=account_id,
            conversation_name=f"Conversation {n}",
            status="active",
            test_mode=False,
            replica_id="r90bbd427f71",
            persona_id="pcb7a34da5fe",
            callback_url="",
            system_prompt="You are a test persona.",
            meeting_token=None,
            request={},
            shutdown_reason=None,
            created_at=stamp,
            updated_at=stamp,
            ended_at=None,
        )
        fields.update(changes)
        if fields["test_mode"] and "status" not in changes:
            fields["status"] = "ended"
            fields["ended_at"] = fields["created_at"]
        return ConversationRecord(**fields)


@pytest.fixture
def records() -> Records:
    return Records()
