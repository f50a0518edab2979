"""Fixtures for the storage contract tests.

Every test here runs against each backend (the `backend` fixture of
tests/backends.py: SQLite, and PostgreSQL on the session's throw-away cluster),
through the `Storage` interface only; what the interface cannot reach (raw row
reads, the integrity-error type) the `Backend` object provides.

Each test gets its own event loop (`run`), and the storage is opened, migrated,
used and closed on that one loop, as a server would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from backends import Backend

from palaver.domain.clock import iso_timestamp
from palaver.storage import Storage
from palaver.storage.base import AccountRecord, ConversationRecord

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

EPOCH0 = 1_767_225_600  # 2026-01-01T00:00:00Z
T0 = iso_timestamp(EPOCH0)


@pytest.fixture
def run() -> Iterator[Run[Any]]:
    """Run a coroutine to completion on this test's event loop."""
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete
    finally:
        loop.close()


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
